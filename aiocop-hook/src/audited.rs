//! `AuditedFunction`: the wrappers `patch_audit_functions()` installs for blocking calls that
//! CPython does not audit (or not usably). A hand-built vectorcall type: outside a monitored
//! handle a call costs one thread-local read on top of the original; inside one it raises the
//! audit event `name((args_tuple, kwargs_dict))` — as `sys.audit(name, args, kwargs)` would —
//! so that every audit hook (ours and the user's) sees it, then calls the original. A socket
//! whose timeout is 0.0 (non-blocking) never raises the event.
//!
//! It binds like a function (`tp_descr_get`, `Py_TPFLAGS_METHOD_DESCRIPTOR`), so it can replace
//! methods such as `socket.socket.connect`, and it has no Python frame, so it never shows up in
//! a trace. Unknown attributes (`__name__`, `__doc__`, ...) are read from the original;
//! `__wrapped__` is the original.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::mem::offset_of;
use std::ptr::{self, null_mut};
use std::sync::atomic::AtomicPtr;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::heaptype::{
    carry_on, create_once, dealloc, guard, leak, member, panicked, plain_repr, slot, Table,
    MEMBER_END,
};
use crate::state::in_handle;

extern "C" {
    // Declared here: pyo3-ffi declares neither (both are outside the limited API).
    fn PySys_Audit(event: *const c_char, format: *const c_char, ...) -> c_int;
    fn PyMethod_New(func: *mut ffi::PyObject, self_: *mut ffi::PyObject) -> *mut ffi::PyObject;
}

#[repr(C)]
struct AuditedObject {
    ob_base: ffi::PyObject,
    vectorcall: Option<ffi::vectorcallfunc>,
    /// Strong reference to the wrapped callable, or NULL once cleared.
    original: *mut ffi::PyObject,
    /// The event name, NUL-terminated; leaked (a few dozen per process).
    event: *const c_char,
    /// The first argument is a socket: skip the event when its timeout is 0.0.
    is_socket: bool,
}

static MEMBERS: Table<[ffi::PyMemberDef; 3]> = Table([
    member(
        c"__vectorcalloffset__",
        ffi::Py_T_PYSSIZET,
        offset_of!(AuditedObject, vectorcall),
    ),
    member(
        c"__wrapped__",
        ffi::Py_T_OBJECT_EX,
        offset_of!(AuditedObject, original),
    ),
    MEMBER_END,
]);

static AUDITED_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(null_mut());

fn audited_type(py: Python<'_>) -> PyResult<*mut ffi::PyTypeObject> {
    create_once(
        py,
        &AUDITED_TYPE,
        c"aiocop._aiocop.AuditedFunction",
        std::mem::size_of::<AuditedObject>(),
        ffi::Py_TPFLAGS_METHOD_DESCRIPTOR,
        vec![
            slot(ffi::Py_tp_dealloc, audited_dealloc as *mut c_void),
            slot(ffi::Py_tp_traverse, audited_traverse as *mut c_void),
            slot(ffi::Py_tp_clear, audited_clear as *mut c_void),
            slot(ffi::Py_tp_call, ffi::PyVectorcall_Call as *mut c_void),
            slot(ffi::Py_tp_descr_get, audited_descr_get as *mut c_void),
            slot(ffi::Py_tp_getattro, audited_getattro as *mut c_void),
            slot(ffi::Py_tp_repr, audited_repr as *mut c_void),
            slot(ffi::Py_tp_members, MEMBERS.0.as_ptr().cast_mut().cast()),
        ],
    )
}

/// Wraps `original` so that, inside a monitored handle, calling it raises the audit event
/// `event` first. `is_socket`: the first argument is a socket (skipped when non-blocking).
pub fn audited<'py>(
    original: &Bound<'py, PyAny>,
    event: &str,
    is_socket: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = original.py();
    if !original.is_callable() {
        return Err(PyTypeError::new_err("original must be callable"));
    }
    let event =
        CString::new(event).map_err(|_| PyTypeError::new_err("event name must not contain NUL"))?;
    let tp = audited_type(py)?;
    // SAFETY: GIL held; `tp` is our heap type; GenericAlloc zero-fills and GC-tracks.
    let obj = unsafe { ffi::PyType_GenericAlloc(tp, 0) };
    if obj.is_null() {
        return Err(PyErr::fetch(py));
    }
    let a = obj.cast::<AuditedObject>();
    // SAFETY: `obj` is a zeroed AuditedObject we just allocated and nothing else has seen:
    // its fields are ours to fill, the object taking the reference to `original` and the
    // leaked event name (both released by its dealloc).
    unsafe {
        (*a).vectorcall = Some(audited_vectorcall);
        (*a).original = original.clone().into_ptr();
        (*a).event = event.into_raw();
        (*a).is_socket = is_socket;
    }
    // SAFETY: GIL held; `obj` is the new reference `PyType_GenericAlloc` returned, non-NULL.
    Ok(unsafe { Bound::from_owned_ptr(py, obj) })
}

/// `sock.gettimeout() == 0.0` (a non-blocking socket); false when it cannot tell.
fn non_blocking(py: Python<'_>, sock: *mut ffi::PyObject) -> bool {
    // SAFETY: GIL held; `sock` is a call argument, valid (borrowed) for the whole call.
    let sock = unsafe { Bound::from_borrowed_ptr(py, sock) };
    match sock.call_method0(pyo3::intern!(py, "gettimeout")) {
        Ok(timeout) => timeout.extract::<f64>().is_ok_and(|t| t == 0.0),
        Err(_) => false,
    }
}

/// Raises the audit event with the arguments `(args_tuple, kwargs_dict)`. Returns -1 with an
/// exception set when a hook refused the call.
///
/// # Safety
/// GIL held; a valid vectorcall (`args`, `nargs`, `kwnames`).
unsafe fn raise_event(
    py: Python<'_>,
    event: *const c_char,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> c_int {
    let build = || -> PyResult<(Bound<'_, pyo3::types::PyTuple>, Bound<'_, pyo3::types::PyDict>)> {
        // SAFETY: GIL held; any size.
        let tuple = unsafe { ffi::PyTuple_New(nargs as ffi::Py_ssize_t) };
        // SAFETY: GIL held; a new tuple of `nargs` empty slots, or NULL with an exception set.
        let tuple = unsafe { Bound::from_owned_ptr_or_err(py, tuple)? };
        for i in 0..nargs {
            // SAFETY: a vectorcall passes `nargs` positional pointers; `i < nargs`.
            let item = unsafe { *args.add(i) };
            // SAFETY: GIL held; `item` is a valid argument of the call: a new reference.
            let item = unsafe { ffi::Py_NewRef(item) };
            // SAFETY: slot `i < nargs` of the new tuple, still empty, steals the new reference.
            unsafe { ffi::PyTuple_SET_ITEM(tuple.as_ptr(), i as ffi::Py_ssize_t, item) };
        }
        // SAFETY: `tuple` was made by PyTuple_New just above: a tuple.
        let tuple = unsafe { tuple.cast_into_unchecked::<pyo3::types::PyTuple>() };
        let kwargs = pyo3::types::PyDict::new(py);
        if !kwnames.is_null() {
            // SAFETY: GIL held; non-NULL kwnames of a vectorcall, a tuple of str valid for the
            // call.
            let names = unsafe { Bound::from_borrowed_ptr(py, kwnames) };
            for (i, name) in names.try_iter()?.enumerate() {
                // SAFETY: a vectorcall passes one value per keyword name right after the
                // `nargs` positionals, each valid (borrowed) for the call.
                let value = unsafe { Bound::from_borrowed_ptr(py, *args.add(nargs + i)) };
                kwargs.set_item(name?, value)?;
            }
        }
        Ok((tuple, kwargs))
    };
    // The hooks get the pair itself: with "O", PySys_Audit passes a tuple on as the event's
    // arguments (with "OO" it would build the same pair again from the format).
    let pair = build().and_then(|(tuple, kwargs)| {
        pyo3::types::PyTuple::new(py, [tuple.into_any(), kwargs.into_any()])
    });
    match pair {
        // SAFETY: GIL held; "O" takes one object pointer, borrowed for the call.
        Ok(pair) => unsafe { PySys_Audit(event, c"O".as_ptr(), pair.as_ptr()) },
        // Our own failure never fails the user's call.
        Err(_) => 0,
    }
}

unsafe extern "C" fn audited_vectorcall(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let a = callable.cast::<AuditedObject>();
    // SAFETY: `callable` is an AuditedObject (this function is only installed on it), alive
    // for the call; the fields are plain reads.
    let (original, event, is_socket) = unsafe { ((*a).original, (*a).event, (*a).is_socket) };
    if original.is_null() {
        return cleared();
    }
    // Not wholly under `guard` (like the audit hook): outside a monitored handle (every audited call of
    // every other thread, and of the loop between handles) it is a field read, a thread-local
    // read and the forwarding call, none of which can panic, and an unwinding frame there
    // would cost instructions on the hottest path. Only the work inside a handle, which can
    // panic, runs under the guard; a panic there drops the audit event, never the call.
    if in_handle() {
        let rc = guard("AuditedFunction call", carry_on, || {
            // SAFETY: CPython calls a vectorcall with the GIL held.
            let py = unsafe { Python::assume_attached() };
            // SAFETY: `nargsf` is our caller's vectorcall argument count (flag bits included).
            let nargs = usize::try_from(unsafe { ffi::PyVectorcall_NARGS(nargsf) }).unwrap_or(0);
            // SAFETY: with `nargs > 0` the first positional pointer is a valid argument.
            if is_socket && nargs > 0 && non_blocking(py, unsafe { *args }) {
                return 0;
            }
            // SAFETY: GIL held; `args`, `nargs` and `kwnames` are our caller's vectorcall.
            unsafe { raise_event(py, event, args, nargs, kwnames) }
        });
        if rc != 0 {
            return null_mut(); // a hook refused the call: its exception is set
        }
    }
    // SAFETY: GIL held; forwarding our caller's valid vectorcall to the original callable,
    // which `callable` keeps alive for the call.
    unsafe { ffi::PyObject_Vectorcall(original, args, nargsf, kwnames) }
}

/// A call of an `AuditedFunction` whose original was cleared (by the collector): a
/// `RuntimeError`.
#[cold]
#[inline(never)]
fn cleared() -> *mut ffi::PyObject {
    // SAFETY: only called from the vectorcall, which runs with the GIL held.
    let py = unsafe { Python::assume_attached() };
    PyRuntimeError::new_err("aiocop: audited function was cleared").restore(py);
    null_mut()
}

unsafe extern "C" fn audited_descr_get(
    slf: *mut ffi::PyObject,
    obj: *mut ffi::PyObject,
    _tp: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(
        "AuditedFunction.__get__",
        || panicked("AuditedFunction.__get__"),
        || {
            // SAFETY: the None singleton, compared only.
            if obj.is_null() || obj == unsafe { ffi::Py_None() } {
                // SAFETY: GIL held; `slf` is alive for the call: a new reference to it.
                unsafe { ffi::Py_NewRef(slf) }
            } else {
                // SAFETY: GIL held; `slf` and `obj` valid for the call: binds like a function
                // does (a new reference, or NULL with an exception set).
                unsafe { PyMethod_New(slf, obj) }
            }
        },
    )
}

unsafe extern "C" fn audited_getattro(
    slf: *mut ffi::PyObject,
    name: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    guard(
        "AuditedFunction attribute lookup",
        || panicked("AuditedFunction attribute lookup"),
        || {
            // SAFETY: `slf` is a live AuditedObject (tp_getattro of its type); a field read.
            let original = unsafe { (*slf.cast::<AuditedObject>()).original };
            // SAFETY: GIL held; `name` is the attribute name CPython passes, a str.
            let is = |attr: &CStr| unsafe {
                ffi::PyUnicode_CompareWithASCIIString(name, attr.as_ptr()) == 0
            };
            // The type itself has a `__doc__` and a `__module__`: read those from the original.
            if !original.is_null() && (is(c"__doc__") || is(c"__module__")) {
                // SAFETY: GIL held; `slf` holds `original` for the call; `name` is a str.
                return unsafe { ffi::PyObject_GetAttr(original, name) };
            }
            // SAFETY: GIL held; the generic lookup on our own object and a str name.
            let found = unsafe { ffi::PyObject_GenericGetAttr(slf, name) };
            if !found.is_null() {
                return found;
            }
            // SAFETY: GIL held, and the failed lookup left an exception set.
            let missing = unsafe { ffi::PyErr_ExceptionMatches(ffi::PyExc_AttributeError) } != 0;
            if !missing || original.is_null() {
                return null_mut();
            }
            // SAFETY: GIL held; the AttributeError is dropped for the lookup on the original.
            unsafe { ffi::PyErr_Clear() };
            // SAFETY: GIL held; `slf` holds `original` for the call; `name` is a str.
            unsafe { ffi::PyObject_GetAttr(original, name) }
        },
    )
}

unsafe extern "C" fn audited_repr(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls tp_repr with the GIL held.
    let py = unsafe { Python::assume_attached() };
    guard(
        "AuditedFunction repr",
        || plain_repr(c"<aiocop audited>"),
        || {
            // SAFETY: `slf` is a live AuditedObject (tp_repr of its type); a field read.
            let original = unsafe { (*slf.cast::<AuditedObject>()).original };
            if original.is_null() {
                return plain_repr(c"<aiocop audited (cleared)>");
            }
            // SAFETY: GIL held; `slf` holds a strong reference to `original` for the call.
            let inner = unsafe { Bound::from_borrowed_ptr(py, original) }
                .repr()
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "<callable>".to_owned());
            pyo3::types::PyString::new(py, &format!("<aiocop audited {inner}>")).into_ptr()
        },
    )
}

unsafe extern "C" fn audited_traverse(
    slf: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    guard(
        "AuditedFunction traverse",
        || 0,
        || {
            // SAFETY: the collector traverses live objects only; a field read.
            let original = unsafe { (*slf.cast::<AuditedObject>()).original };
            if !original.is_null() {
                // SAFETY: `original` is a strong reference `slf` holds; `visit` and `arg` are
                // the collector's own, passed on unchanged.
                let rc = unsafe { visit(original, arg) };
                if rc != 0 {
                    return rc;
                }
            }
            // SAFETY: `slf` is live, so its type (a heap type, which its instances visit) is.
            let tp = unsafe { ffi::Py_TYPE(slf) };
            // SAFETY: the collector's own `visit` and `arg` on a live object.
            unsafe { visit(tp.cast(), arg) }
        },
    )
}

unsafe extern "C" fn audited_clear(slf: *mut ffi::PyObject) -> c_int {
    guard(
        "AuditedFunction clear",
        || 0,
        || {
            // SAFETY: `slf` is a live AuditedObject (tp_clear, or its dealloc, GIL held); the
            // field is taken out before it is released, so code run by the release sees it
            // cleared.
            let original = unsafe {
                std::mem::replace(&mut (*slf.cast::<AuditedObject>()).original, null_mut())
            };
            if !original.is_null() {
                // SAFETY: GIL held; the strong reference the field held, now ours.
                unsafe { ffi::Py_DECREF(original) };
            }
            0
        },
    )
}

unsafe extern "C" fn audited_dealloc(slf: *mut ffi::PyObject) {
    guard(
        "AuditedFunction dealloc",
        // SAFETY: GIL held; the dealloc frees `slf` only in its last step, which cannot panic.
        || unsafe { leak(slf) },
        || {
            // SAFETY: CPython deallocates `slf` (count zero, GIL held), an AuditedObject; the
            // event name is taken out before the object goes.
            let event = unsafe {
                std::mem::replace(&mut (*slf.cast::<AuditedObject>()).event, ptr::null())
            };
            if !event.is_null() {
                // SAFETY: `event` came from `CString::into_raw` in `audited`, and the field
                // that held it is now NULL: it is released once.
                drop(unsafe { CString::from_raw(event.cast_mut()) });
            }
            // SAFETY: called once from tp_dealloc (count zero, GIL held) on an object of the
            // type `audited_type` made, whose tp_clear is `audited_clear`.
            unsafe { dealloc(slf, audited_clear) };
        },
    )
}
