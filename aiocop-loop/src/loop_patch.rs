//! `LoopPatch`: the state installed on a monitored loop — the original scheduling methods the
//! replacements forward to, the loop's shared state, and its `call_exception_handler` — and
//! how a loop's patch is found again (through its replaced `call_soon`).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};

use crate::direct_call_soon::DirectCallSoon;
use crate::loop_state::LoopShared;
use crate::methods::Method;
use crate::registry;

/// The state installed on a monitored loop: the original scheduling methods (which the native
/// replacements in [`crate::native`] forward to) and the loop's shared state.
#[pyclass(frozen, module = "aiocop._aiocop", name = "LoopPatch")]
#[derive(Debug)]
pub struct LoopPatch {
    shared: Arc<LoopShared>,
    /// The originals of the four scheduling methods, as bound before patching, in the order
    /// of [`Method::ALL`].
    originals: [Py<PyAny>; 4],
    call_exception_handler_orig: Py<PyAny>,
    /// Set for a stock asyncio loop: `call_soon` does the stock steps itself.
    direct: Option<DirectCallSoon>,
    /// The loop calls its protocols' callbacks itself, outside any handle (uvloop's): they
    /// are monitored through their class ([`crate::protocols`]).
    calls_protocols: bool,
}

impl LoopPatch {
    /// The loop state shared with the background thread.
    pub fn shared(&self) -> &Arc<LoopShared> {
        &self.shared
    }

    /// The original of a scheduling method.
    pub(crate) fn original(&self, method: Method) -> &Py<PyAny> {
        &self.originals[method.index()]
    }

    /// Whether the loop calls its protocols' callbacks itself (not one of asyncio's loops).
    pub(crate) fn calls_protocols(&self) -> bool {
        self.calls_protocols
    }

    /// What the `call_soon` replacement needs to do a stock asyncio `call_soon` itself.
    pub(crate) fn direct(&self) -> Option<&DirectCallSoon> {
        self.direct.as_ref()
    }

    /// The state of a loop about to be patched: its shared state, the originals of the four
    /// methods and of `call_exception_handler`, and, for a stock asyncio loop, the direct
    /// `call_soon`; `calls_protocols` for a loop that is not one of asyncio's.
    pub(crate) fn for_loop(event_loop: &Bound<'_, PyAny>, calls_protocols: bool) -> PyResult<Self> {
        let original = |name: &str| event_loop.getattr(name).map(Bound::unbind);
        let [a, b, c, d] = Method::ALL.map(|method| original(method.name()));
        Ok(Self {
            shared: LoopShared::new(event_loop)?,
            originals: [a?, b?, c?, d?],
            call_exception_handler_orig: original("call_exception_handler")?,
            direct: DirectCallSoon::for_loop(event_loop),
            calls_protocols,
        })
    }
}

#[pymethods]
impl LoopPatch {
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
        for original in &self.originals {
            visit.call(original)?;
        }
        visit.call(&self.call_exception_handler_orig)?;
        if let Some(direct) = &self.direct {
            direct.traverse(&visit)?;
        }
        Ok(())
    }
}

/// The patch of `event_loop`, if it is patched: the object our `call_soon` replacement is
/// bound to.
pub fn loop_patch<'py>(event_loop: &Bound<'py, PyAny>) -> Option<Bound<'py, LoopPatch>> {
    let py = event_loop.py();
    let call_soon = event_loop.getattr(pyo3::intern!(py, "call_soon")).ok()?;
    // SAFETY: GIL held; `call_soon` is a valid object (a type check only reads its type).
    if unsafe { pyo3::ffi::PyCFunction_Check(call_soon.as_ptr()) } == 0 {
        return None;
    }
    // SAFETY: GIL held; `call_soon` is a builtin (checked just before), which
    // `PyCFunction_GetSelf` accepts; it returns a borrowed reference (or NULL for a module-less
    // plain function).
    let owner = unsafe { pyo3::ffi::PyCFunction_GetSelf(call_soon.as_ptr()) };
    if owner.is_null() {
        return None;
    }
    // SAFETY: GIL held; `owner` is borrowed from `call_soon`, which we hold: valid while we
    // take our own reference.
    let owner = unsafe { Bound::from_borrowed_ptr(py, owner) };
    owner.cast_into::<LoopPatch>().ok()
}
