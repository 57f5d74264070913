//! Turning an assembled [`SlowTask`] into the Python `SlowTaskEvent` and handing it to the
//! user's callbacks, on the loop's thread.

use aiocop_events::{BlockingEvent, CpuSample, SlowTask};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList};

use crate::{pylog, registry};

fn blocking_events<'py>(
    py: Python<'py>,
    events: &[BlockingEvent],
    task: &SlowTask,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for event in events {
        let dict = PyDict::new(py);
        dict.set_item(pyo3::intern!(py, "event"), &event.event)?;
        dict.set_item(pyo3::intern!(py, "trace"), &event.trace)?;
        dict.set_item(pyo3::intern!(py, "entry_point"), &event.entry_point)?;
        dict.set_item(pyo3::intern!(py, "severity"), event.severity)?;
        dict.set_item(pyo3::intern!(py, "task_name"), task.task_name.as_deref())?;
        dict.set_item(pyo3::intern!(py, "coroutine"), task.coroutine.as_deref())?;
        list.append(dict)?;
    }
    Ok(list)
}

fn cpu_samples<'py>(py: Python<'py>, samples: &[CpuSample]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for sample in samples {
        let dict = PyDict::new(py);
        dict.set_item(pyo3::intern!(py, "trace"), &sample.trace)?;
        dict.set_item(pyo3::intern!(py, "entry_point"), &sample.entry_point)?;
        dict.set_item(pyo3::intern!(py, "count"), sample.count)?;
        list.append(dict)?;
    }
    Ok(list)
}

/// Builds the Python `SlowTaskEvent`. The frozen dataclass's generated `__init__` sets each
/// field through `object.__setattr__`, nine Python-level calls; we build the instance with
/// `object.__new__` and fill its `__dict__` directly, which is what that `__init__` ends with.
pub fn to_python(
    py: Python<'_>,
    task: &SlowTask,
    context: Option<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    static OBJECT_NEW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let types = registry::python_types().ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err("aiocop's Python types are not registered")
    })?;
    let object_new = OBJECT_NEW.get_or_try_init(py, || {
        py.get_type::<pyo3::types::PyAny>()
            .getattr("__new__")
            .map(Bound::unbind)
    })?;
    let cls = types.slow_task_event.bind(py);
    let event = object_new.bind(py).call1((cls,))?;
    let fields = event.getattr(pyo3::intern!(py, "__dict__"))?;
    let fields = fields.cast::<PyDict>().map_err(PyErr::from)?;
    fields.set_item(pyo3::intern!(py, "elapsed_ms"), task.elapsed_ms)?;
    fields.set_item(pyo3::intern!(py, "threshold_ms"), task.threshold_ms)?;
    fields.set_item(
        pyo3::intern!(py, "exceeded_threshold"),
        task.exceeded_threshold,
    )?;
    fields.set_item(pyo3::intern!(py, "severity_score"), task.severity_score)?;
    fields.set_item(
        pyo3::intern!(py, "severity_level"),
        task.severity_level.as_str(),
    )?;
    fields.set_item(pyo3::intern!(py, "reason"), task.reason.as_str())?;
    fields.set_item(
        pyo3::intern!(py, "blocking_events"),
        blocking_events(py, &task.blocking_events, task)?,
    )?;
    match context {
        Some(context) => fields.set_item(pyo3::intern!(py, "context"), context)?,
        None => fields.set_item(pyo3::intern!(py, "context"), PyDict::new(py))?,
    }
    fields.set_item(
        pyo3::intern!(py, "cpu_stack_samples"),
        cpu_samples(py, &task.cpu_stack_samples)?,
    )?;
    fields.set_item(pyo3::intern!(py, "task_name"), task.task_name.as_deref())?;
    fields.set_item(pyo3::intern!(py, "coroutine"), task.coroutine.as_deref())?;
    Ok(event.unbind())
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
            blocking_events(py, &task.blocking_events, task)?,
        ))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|err| err)
}
