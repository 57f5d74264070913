//! Helpers for the hand-built heap types (`AuditedFunction` here, `MonitoredCallback` in
//! `aiocop-loop`): static tables CPython reads, type creation from a spec, and the GC-aware
//! deallocation every such type needs.

use std::ffi::{c_int, c_ulong, c_void, CStr, CString};
use std::ptr::{self, null_mut};
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;

/// Runs the body of an `extern "C"` entry (the audit hook, a slot or a vectorcall of a
/// hand-built type): a panic never crosses into CPython; it is logged (`tracing`) and the
/// entry returns `on_panic()` instead (with the GIL held, as every such entry runs).
///
/// `entry` names the entry in the log line and is its fault-injection point
/// ([`crate::fault`]): a test build armed at `entry` panics here on purpose (a constant
/// `false` in any other build).
pub fn guard<R>(entry: &'static str, on_panic: impl FnOnce() -> R, body: impl FnOnce() -> R) -> R {
    let body = || {
        if crate::fault::fires(entry) {
            panic!("injected panic in {entry}");
        }
        body()
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|_| {
        tracing::error!("panic inside aiocop's {entry}");
        on_panic()
    })
}

/// `on_panic` for an entry that returns a new reference: a `RuntimeError` is set, NULL
/// returned. Made through the C API alone, so that it cannot panic in turn (a pyo3 error
/// made from a Rust string panics when CPython is out of memory).
pub fn panicked(entry: &'static str) -> *mut ffi::PyObject {
    let message = CString::new(format!("panic inside aiocop's {entry}"))
        .unwrap_or_else(|_| c"panic inside aiocop".to_owned());
    // SAFETY: every entry runs with the GIL held (CPython calls its slots so); the message is
    // NUL-terminated and copied by the call.
    unsafe { ffi::PyErr_SetString(ffi::PyExc_RuntimeError, message.as_ptr()) };
    null_mut()
}

/// [`panicked`] for an entry whose body returns a `PyResult`: the `RuntimeError`, fetched (a
/// normalised exception, which restoring later cannot fail).
pub fn panicked_err(py: Python<'_>, entry: &'static str) -> PyErr {
    panicked(entry);
    PyErr::fetch(py)
}

/// The body of a pyo3 method of ours that Python calls (a loop method's or a protocol
/// factory's `__call__`, a delivery): a panic becomes a `RuntimeError`, as in the `extern "C"`
/// entries, never pyo3's `PanicException` (a `BaseException`, which user code does not catch).
pub fn guard_py<R>(
    py: Python<'_>,
    entry: &'static str,
    body: impl FnOnce() -> PyResult<R>,
) -> PyResult<R> {
    guard(entry, || Err(panicked_err(py, entry)), body)
}

/// `on_panic` for a `tp_repr`: the fixed `text`, made through the C API alone (NULL with an
/// exception set when CPython is out of memory).
pub fn plain_repr(text: &'static CStr) -> *mut ffi::PyObject {
    // SAFETY: every entry runs with the GIL held; `text` is a NUL-terminated ASCII string.
    unsafe { ffi::PyUnicode_FromString(text.as_ptr()) }
}

/// `on_panic` for an entry whose failure must not fail the user's call (the audit hook, the
/// audit event of an `AuditedFunction`): whatever exception the body had set before it
/// panicked is cleared and 0 (go on) returned.
pub fn carry_on() -> c_int {
    // SAFETY: every entry runs with the GIL held (CPython calls its hooks and slots so);
    // clearing releases the exception at once, with no pyo3 object in between.
    unsafe { ffi::PyErr_Clear() };
    0
}

/// `on_panic` for a `tp_dealloc`: the object is leaked rather than freed half-way, and taken
/// off the collector's lists first, so that the collector never visits an object whose count
/// is zero.
///
/// # Safety
/// GIL held; `obj` is the object whose `tp_dealloc` panicked, still allocated (a dealloc
/// frees it in its last step, which cannot panic).
pub unsafe fn leak(obj: *mut ffi::PyObject) {
    // SAFETY: `obj` is still allocated and a GC object (the caller's promise);
    // `PyObject_GC_UnTrack` checks whether it is tracked, so it may already be untracked.
    unsafe { ffi::PyObject_GC_UnTrack(obj.cast()) };
}

/// Makes an FFI table usable in a `static` (CPython only reads these tables).
#[derive(Debug)]
pub struct Table<T>(pub T);
// SAFETY: the wrapped tables are immutable after construction and only read by CPython.
unsafe impl<T> Sync for Table<T> {}

/// A read-only member (`PyMemberDef`) at `offset` of the object.
pub const fn member(name: &'static CStr, type_code: c_int, offset: usize) -> ffi::PyMemberDef {
    ffi::PyMemberDef {
        name: name.as_ptr(),
        type_code,
        offset: offset as ffi::Py_ssize_t,
        flags: ffi::Py_READONLY,
        doc: ptr::null(),
    }
}

/// The terminating entry of a member table.
pub const MEMBER_END: ffi::PyMemberDef = ffi::PyMemberDef {
    name: ptr::null(),
    type_code: 0,
    offset: 0,
    flags: 0,
    doc: ptr::null(),
};

/// A type slot.
pub fn slot(id: c_int, pfunc: *mut c_void) -> ffi::PyType_Slot {
    ffi::PyType_Slot { slot: id, pfunc }
}

/// Creates the heap type described by the arguments once, and keeps it in `cell` for the life
/// of the process; later calls return it. `slots` need no terminator. The type is GC-aware,
/// implements vectorcall and cannot be instantiated from Python; `extra_flags` are added.
pub fn create_once(
    py: Python<'_>,
    cell: &AtomicPtr<ffi::PyTypeObject>,
    name: &'static CStr,
    basicsize: usize,
    extra_flags: c_ulong,
    mut slots: Vec<ffi::PyType_Slot>,
) -> PyResult<*mut ffi::PyTypeObject> {
    let existing = cell.load(Ordering::Acquire);
    if !existing.is_null() {
        return Ok(existing);
    }
    slots.push(slot(0, null_mut()));
    let slots: &'static mut [ffi::PyType_Slot] = Box::leak(slots.into_boxed_slice());
    let spec: &'static mut ffi::PyType_Spec = Box::leak(Box::new(ffi::PyType_Spec {
        name: name.as_ptr(),
        basicsize: c_int::try_from(basicsize).unwrap_or(c_int::MAX),
        itemsize: 0,
        flags: (ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_HAVE_GC
            | ffi::Py_TPFLAGS_HAVE_VECTORCALL
            | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION
            | extra_flags) as std::ffi::c_uint,
        slots: slots.as_mut_ptr(),
    }));
    // SAFETY: GIL held (`py`); the spec and its tables are 'static.
    let tp = unsafe { ffi::PyType_FromSpec(spec) };
    if tp.is_null() {
        return Err(PyErr::fetch(py));
    }
    match cell.compare_exchange(null_mut(), tp.cast(), Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(tp.cast()),
        Err(winner) => {
            // SAFETY: GIL held; another call won the race, so nothing else refers to the type
            // we made: our reference is released.
            unsafe { ffi::Py_DECREF(tp) };
            Ok(winner)
        }
    }
}

/// The body of a GC-aware heap type's `tp_dealloc`: untrack, clear, free, release the type.
///
/// # Safety
/// Called once from `tp_dealloc` (refcount zero, GIL held) on an object of a type made by
/// [`create_once`]; `clear` is that type's `tp_clear`.
pub unsafe fn dealloc(
    obj: *mut ffi::PyObject,
    clear: unsafe extern "C" fn(*mut ffi::PyObject) -> c_int,
) {
    // SAFETY: `obj` is a live object (the caller's promise); its type outlives it.
    let tp = unsafe { ffi::Py_TYPE(obj) };
    // SAFETY: GIL held; a GC object of a `create_once` type, untracked before its fields go.
    unsafe { ffi::PyObject_GC_UnTrack(obj.cast()) };
    // SAFETY: GIL held; `clear` is the type's own `tp_clear` (the caller's promise), on an
    // object that is still allocated.
    unsafe { clear(obj) };
    // SAFETY: `tp` is a live type object (`obj` still holds its reference to it).
    let free = unsafe { (*tp).tp_free };
    match free {
        // SAFETY: the type's own deallocator, once, on an untracked object nothing refers to.
        Some(free) => unsafe { free(obj.cast()) },
        // SAFETY: as `tp_free` would: a GC object allocated by `PyType_GenericAlloc`.
        None => unsafe { ffi::PyObject_GC_Del(obj.cast()) },
    }
    // SAFETY: the reference every instance of a heap type holds to it, released once `obj`
    // is gone (the type may go with it).
    unsafe { ffi::Py_DECREF(tp.cast()) };
}
