//! Turning an assembled [`SlowTask`] into the Python `SlowTaskEvent` and handing it to the
//! user's callbacks, on the loop's thread.

use aiocop_events::SlowTask;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::event::{blocking_events, SliceObjects, SlowTaskEvent};
use crate::{pylog, registry};

fn or_none(py: Python<'_>, value: Option<Py<PyAny>>) -> Bound<'_, PyAny> {
    value.unwrap_or_else(|| py.None()).into_bound(py)
}

/// Builds the event and calls every registered callback with it. A callback that raises is
/// logged (logger `aiocop`) and the others still run. An event still referenced once the
/// callbacks returned (kept by one of them) reads its task identity then.
pub(crate) fn deliver(
    py: Python<'_>,
    task: SlowTask,
    objects: SliceObjects,
    callbacks: &[Py<PyAny>],
) {
    if callbacks.is_empty() {
        return;
    }
    let event = match Bound::new(py, SlowTaskEvent::delivered(task, objects)) {
        Ok(event) => event,
        Err(err) => {
            pylog::error(
                py,
                &format!("aiocop could not build a SlowTaskEvent: {err}"),
            );
            return;
        }
    };
    for callback in callbacks {
        let callback = callback.bind(py);
        // SAFETY: GIL held; both are valid objects we hold for the call; a one-argument
        // vectorcall (no args tuple).
        let result = unsafe { ffi::PyObject_CallOneArg(callback.as_ptr(), event.as_ptr()) };
        // SAFETY: GIL held; the call's new reference, or NULL with an exception set.
        let outcome = unsafe { Bound::from_owned_ptr_or_err(py, result) };
        if let Err(err) = outcome {
            pylog::warning(
                py,
                &format!(
                    "Error in slow task callback {}: {err}",
                    pylog::describe(callback)
                ),
            );
        }
    }
    // SAFETY: GIL held; `event` is a valid object we hold (reading its count only).
    if unsafe { ffi::Py_REFCNT(event.as_ptr()) } > 1 {
        SlowTaskEvent::settle(&event);
    }
}

/// The `HighSeverityBlockingIoException` for `task`.
pub(crate) fn high_severity_error(
    py: Python<'_>,
    task: &SlowTask,
    objects: &SliceObjects,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let types = registry::python_types().ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err("aiocop's Python types are not registered")
        })?;
        let exc = types.high_severity_exception.bind(py).call1((
            task.severity_score,
            task.severity_level.as_str(),
            task.elapsed_ms,
            task.threshold_ms,
            {
                let (task_name, coroutine) = objects.identity.names(py);
                blocking_events(
                    py,
                    &task.blocking_events,
                    &objects.args,
                    &or_none(py, task_name),
                    &or_none(py, coroutine),
                )?
            },
        ))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|err| err)
}

/// One line describing an event that cannot be delivered, for the log: why it was emitted, how
/// long the handle ran, its severity, the task, and each blocking call with where it was made
/// (or, for CPU-bound work, the most sampled stack).
pub(crate) fn describe(py: Python<'_>, task: &SlowTask, objects: &SliceObjects) -> String {
    let mut text = format!(
        "{} in a {:.1} ms handle (threshold {:.1} ms), severity {} (score {})",
        task.reason,
        task.elapsed_ms,
        task.threshold_ms,
        task.severity_level.as_str(),
        task.severity_score
    );
    let (task_name, coroutine) = objects.identity.names(py);
    if let Some(name) = task_name.and_then(|n| n.extract::<String>(py).ok()) {
        let coroutine = coroutine.and_then(|c| c.extract::<String>(py).ok());
        text.push_str(&format!(", task {name}"));
        if let Some(coroutine) = coroutine {
            text.push_str(&format!(" ({coroutine})"));
        }
    }
    let calls: Vec<String> = task
        .blocking_events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let call = match objects.args.get(index) {
                Some(deferred) if event.event.is_empty() => deferred.event_text(py),
                _ => event.event.clone(),
            };
            format!("{call} at {}", event.site())
        })
        .collect();
    if !calls.is_empty() {
        text.push_str(": ");
        text.push_str(&calls.join("; "));
    } else if let Some(sample) = task.cpu_stack_samples.first() {
        text.push_str(&format!(": most sampled at {}", sample.entry_point));
    }
    text
}
