//! The loop wrapper: `call_soon`, `call_later`, `call_at` and `call_soon_threadsafe` of a loop
//! are replaced (as instance attributes, which the C Task and uvloop both look up) by native
//! methods that wrap the callback in a [`Monitored`] callable. Running it times the handle,
//! marks the thread as "inside a monitored handle" for the audit hook, and on the slow path
//! only builds the slice and hands it over.

use std::sync::Arc;
use std::time::Instant;

use aiocop_events::{assemble, Slice};
use aiocop_severity::THRESHOLD_HIGH;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::config::{self, Dispatch};
use crate::deliver::{deliver, high_severity_error};
use crate::dispatch::{self, LoopShared};
use crate::{registry, sampler};

/// The attribute a patched loop carries (its [`LoopPatch`]).
pub const PATCH_ATTR: &str = "_aiocop_patch";

/// A callback scheduled on a monitored loop.
#[pyclass(frozen, module = "aiocop._aiocop", name = "MonitoredCallback")]
#[derive(Debug)]
pub struct Monitored {
    callback: Py<PyAny>,
    args: Py<PyTuple>,
    target: Arc<LoopShared>,
}

impl Monitored {
    fn invoke(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let args = self.args.bind(py);
        let callback = self.callback.bind(py);
        if args.is_empty() {
            callback.call0().map(Bound::unbind)
        } else {
            callback.call1(args).map(Bound::unbind)
        }
    }
}

#[pymethods]
impl Monitored {
    fn __call__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if !config::is_active() || aiocop_hook::in_handle() {
            return self.invoke(py);
        }
        let pre_context = registry::capture_context(py);
        let Some(token) = aiocop_hook::enter_handle() else {
            return self.invoke(py);
        };
        let started = Instant::now();
        let sampling = sampler::slice_start(config::now_ns());
        let result = self.invoke(py);
        let elapsed = started.elapsed();
        let samples = sampler::slice_end(sampling);
        let recorded = aiocop_hook::exit_handle(token);

        let elapsed_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let threshold_ns = config::threshold_ns();
        if recorded.is_none() && elapsed_ns < threshold_ns {
            return result; // the fast path
        }
        slow_path(
            py,
            &self.target,
            elapsed_ns,
            threshold_ns,
            recorded.unwrap_or_default(),
            samples.unwrap_or_default(),
            pre_context,
            result,
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.callback)?;
        visit.call(&self.args)?;
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let inner = self
            .callback
            .bind(py)
            .repr()
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "<callback>".to_owned());
        format!("<aiocop monitored {inner}>")
    }

    /// The wrapped callback.
    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.callback.clone_ref(py)
    }
}

#[allow(clippy::too_many_arguments)]
fn slow_path(
    py: Python<'_>,
    target: &Arc<LoopShared>,
    elapsed_ns: u64,
    threshold_ns: u64,
    recorded: aiocop_hook::Recorded,
    cpu_samples: Vec<Vec<aiocop_events::Frame>>,
    pre_context: Option<Py<PyDict>>,
    result: PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let post_context = registry::capture_context(py);
    let has_records = !recorded.records.is_empty();
    let context: Option<Py<PyAny>> = if has_records {
        recorded
            .first_context
            .or_else(|| merge(py, pre_context, post_context))
    } else {
        merge(py, pre_context, post_context)
    };
    let records = recorded.records.iter().map(|r| r.resolve(py)).collect();
    drop(recorded.records);
    let slice = Slice {
        elapsed_ns,
        threshold_ns,
        records,
        cpu_samples,
        dropped_records: recorded.dropped,
    };
    let raise = result.is_ok()
        && recorded.should_raise
        && has_records
        && slice.exceeded_threshold()
        && slice.score() >= THRESHOLD_HIGH;
    let error = if raise {
        assemble(&slice).map(|task| high_severity_error(py, &task))
    } else {
        None
    };
    match config::dispatch() {
        Dispatch::Inline => {
            if let Some(task) = assemble(&slice) {
                deliver(py, &task, context);
            }
        }
        Dispatch::Background => {
            if slice.is_reportable() {
                dispatch::send(slice, context, target);
            }
        }
    }
    match error {
        Some(err) => Err(err),
        None => result,
    }
}

/// Start values, overridden by the end values that are not `None`.
fn merge(py: Python<'_>, pre: Option<Py<PyDict>>, post: Option<Py<PyDict>>) -> Option<Py<PyAny>> {
    match (pre, post) {
        (None, None) => None,
        (Some(pre), None) => Some(pre.into_any()),
        (None, Some(post)) => Some(post.into_any()),
        (Some(pre), Some(post)) => {
            let pre = pre.bind(py);
            for (key, value) in post.bind(py).iter() {
                if !value.is_none() && pre.set_item(key, value).is_err() {
                    PyErr::take(py);
                }
            }
            Some(pre.clone().into_any().unbind())
        }
    }
}

/// The replacement scheduling methods of one loop, holding the originals.
#[pyclass(frozen, module = "aiocop._aiocop", name = "LoopPatch")]
#[derive(Debug)]
pub struct LoopPatch {
    shared: Arc<LoopShared>,
    call_soon_orig: Py<PyAny>,
    call_later_orig: Py<PyAny>,
    call_at_orig: Py<PyAny>,
    call_soon_threadsafe_orig: Py<PyAny>,
    call_exception_handler_orig: Py<PyAny>,
}

impl LoopPatch {
    fn wrap(
        &self,
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Monitored>> {
        Py::new(
            py,
            Monitored {
                callback,
                args: args.unbind(),
                target: Arc::clone(&self.shared),
            },
        )
    }

    /// The loop state shared with the background thread.
    pub fn shared(&self) -> &Arc<LoopShared> {
        &self.shared
    }
}

fn forward<'py>(
    py: Python<'py>,
    original: &Py<PyAny>,
    leading: &[Bound<'py, PyAny>],
    context: Option<Bound<'py, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let args = PyTuple::new(py, leading)?;
    let original = original.bind(py);
    match context {
        Some(ctx) if !ctx.is_none() => {
            let kwargs = PyDict::new(py);
            kwargs.set_item(pyo3::intern!(py, "context"), ctx)?;
            original.call(args, Some(&kwargs)).map(Bound::unbind)
        }
        _ => original.call1(args).map(Bound::unbind),
    }
}

#[pymethods]
impl LoopPatch {
    #[pyo3(signature = (callback, *args, context=None))]
    fn call_soon<'py>(
        &self,
        py: Python<'py>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let wrapped = self
            .wrap(py, callback.unbind(), args)?
            .into_bound(py)
            .into_any();
        forward(py, &self.call_soon_orig, &[wrapped], context)
    }

    #[pyo3(signature = (delay, callback, *args, context=None))]
    fn call_later<'py>(
        &self,
        py: Python<'py>,
        delay: Bound<'py, PyAny>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let wrapped = self
            .wrap(py, callback.unbind(), args)?
            .into_bound(py)
            .into_any();
        forward(py, &self.call_later_orig, &[delay, wrapped], context)
    }

    #[pyo3(signature = (when, callback, *args, context=None))]
    fn call_at<'py>(
        &self,
        py: Python<'py>,
        when: Bound<'py, PyAny>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let wrapped = self
            .wrap(py, callback.unbind(), args)?
            .into_bound(py)
            .into_any();
        forward(py, &self.call_at_orig, &[when, wrapped], context)
    }

    #[pyo3(signature = (callback, *args, context=None))]
    fn call_soon_threadsafe<'py>(
        &self,
        py: Python<'py>,
        callback: Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        context: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let wrapped = self
            .wrap(py, callback.unbind(), args)?
            .into_bound(py)
            .into_any();
        forward(py, &self.call_soon_threadsafe_orig, &[wrapped], context)
    }

    /// Lets `HighSeverityBlockingIoException` propagate out of the loop run; everything else
    /// goes to the loop's own handler.
    fn call_exception_handler<'py>(
        &self,
        py: Python<'py>,
        context: Bound<'py, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        if let Some(types) = registry::python_types() {
            if let Ok(exc) = context.get_item("exception") {
                if exc.is_instance(types.high_severity_exception.bind(py))? {
                    return Err(PyErr::from_value(exc));
                }
            }
        }
        self.call_exception_handler_orig
            .bind(py)
            .call1((context,))
            .map(Bound::unbind)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.call_soon_orig)?;
        visit.call(&self.call_later_orig)?;
        visit.call(&self.call_at_orig)?;
        visit.call(&self.call_soon_threadsafe_orig)?;
        visit.call(&self.call_exception_handler_orig)?;
        Ok(())
    }
}

/// Patches `event_loop` (running on the current thread) unless it already is. Returns `true`
/// when it patched it now.
pub fn patch_loop(event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = event_loop.py();
    if let Ok(existing) = event_loop.getattr(PATCH_ATTR) {
        if existing.is_instance_of::<LoopPatch>() {
            return Ok(false);
        }
    }
    let patch = Py::new(
        py,
        LoopPatch {
            shared: LoopShared::new(event_loop)?,
            call_soon_orig: event_loop.getattr("call_soon")?.unbind(),
            call_later_orig: event_loop.getattr("call_later")?.unbind(),
            call_at_orig: event_loop.getattr("call_at")?.unbind(),
            call_soon_threadsafe_orig: event_loop.getattr("call_soon_threadsafe")?.unbind(),
            call_exception_handler_orig: event_loop.getattr("call_exception_handler")?.unbind(),
        },
    )?;
    let bound = patch.bind(py);
    for name in [
        "call_soon",
        "call_later",
        "call_at",
        "call_soon_threadsafe",
        "call_exception_handler",
    ] {
        event_loop.setattr(name, bound.getattr(name)?)?;
    }
    event_loop.setattr(PATCH_ATTR, bound)?;
    Ok(true)
}

/// The patch of `event_loop`, if it is patched.
pub fn loop_patch<'py>(event_loop: &Bound<'py, PyAny>) -> Option<Bound<'py, LoopPatch>> {
    event_loop
        .getattr(PATCH_ATTR)
        .ok()
        .and_then(|p| p.cast_into::<LoopPatch>().ok())
}

/// The running loop of this thread, if any.
pub fn running_loop(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    py.import("asyncio")
        .and_then(|m| m.getattr("_get_running_loop"))
        .and_then(|f| f.call0())
        .ok()
        .filter(|l| !l.is_none())
}
