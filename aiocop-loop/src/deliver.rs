//! Turning an assembled [`SlowTask`] into the Python `SlowTaskEvent` and handing it to the
//! user's callbacks, on the loop's thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use aiocop_events::{BlockingEvent, CpuSample, FastBuildHasher, SlowTask, Stack};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::{pylog, registry};

/// The Python objects that travel with a slice, untouched, from the end of its handle to the
/// event: the user's context and the task identity (`str` objects, or `None`).
#[derive(Debug, Default)]
pub struct SliceObjects {
    /// The merged context-provider dict, if any.
    pub context: Option<Py<PyAny>>,
    /// The asyncio task's name (`task.get_name()`), for a task step.
    pub task_name: Option<Py<PyAny>>,
    /// The qualified name of the task's coroutine, or of the plain callback.
    pub coroutine: Option<Py<PyAny>>,
}

fn or_none<'py>(py: Python<'py>, value: Option<&Py<PyAny>>) -> Bound<'py, PyAny> {
    value.map_or_else(|| py.None().into_bound(py), |v| v.bind(py).clone())
}

/// A shared stack's `trace` and `entry_point` as Python strings; the entry keeps the stack
/// alive, so the address it is keyed by cannot be reused while it exists.
struct StackStrings {
    _stack: Arc<Stack>,
    trace: Py<PyString>,
    entry_point: Py<PyString>,
}

/// Per-thread (delivery runs on the loop's thread): a call site's strings are built once.
/// Bounded: cleared when it grows past the cap.
const STACK_STRINGS_CAP: usize = 2048;

thread_local! {
    static STACK_STRINGS: RefCell<HashMap<usize, StackStrings, FastBuildHasher>> =
        RefCell::new(HashMap::default());
}

/// `(trace, entry_point)` of `stack` as Python strings, from the per-thread cache.
fn stack_strings<'py>(
    py: Python<'py>,
    stack: &Arc<Stack>,
) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
    let key = Arc::as_ptr(stack) as usize;
    STACK_STRINGS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(hit) = cache.get(&key) {
            return (hit.trace.bind(py).clone(), hit.entry_point.bind(py).clone());
        }
        let trace = PyString::new(py, stack.trace());
        let entry_point = PyString::new(py, stack.entry_point());
        if cache.len() >= STACK_STRINGS_CAP {
            cache.clear();
        }
        cache.insert(
            key,
            StackStrings {
                _stack: Arc::clone(stack),
                trace: trace.clone().unbind(),
                entry_point: entry_point.clone().unbind(),
            },
        );
        (trace, entry_point)
    })
}

fn blocking_events<'py>(
    py: Python<'py>,
    events: &[BlockingEvent],
    objects: &SliceObjects,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    let task_name = or_none(py, objects.task_name.as_ref());
    let coroutine = or_none(py, objects.coroutine.as_ref());
    for event in events {
        let (trace, entry_point) = stack_strings(py, &event.stack);
        let dict = PyDict::new(py);
        dict.set_item(pyo3::intern!(py, "event"), &event.event)?;
        dict.set_item(pyo3::intern!(py, "trace"), trace)?;
        dict.set_item(pyo3::intern!(py, "entry_point"), entry_point)?;
        dict.set_item(pyo3::intern!(py, "severity"), event.severity)?;
        dict.set_item(pyo3::intern!(py, "task_name"), &task_name)?;
        dict.set_item(pyo3::intern!(py, "coroutine"), &coroutine)?;
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
/// field through `object.__setattr__`, one Python-level call per field; we do what it ends up
/// doing — `object.__new__`, then `PyObject_GenericSetAttr` per field, in declaration order —
/// without the calls.
pub fn to_python(py: Python<'_>, task: &SlowTask, objects: SliceObjects) -> PyResult<Py<PyAny>> {
    let types = registry::python_types().ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err("aiocop's Python types are not registered")
    })?;
    let cls = types.slow_task_event.bind(py);
    let empty = pyo3::types::PyTuple::empty(py);
    // `cls` is a class (a `type` when it was registered); `object`'s tp_new accepts any
    // subtype with no arguments and returns a new reference or NULL with an exception set.
    // SAFETY: GIL held; see above.
    let event = unsafe {
        let object = &raw mut ffi::PyBaseObject_Type;
        let new = (*object)
            .tp_new
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("object has no tp_new"))?;
        Bound::from_owned_ptr_or_err(
            py,
            new(cls.as_ptr().cast(), empty.as_ptr(), std::ptr::null_mut()),
        )?
    };
    let set = |name: &Bound<'_, PyString>, value: Bound<'_, PyAny>| -> PyResult<()> {
        // SAFETY: GIL held; all three are valid objects; the generic setter bypasses the frozen
        // dataclass's `__setattr__`, exactly as its own `__init__` does.
        if unsafe { ffi::PyObject_GenericSetAttr(event.as_ptr(), name.as_ptr(), value.as_ptr()) }
            != 0
        {
            return Err(PyErr::fetch(py));
        }
        Ok(())
    };
    set(
        pyo3::intern!(py, "elapsed_ms"),
        task.elapsed_ms.into_pyobject(py)?.into_any(),
    )?;
    set(
        pyo3::intern!(py, "threshold_ms"),
        task.threshold_ms.into_pyobject(py)?.into_any(),
    )?;
    set(
        pyo3::intern!(py, "exceeded_threshold"),
        task.exceeded_threshold
            .into_pyobject(py)?
            .to_owned()
            .into_any(),
    )?;
    set(
        pyo3::intern!(py, "severity_score"),
        task.severity_score.into_pyobject(py)?.into_any(),
    )?;
    let level = match task.severity_level {
        aiocop_severity::Level::Low => pyo3::intern!(py, "low"),
        aiocop_severity::Level::Medium => pyo3::intern!(py, "medium"),
        aiocop_severity::Level::High => pyo3::intern!(py, "high"),
    };
    set(
        pyo3::intern!(py, "severity_level"),
        level.clone().into_any(),
    )?;
    let reason = match task.reason {
        aiocop_events::Reason::IoBlocking => pyo3::intern!(py, "io_blocking"),
        aiocop_events::Reason::CpuBlocking => pyo3::intern!(py, "cpu_blocking"),
    };
    set(pyo3::intern!(py, "reason"), reason.clone().into_any())?;
    set(
        pyo3::intern!(py, "blocking_events"),
        blocking_events(py, &task.blocking_events, &objects)?.into_any(),
    )?;
    let context = match objects.context {
        Some(context) => context.into_bound(py),
        None => PyDict::new(py).into_any(),
    };
    set(pyo3::intern!(py, "context"), context)?;
    set(
        pyo3::intern!(py, "cpu_stack_samples"),
        cpu_samples(py, &task.cpu_stack_samples)?.into_any(),
    )?;
    set(
        pyo3::intern!(py, "task_name"),
        or_none(py, objects.task_name.as_ref()),
    )?;
    set(
        pyo3::intern!(py, "coroutine"),
        or_none(py, objects.coroutine.as_ref()),
    )?;
    Ok(event.unbind())
}

/// Builds the event and calls every registered callback with it. A callback that raises is
/// logged (logger `aiocop`) and the others still run.
pub fn deliver(py: Python<'_>, task: &SlowTask, objects: SliceObjects, callbacks: &[Py<PyAny>]) {
    if callbacks.is_empty() {
        return;
    }
    let event = match to_python(py, task, objects) {
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
        // SAFETY: GIL held; both are valid objects; a one-argument vectorcall (no args tuple)
        // returning a new reference or NULL with an exception set.
        let outcome = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyObject_CallOneArg(callback.as_ptr(), event.as_ptr()),
            )
        };
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
}

/// The `HighSeverityBlockingIoException` for `task`.
pub fn high_severity_error(py: Python<'_>, task: &SlowTask, objects: &SliceObjects) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let types = registry::python_types().ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err("aiocop's Python types are not registered")
        })?;
        let exc = types.high_severity_exception.bind(py).call1((
            task.severity_score,
            task.severity_level.as_str(),
            task.elapsed_ms,
            task.threshold_ms,
            blocking_events(py, &task.blocking_events, objects)?,
        ))?;
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|err| err)
}
