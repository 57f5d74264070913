//! Turning an assembled [`SlowTask`] into the Python `SlowTaskEvent` and handing it to the
//! user's callbacks, on the loop's thread.

use aiocop_events::{BlockingEvent, CpuSample, SlowTask};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::{pylog, registry};

fn blocking_events<'py>(py: Python<'py>, events: &[BlockingEvent]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for event in events {
        let dict = PyDict::new(py);
        dict.set_item("event", &event.event)?;
        dict.set_item("trace", &event.trace)?;
        dict.set_item("entry_point", &event.entry_point)?;
        dict.set_item("severity", event.severity)?;
        list.append(dict)?;
    }
    Ok(list)
}

fn cpu_samples<'py>(py: Python<'py>, samples: &[CpuSample]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for sample in samples {
        let dict = PyDict::new(py);
        dict.set_item("trace", &sample.trace)?;
        dict.set_item("entry_point", &sample.entry_point)?;
        dict.set_item("count", sample.count)?;
        list.append(dict)?;
    }
    Ok(list)
}

/// The `BlockingEventInfo` dicts of `task`.
pub fn blocking_event_dicts<'py>(py: Python<'py>, task: &SlowTask) -> PyResult<Bound<'py, PyList>> {
    blocking_events(py, &task.blocking_events)
}

/// Builds the Python `SlowTaskEvent`.
pub fn to_python(
    py: Python<'_>,
    task: &SlowTask,
    context: Option<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let types = registry::python_types().ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err("aiocop's Python types are not registered")
    })?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("elapsed_ms", task.elapsed_ms)?;
    kwargs.set_item("threshold_ms", task.threshold_ms)?;
    kwargs.set_item("exceeded_threshold", task.exceeded_threshold)?;
    kwargs.set_item("severity_score", task.severity_score)?;
    kwargs.set_item("severity_level", task.severity_level.as_str())?;
    kwargs.set_item("reason", task.reason.as_str())?;
    kwargs.set_item(
        "blocking_events",
        blocking_events(py, &task.blocking_events)?,
    )?;
    match context {
        Some(context) => kwargs.set_item("context", context)?,
        None => kwargs.set_item("context", PyDict::new(py))?,
    }
    kwargs.set_item(
        "cpu_stack_samples",
        cpu_samples(py, &task.cpu_stack_samples)?,
    )?;
    Ok(types
        .slow_task_event
        .bind(py)
        .call((), Some(&kwargs))?
        .unbind())
}

/// Builds the event and calls every registered callback with it. A callback that raises is
/// logged (logger `aiocop`) and the others still run.
pub fn deliver(py: Python<'_>, task: &SlowTask, context: Option<Py<PyAny>>) {
    let callbacks = registry::callbacks(py);
    if callbacks.is_empty() {
        return;
    }
    let event = match to_python(py, task, context) {
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
        if let Err(err) = callback.call1((event.clone_ref(py),)) {
            pylog::warning(
                py,
                &format!(
                    "Error in slow task callback {}: {err}",
                    pylog::describe(callback)
                ),
            );
        }
    }
}

/// The `HighSeverityBlockingIoException` for `task`.
pub fn high_severity_error(py: Python<'_>, task: &SlowTask) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let types = registry::python_types().ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err("aiocop's Python types are not registered")
        })?;
        let exc = types.high_severity_exception.bind(py).call1((
            task.severity_score,
            task.severity_level.as_str(),
            task.elapsed_ms,
            task.threshold_ms,
            blocking_events(py, &task.blocking_events)?,
        ))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|err| err)
}
