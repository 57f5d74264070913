//! The replacements of a loop's `call_soon` / `call_later` / `call_at` /
//! `call_soon_threadsafe`: `METH_FASTCALL | METH_KEYWORDS` builtin methods bound to the loop's
//! [`LoopPatch`], one body for all four driven by the [`Method`] table. Each wraps the callback
//! in a `MonitoredCallback` and forwards to the original with `PyObject_Vectorcall` and the
//! cached `("context",)` keyword names (on a stock asyncio loop outside debug mode, `call_soon`
//! does the stock method's steps itself: [`crate::direct_call_soon`]).
//!
//! Every `extern "C"` entry here runs under [`guard`] (its fault-injection point is the
//! method's name): a panic becomes a Python `RuntimeError` raised to the caller.

use std::ptr::null_mut;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;

use aiocop_hook::heaptype::{guard, panicked_err, Table};

use crate::direct_call_soon::direct_call_soon;
use crate::kwnames::{context_kwnames, is_context_kwnames};
use crate::loop_patch::LoopPatch;
use crate::methods::Method;
use crate::monitored::{monitored_type, new_monitored};

#[cold]
#[inline(never)]
fn missing_arguments(method: Method) -> PyErr {
    PyTypeError::new_err(format!(
        "{}() missing required positional arguments",
        method.name()
    ))
}

/// The `context` keyword's value from keyword names other than the usual `("context",)`
/// tuple (NULL when absent); any other keyword is a `TypeError`.
///
/// # Safety
/// GIL held; `args`/`nargs`/`kwnames` are a valid fastcall with non-NULL `kwnames`.
#[cold]
#[inline(never)]
unsafe fn keyword_context(
    py: Python<'_>,
    method: Method,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    let mut context = null_mut();
    // SAFETY: GIL held; a fastcall's non-NULL kwnames is a tuple (of str).
    let nkw = unsafe { ffi::PyTuple_GET_SIZE(kwnames) };
    for i in 0..nkw {
        // SAFETY: `0 <= i < nkw`, in bounds of the tuple; a borrowed str.
        let name = unsafe { ffi::PyTuple_GET_ITEM(kwnames, i) };
        // SAFETY: a fastcall passes one value per keyword name right after the `nargs`
        // positionals; `i < nkw` keeps it in bounds.
        let value = unsafe { *args.add(nargs + i as usize) };
        // SAFETY: GIL held; `name` is a str.
        let is_context =
            unsafe { ffi::PyUnicode_CompareWithASCIIString(name, c"context".as_ptr()) } == 0;
        if !is_context {
            // SAFETY: GIL held; `name` is a str the caller's kwnames holds for the call.
            let name = unsafe { Bound::from_borrowed_ptr(py, name) };
            return Err(PyTypeError::new_err(format!(
                "{}() got an unexpected keyword argument {name}",
                method.name()
            )));
        }
        context = value;
    }
    Ok(context)
}

/// The shared body of the four replacements.
///
/// # Safety
/// GIL held; `slf` is the `LoopPatch` the function was bound to; a valid fastcall.
unsafe fn forward(
    method: Method,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: fastcall functions run with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let on_panic = || Err(panicked_err(py, method.name()));
    let outcome = guard(
        method.name(),
        on_panic,
        || -> PyResult<*mut ffi::PyObject> {
            // SAFETY: GIL held; `slf` is the builtin's `self`, alive for the call.
            let patch = unsafe { Bound::from_borrowed_ptr(py, slf) };
            // SAFETY: `slf` is the object this builtin was bound to: `bound_replacements` binds
            // the four methods to a `LoopPatch` only, and a builtin's `self` never changes.
            let patch = unsafe { patch.cast_unchecked::<LoopPatch>() };
            let patch = patch.get();
            let nargs = usize::try_from(nargs).unwrap_or(0);
            let leading = method.leading();
            if nargs < leading + 1 {
                return Err(missing_arguments(method));
            }
            // SAFETY: a fastcall passes `nargs` valid positional pointers, alive for the call.
            let positional = unsafe { std::slice::from_raw_parts(args, nargs) };
            let mut context: *mut ffi::PyObject = null_mut();
            // SAFETY: a fastcall's kwnames is NULL or a tuple of str.
            if !kwnames.is_null() && unsafe { is_context_kwnames(kwnames) } {
                // SAFETY: kwnames names one keyword, whose value the fastcall passes right after
                // the `nargs` positionals.
                context = unsafe { *args.add(nargs) };
            } else if !kwnames.is_null() {
                // SAFETY: GIL held; our caller's valid fastcall, with non-NULL kwnames.
                context = unsafe { keyword_context(py, method, args, nargs, kwnames)? };
            }
            let callback = positional[leading];
            // asyncio's `call_later` goes through `call_at` (uvloop's the other way round), both
            // patched: a callback that is already monitored is passed through as it is.
            // SAFETY: `callback` is a valid object (a positional argument); its type outlives it.
            let already = unsafe { ffi::Py_TYPE(callback) } == monitored_type()
                && positional.len() == leading + 1;
            let wrapped = if already {
                // SAFETY: GIL held; a new reference to the valid `callback`, to hand to the
                // original and release below like a fresh one.
                unsafe { ffi::Py_NewRef(callback) }
            } else {
                // SAFETY: GIL held; `callback`, its arguments and `slf` are valid objects of our
                // caller's fastcall.
                unsafe {
                    new_monitored(
                        py,
                        callback,
                        &positional[leading + 1..],
                        slf,
                        patch.shared(),
                    )?
                }
            };
            if let (Method::CallSoon, Some(direct)) = (method, patch.direct()) {
                // SAFETY: GIL held; `wrapped` is our new reference and `context` an argument of
                // the call (valid) or NULL.
                let done = unsafe { direct_call_soon(py, direct, wrapped, context) };
                if let Some(handle) = done.transpose() {
                    // SAFETY: GIL held; our reference to `wrapped`, released once (the handle holds
                    // its own).
                    unsafe { ffi::Py_DECREF(wrapped) };
                    return handle;
                }
            }
            // Slot 0 is spare: with PY_VECTORCALL_ARGUMENTS_OFFSET the original (a bound method)
            // may put its `self` there instead of copying the arguments to prepend it.
            let mut call_args: [*mut ffi::PyObject; 4] = [null_mut(); 4];
            if leading == 1 {
                // The delay or time of `call_later`/`call_at` (set one by one: a copy of a length
                // known only at run time would be a `memcpy` call on every scheduling).
                call_args[1] = positional[0];
            }
            call_args[leading + 1] = wrapped;
            let positional_count = leading + 1;
            let kw = if context.is_null() {
                null_mut()
            } else {
                call_args[positional_count + 1] = context;
                context_kwnames(py)
            };
            let original = patch.original(method);
            // SAFETY: GIL held; the pointers in `call_args[1..]` are valid for the call; `kw` is a
            // tuple naming the trailing argument (or NULL); slot 0 of `call_args` is ours, which
            // PY_VECTORCALL_ARGUMENTS_OFFSET lets the callee overwrite.
            let result = unsafe {
                ffi::PyObject_Vectorcall(
                    original.as_ptr(),
                    call_args.as_ptr().add(1),
                    positional_count | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                    kw,
                )
            };
            // SAFETY: GIL held; our reference to `wrapped`, released once (the loop's handle
            // holds its own now).
            unsafe { ffi::Py_DECREF(wrapped) };
            if result.is_null() {
                return Err(PyErr::fetch(py));
            }
            Ok(result)
        },
    );
    match outcome {
        Ok(result) => result,
        Err(err) => {
            err.restore(py);
            null_mut()
        }
    }
}

macro_rules! fastcall {
    ($fn_name:ident, $method:expr) => {
        unsafe extern "C" fn $fn_name(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: CPython calls this as a METH_FASTCALL|METH_KEYWORDS builtin bound to a
            // `LoopPatch` (`bound_replacements`), with the GIL held and a valid fastcall.
            unsafe { forward($method, slf, args, nargs, kwnames) }
        }
    };
}

fastcall!(call_soon_fast, Method::CallSoon);
fastcall!(call_later_fast, Method::CallLater);
fastcall!(call_at_fast, Method::CallAt);
fastcall!(call_soon_threadsafe_fast, Method::CallSoonThreadsafe);

const fn method_def(
    name: &'static std::ffi::CStr,
    f: ffi::PyCFunctionFastWithKeywords,
    doc: &'static std::ffi::CStr,
) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: f,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: doc.as_ptr(),
    }
}

/// The replacements' method definitions, in the order of [`Method::ALL`].
static METHOD_DEFS: Table<[ffi::PyMethodDef; 4]> = Table([
    method_def(
        c"call_soon",
        call_soon_fast,
        c"aiocop: monitored call_soon.",
    ),
    method_def(
        c"call_later",
        call_later_fast,
        c"aiocop: monitored call_later.",
    ),
    method_def(c"call_at", call_at_fast, c"aiocop: monitored call_at."),
    method_def(
        c"call_soon_threadsafe",
        call_soon_threadsafe_fast,
        c"aiocop: monitored call_soon_threadsafe.",
    ),
]);

/// The four replacements bound to `patch`, as `(name, builtin method)` pairs, in the order
/// of [`Method::ALL`] (the order of [`METHOD_DEFS`]).
pub(crate) fn bound_replacements<'py>(
    patch: &Bound<'py, LoopPatch>,
) -> PyResult<Vec<(&'static str, Bound<'py, PyAny>)>> {
    let py = patch.py();
    let mut out = Vec::with_capacity(Method::ALL.len());
    for method in Method::ALL {
        let def: *const ffi::PyMethodDef = &METHOD_DEFS.0[method.index()];
        // SAFETY: GIL held; the method table is 'static and never written by CPython; `patch`
        // is a valid object the new function keeps a reference to.
        let func = unsafe { ffi::PyCFunction_NewEx(def.cast_mut(), patch.as_ptr(), null_mut()) };
        // SAFETY: a new reference or NULL with an exception set.
        out.push((method.name(), unsafe {
            Bound::from_owned_ptr_or_err(py, func)
        }?));
    }
    Ok(out)
}
