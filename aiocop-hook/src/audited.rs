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

use std::ffi::{c_char, c_int, c_void, CString};
use std::mem::offset_of;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, null_mut};
use std::sync::atomic::AtomicPtr;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::heaptype::{create_once, dealloc, guard, member, panicked, slot, Table, MEMBER_END};
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
    // SAFETY: `obj` is a zeroed AuditedObject we just allocated; `original` is valid.
    unsafe {
        (*a).vectorcall = Some(audited_vectorcall);
        (*a).original = original.clone().into_ptr();
        (*a).event = event.into_raw();
        (*a).is_socket = is_socket;
    }
    // SAFETY: a new reference.
    Ok(unsafe { Bound::from_owned_ptr(py, obj) })
}

/// `sock.gettimeout() == 0.0` (a non-blocking socket); false when it cannot tell.
fn non_blocking(py: Python<'_>, sock: *mut ffi::PyObject) -> bool {
    // SAFETY: `sock` is a valid object (a call argument).
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
        // SAFETY: GIL held; a new tuple of `nargs` empty slots, or NULL with an exception set.
        let tuple = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyTuple_New(nargs as ffi::Py_ssize_t))?
        };
        for i in 0..nargs {
            // SAFETY: a vectorcall passes `nargs` valid positional pointers; each empty slot of
            // the new tuple takes a new reference.
            unsafe {
                ffi::PyTuple_SET_ITEM(
                    tuple.as_ptr(),
                    i as ffi::Py_ssize_t,
                    ffi::Py_NewRef(*args.add(i)),
                );
            }
        }
        // SAFETY: it was made as a tuple just above.
        let tuple = unsafe { tuple.cast_into_unchecked::<pyo3::types::PyTuple>() };
        let kwargs = pyo3::types::PyDict::new(py);
        if !kwnames.is_null() {
            // SAFETY: kwnames is a tuple of str naming the values after the positionals.
            let names = unsafe { Bound::from_borrowed_ptr(py, kwnames) };
            for (i, name) in names.try_iter()?.enumerate() {
                // SAFETY: as above.
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
    // SAFETY: `callable` is an AuditedObject (this function is only installed on it).
    let (original, event, is_socket) = unsafe { ((*a).original, (*a).event, (*a).is_socket) };
    if original.is_null() {
        // SAFETY: GIL held (vectorcall).
        let py = unsafe { Python::assume_attached() };
        PyRuntimeError::new_err("aiocop: audited function was cleared").restore(py);
        return null_mut();
    }
    // Outside a monitored handle (every audited call of every other thread, and of the loop
    // between handles) this entry is a field read, a thread-local read and the forwarding
    // call, none of which can panic: only the work inside a handle, which can, runs under
    // `catch_unwind`, so the common case pays for no unwinding frame.
    if in_handle() {
        // SAFETY: GIL held (vectorcall).
        let py = unsafe { Python::assume_attached() };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: a vectorcall's nargsf.
            let nargs = usize::try_from(unsafe { ffi::PyVectorcall_NARGS(nargsf) }).unwrap_or(0);
            // SAFETY: at least one positional when nargs > 0.
            if is_socket && nargs > 0 && non_blocking(py, unsafe { *args }) {
                return 0;
            }
            // SAFETY: forwarded from our caller.
            unsafe { raise_event(py, event, args, nargs, kwnames) }
        }));
        match outcome {
            Ok(0) => {}
            Ok(_) => return null_mut(), // a hook refused the call: its exception is set
            Err(_) => {
                // SAFETY: GIL held.
                if unsafe { !ffi::PyErr_Occurred().is_null() } {
                    // SAFETY: GIL held.
                    unsafe { ffi::PyErr_Clear() };
                }
            }
        }
    }
    // SAFETY: forwarding a valid vectorcall to the original callable.
    unsafe { ffi::PyObject_Vectorcall(original, args, nargsf, kwnames) }
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
            // SAFETY: GIL held (descriptor protocol); bind like a function does.
            unsafe {
                if obj.is_null() || obj == ffi::Py_None() {
                    ffi::Py_NewRef(slf)
                } else {
                    PyMethod_New(slf, obj)
                }
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
            // SAFETY: GIL held (tp_getattro); `slf` is a live AuditedObject.
            unsafe {
                // The type itself has a `__doc__` and a `__module__`: read those from the original.
                let original = (*slf.cast::<AuditedObject>()).original;
                if !original.is_null()
                    && (ffi::PyUnicode_CompareWithASCIIString(name, c"__doc__".as_ptr()) == 0
                        || ffi::PyUnicode_CompareWithASCIIString(name, c"__module__".as_ptr()) == 0)
                {
                    return ffi::PyObject_GetAttr(original, name);
                }
                let found = ffi::PyObject_GenericGetAttr(slf, name);
                if !found.is_null() || ffi::PyErr_ExceptionMatches(ffi::PyExc_AttributeError) == 0 {
                    return found;
                }
                if original.is_null() {
                    return null_mut();
                }
                ffi::PyErr_Clear();
                ffi::PyObject_GetAttr(original, name)
            }
        },
    )
}

unsafe extern "C" fn audited_repr(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: GIL held (tp_repr).
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a live AuditedObject.
        let original = unsafe { (*slf.cast::<AuditedObject>()).original };
        if original.is_null() {
            return "<aiocop audited (cleared)>".to_owned();
        }
        // SAFETY: valid strong reference held by `slf`.
        let inner = unsafe { Bound::from_borrowed_ptr(py, original) }
            .repr()
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "<callable>".to_owned());
        format!("<aiocop audited {inner}>")
    }));
    let text = outcome.unwrap_or_else(|_| "<aiocop audited>".to_owned());
    pyo3::types::PyString::new(py, &text).into_ptr()
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
            // SAFETY: GC calls traverse on a live AuditedObject.
            let original = unsafe { (*slf.cast::<AuditedObject>()).original };
            if !original.is_null() {
                // SAFETY: visiting a valid object with the GC's visitor.
                let rc = unsafe { visit(original, arg) };
                if rc != 0 {
                    return rc;
                }
            }
            // SAFETY: heap types visit their type.
            unsafe { visit(ffi::Py_TYPE(slf).cast(), arg) }
        },
    )
}

unsafe extern "C" fn audited_clear(slf: *mut ffi::PyObject) -> c_int {
    guard(
        "AuditedFunction clear",
        || 0,
        || {
            // SAFETY: a live AuditedObject; the field is taken before it is released.
            unsafe {
                let original =
                    std::mem::replace(&mut (*slf.cast::<AuditedObject>()).original, null_mut());
                if !original.is_null() {
                    ffi::Py_DECREF(original);
                }
            }
            0
        },
    )
}

unsafe extern "C" fn audited_dealloc(slf: *mut ffi::PyObject) {
    guard(
        "AuditedFunction dealloc",
        || (),
        || {
            // SAFETY: called once when the refcount drops to zero, GIL held; the event name is taken
            // out before the object is freed.
            unsafe {
                let event =
                    std::mem::replace(&mut (*slf.cast::<AuditedObject>()).event, ptr::null());
                if !event.is_null() {
                    drop(CString::from_raw(event.cast_mut()));
                }
                dealloc(slf, audited_clear);
            }
        },
    )
}
