//! The `("context",)` keyword-names tuple, made once, and the check that a caller's
//! keyword names are that tuple: every scheduling call passes the task's context by that
//! keyword, forwarded with `PyObject_Vectorcall` instead of building a keyword dict.

use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;

static CONTEXT_KWNAMES: AtomicPtr<ffi::PyObject> = AtomicPtr::new(null_mut());

/// The `("context",)` keyword-names tuple (made once, kept for the process): NULL only if
/// it could not be made.
pub(crate) fn context_kwnames(py: Python<'_>) -> *mut ffi::PyObject {
    let existing = CONTEXT_KWNAMES.load(Ordering::Acquire);
    if !existing.is_null() {
        return existing;
    }
    new_context_kwnames(py)
}

/// Makes the `("context",)` keyword-names tuple (once).
#[cold]
#[inline(never)]
fn new_context_kwnames(py: Python<'_>) -> *mut ffi::PyObject {
    let names = pyo3::types::PyTuple::new(py, [pyo3::intern!(py, "context")])
        .map(|t| t.into_ptr())
        .unwrap_or(null_mut());
    if names.is_null() {
        return null_mut();
    }
    match CONTEXT_KWNAMES.compare_exchange(null_mut(), names, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => names,
        Err(winner) => {
            // SAFETY: GIL held; another call won the race, so nothing else refers to our new
            // tuple: our only reference is released.
            unsafe { ffi::Py_DECREF(names) };
            winner
        }
    }
}

/// A kwnames tuple seen to be exactly `("context",)`, kept alive (so its address cannot be
/// reused by another tuple): the C `Task` passes the same one on every step it schedules.
static KNOWN_CONTEXT_KWNAMES: AtomicPtr<ffi::PyObject> = AtomicPtr::new(null_mut());

/// Whether `kwnames` is `("context",)`: a pointer comparison for the tuple seen before, a
/// string comparison (then remembered) for a new one.
///
/// # Safety
/// GIL held; `kwnames` is a valid tuple of str.
pub(crate) unsafe fn is_context_kwnames(kwnames: *mut ffi::PyObject) -> bool {
    if KNOWN_CONTEXT_KWNAMES.load(Ordering::Relaxed) == kwnames {
        return true;
    }
    // SAFETY: GIL held and `kwnames` a valid tuple of str (this function's own contract, which
    // is `learn_context_kwnames`'s).
    unsafe { learn_context_kwnames(kwnames) }
}

/// [`is_context_kwnames`] for a tuple not seen before.
///
/// # Safety
/// As for [`is_context_kwnames`].
#[cold]
#[inline(never)]
unsafe fn learn_context_kwnames(kwnames: *mut ffi::PyObject) -> bool {
    // SAFETY: GIL held; `kwnames` is a tuple (the caller's promise).
    let one_name = unsafe { ffi::PyTuple_GET_SIZE(kwnames) } == 1;
    // SAFETY: a tuple of one item (checked just before): item 0 is in bounds, a borrowed str.
    let is_context = one_name
        && unsafe {
            let name = ffi::PyTuple_GET_ITEM(kwnames, 0);
            ffi::PyUnicode_CompareWithASCIIString(name, c"context".as_ptr()) == 0
        };
    if is_context {
        // SAFETY: GIL held; `kwnames` is valid: our own reference keeps it alive (and its address
        // unused by another tuple) for as long as it is remembered.
        unsafe { ffi::Py_INCREF(kwnames) };
        let old = KNOWN_CONTEXT_KWNAMES.swap(kwnames, Ordering::Relaxed);
        if !old.is_null() {
            // SAFETY: the reference taken when `old` was remembered (GIL held).
            unsafe { ffi::Py_DECREF(old) };
        }
    }
    is_context
}
