//! A stock asyncio loop's `call_soon`, done natively (closed check, `events.Handle`, append to
//! `_ready`) instead of entering the Python method: see [`DirectCallSoon`].

use std::ptr::null_mut;

use pyo3::ffi;
use pyo3::prelude::*;

/// A stock asyncio loop's `call_soon`, done natively: the loop (the original bound method's
/// `self`) and `asyncio.events.Handle`. Calling the pure-Python `call_soon` from C (a new
/// interpreter entry, then `_check_closed` and `_call_soon`) cost more than the rest of the
/// replacement; outside debug mode those steps are only an attribute check, the `Handle` and
/// an append, which the replacement does itself (and forwards to the original for anything
/// else: debug mode, a closed loop).
#[derive(Debug)]
pub(crate) struct DirectCallSoon {
    event_loop: Py<PyAny>,
    handle_type: Py<PyAny>,
}

impl DirectCallSoon {
    /// `Some` when `event_loop` runs asyncio's stock `call_soon`, `_call_soon`,
    /// `_check_closed` and `get_debug` (not overridden by its class or the instance) and its
    /// `_ready` is a deque; checked once, when the loop is patched (before the patch replaces
    /// `call_soon`).
    #[cold]
    pub(crate) fn for_loop(event_loop: &Bound<'_, PyAny>) -> Option<Self> {
        use aiocop_hook::compat::{Current, PythonVersion};
        if !Current::STOCK_CALL_SOON_IS_HANDLE_APPEND {
            return None;
        }
        let py = event_loop.py();
        let base = py
            .import("asyncio.base_events")
            .and_then(|m| m.getattr("BaseEventLoop"))
            .ok()?;
        for name in ["call_soon", "_call_soon", "_check_closed", "get_debug"] {
            let bound = event_loop.getattr(name).ok()?;
            let stock = base.getattr(name).ok()?;
            let func = bound.getattr("__func__").ok()?;
            if !func.is(&stock) || !bound.getattr("__self__").ok()?.is(event_loop) {
                return None;
            }
        }
        let deque = py
            .import("collections")
            .and_then(|m| m.getattr("deque"))
            .ok()?;
        if !event_loop.getattr("_ready").ok()?.get_type().is(&deque) {
            return None;
        }
        let handle_type = py
            .import("asyncio.events")
            .and_then(|m| m.getattr("Handle"))
            .ok()?;
        Some(Self {
            event_loop: event_loop.clone().unbind(),
            handle_type: handle_type.unbind(),
        })
    }

    pub(crate) fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.event_loop)?;
        visit.call(&self.handle_type)
    }
}

/// Whether the loop attribute `name` is `False` (a missing attribute or any other value is
/// not: the original `call_soon` then handles it, error and all).
///
/// # Safety
/// GIL held; `event_loop` valid.
unsafe fn attr_is_false(
    event_loop: *mut ffi::PyObject,
    name: &Bound<'_, pyo3::types::PyString>,
) -> bool {
    // SAFETY: GIL held; `event_loop` valid (the caller's promise), `name` a str we hold.
    let value = unsafe { ffi::PyObject_GetAttr(event_loop, name.as_ptr()) };
    if value.is_null() {
        // SAFETY: GIL held, the failed lookup's exception set: dropped, as the original
        // reports the error when it is called.
        unsafe { ffi::PyErr_Clear() };
        return false;
    }
    // SAFETY: the False singleton, compared only.
    let is_false = value == unsafe { ffi::Py_False() };
    // SAFETY: GIL held; `value` is the lookup's new reference, released once.
    unsafe { ffi::Py_DECREF(value) };
    is_false
}

/// asyncio's `call_soon` for `wrapped` (already monitored) on a loop with [`DirectCallSoon`]:
/// `Ok(None)` when the loop is in debug mode or closed (the caller forwards to the original).
///
/// # Safety
/// GIL held; `wrapped` and `context` (or NULL) valid.
pub(crate) unsafe fn direct_call_soon(
    py: Python<'_>,
    direct: &DirectCallSoon,
    wrapped: *mut ffi::PyObject,
    context: *mut ffi::PyObject,
) -> PyResult<Option<*mut ffi::PyObject>> {
    let event_loop = direct.event_loop.as_ptr();
    // SAFETY: GIL held; the loop is alive (the patch holds it).
    let debug_off = unsafe { attr_is_false(event_loop, pyo3::intern!(py, "_debug")) };
    // SAFETY: GIL held; the loop is alive (the patch holds it).
    let plain = debug_off && unsafe { attr_is_false(event_loop, pyo3::intern!(py, "_closed")) };
    if !plain {
        return Ok(None);
    }
    let context = if context.is_null() {
        // SAFETY: the None singleton, borrowed for the call (immortal or kept by the
        // interpreter).
        unsafe { ffi::Py_None() }
    } else {
        context
    };
    // SAFETY: the empty-tuple singleton (or a new empty tuple): a new reference.
    let no_args = unsafe { ffi::PyTuple_New(0) };
    if no_args.is_null() {
        return Err(PyErr::fetch(py));
    }
    let handle_args = [wrapped, no_args, event_loop, context];
    // SAFETY: GIL held; `Handle(callback, args, loop, context)` with valid borrowed arguments.
    let handle = unsafe {
        ffi::PyObject_Vectorcall(
            direct.handle_type.as_ptr(),
            handle_args.as_ptr(),
            handle_args.len(),
            null_mut(),
        )
    };
    // SAFETY: GIL held; our reference to the empty tuple, released once (the handle holds its
    // own).
    unsafe { ffi::Py_DECREF(no_args) };
    if handle.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: GIL held; the loop is alive (the patch holds it) and the name an interned str.
    let ready = unsafe { ffi::PyObject_GetAttr(event_loop, pyo3::intern!(py, "_ready").as_ptr()) };
    let appended = if ready.is_null() {
        null_mut()
    } else {
        // SAFETY: GIL held; `ready.append(handle)` with valid objects.
        let result = unsafe {
            ffi::PyObject_CallMethodOneArg(ready, pyo3::intern!(py, "append").as_ptr(), handle)
        };
        // SAFETY: GIL held; the lookup's new reference to `_ready`, released once.
        unsafe { ffi::Py_DECREF(ready) };
        result
    };
    if appended.is_null() {
        // SAFETY: GIL held; the new handle, ours alone (never appended), released once.
        unsafe { ffi::Py_DECREF(handle) };
        return Err(PyErr::fetch(py));
    }
    // SAFETY: GIL held; the append's result (`None`), a new reference released once.
    unsafe { ffi::Py_DECREF(appended) };
    Ok(Some(handle))
}
