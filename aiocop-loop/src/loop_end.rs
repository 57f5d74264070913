//! The end of a monitored loop: events still pending for it are delivered before it goes away.
//!
//! A monitored loop's class gets a `close` of ours ([`ClosingMethod`]): before the loop's own
//! `close` runs, the background thread finishes this loop's slices and their events are
//! delivered on the closing thread, so the blocking call right before a crash
//! (`asyncio.run` ending by an exception) still reaches the callbacks. A uvloop loop's class
//! of its own holds it; an asyncio loop's class gets it once (not the instance: one attribute
//! more would cost the loop its compact attribute layout), and it does nothing for a loop that
//! is not monitored.

use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3::{PyTraverseError, PyVisit};

use crate::dispatch;
use crate::loop_patch::loop_patch;

/// `close` of a monitored loop's class: delivers the loop's pending events, then runs the
/// class's own `close`.
#[pyclass(frozen, module = "aiocop._aiocop", name = "_ClosingMethod")]
#[derive(Debug)]
pub struct ClosingMethod {
    /// The `close` the class had (a function or method descriptor, called with the loop).
    original: Py<PyAny>,
}

#[pymethods]
impl ClosingMethod {
    fn __call__(&self, event_loop: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        aiocop_hook::heaptype::guard_py(event_loop.py(), "loop close", || {
            deliver_before_close(event_loop);
            self.original
                .bind(event_loop.py())
                .call1((event_loop,))
                .map(Bound::unbind)
        })
    }

    /// Binds like a function: `loop.close` is a method of the loop.
    fn __get__<'py>(
        slf: &Bound<'py, Self>,
        instance: Option<&Bound<'py, PyAny>>,
        _owner: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::binding::bind_as_method(slf.as_any(), instance)
    }

    /// The class's own `close`.
    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.original.clone_ref(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.original)
    }
}

impl ClosingMethod {
    /// A `close` of ours in front of `class`'s own.
    pub(crate) fn for_class<'py>(class: &Bound<'py, PyType>) -> PyResult<Bound<'py, Self>> {
        Bound::new(
            class.py(),
            Self {
                original: class.getattr(pyo3::intern!(class.py(), "close"))?.unbind(),
            },
        )
    }
}

/// Gives `class` (an asyncio loop's) our `close`, unless it has one already (its own, or from
/// a base class given one before). A class that refuses new attributes keeps its `close`:
/// its loops' pending events are then delivered at interpreter exit instead.
pub(crate) fn wrap_class_close(class: &Bound<'_, PyType>) -> PyResult<()> {
    let py = class.py();
    if class
        .getattr(pyo3::intern!(py, "close"))
        .is_ok_and(|close| close.is_instance_of::<ClosingMethod>())
    {
        return Ok(());
    }
    let closing = ClosingMethod::for_class(class)?;
    if let Err(err) = class.setattr(pyo3::intern!(py, "close"), closing) {
        tracing::debug!("aiocop could not wrap the close of a loop class: {err}");
    }
    Ok(())
}

/// Before a loop's own `close`: when it is monitored, not running and not closed yet, its
/// pending events (those still with the background thread too) are delivered now, on this
/// thread. Never raises: the loop's `close` runs whatever happens here.
fn deliver_before_close(event_loop: &Bound<'_, PyAny>) {
    let py = event_loop.py();
    let Some(patch) = loop_patch(event_loop) else {
        return;
    };
    let state = |name: &str| {
        event_loop
            .call_method0(name)
            .and_then(|v| v.is_truthy())
            .unwrap_or(true)
    };
    if state("is_running") || state("is_closed") {
        PyErr::take(py);
        return;
    }
    dispatch::flush(py, Some(patch.get().shared()));
}
