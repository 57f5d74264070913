//! The native audit hook.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::stack::capture_current;
use crate::state::{in_hook, push_record, should_skip, PendingRecord};

/// `Py_AuditHookFunction` from `Include/cpython/sysmodule.h`.
type AuditHookFunction = unsafe extern "C" fn(
    event: *const c_char,
    args: *mut ffi::PyObject,
    data: *mut c_void,
) -> c_int;

extern "C" {
    // Declared here because pyo3-ffi does not: it lives outside the limited API.
    fn PySys_AddAuditHook(hook: AuditHookFunction, user_data: *mut c_void) -> c_int;
}

static INSTALLED: AtomicBool = AtomicBool::new(false);
static TRACE_DEPTH: AtomicUsize = AtomicUsize::new(20);
/// The `ContextVar[bool]` read when a record is taken (raise-on-violations). Kept alive forever.
static RAISE_VAR: AtomicPtr<ffi::PyObject> = AtomicPtr::new(std::ptr::null_mut());
/// Called at the first record of a handle to capture the user's context.
static FIRST_RECORD_CONTEXT: OnceLock<ContextCapture> = OnceLock::new();

/// Captures the user's context (context providers) at a handle's first record.
pub type ContextCapture = fn(Python<'_>) -> Option<Py<PyAny>>;

/// Installs the hook (once per process). Returns `Ok(false)` when it was already installed.
pub fn install(py: Python<'_>, trace_depth: usize) -> PyResult<bool> {
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Ok(false);
    }
    TRACE_DEPTH.store(trace_depth.max(1), Ordering::Relaxed);
    let _ = py;
    // SAFETY: the GIL is held (`py`); `audit_hook` has the required signature and never
    // unwinds; no user data.
    let rc = unsafe { PySys_AddAuditHook(audit_hook, std::ptr::null_mut()) };
    if rc != 0 {
        INSTALLED.store(false, Ordering::Release);
        return Err(PyErr::take(py)
            .unwrap_or_else(|| PyRuntimeError::new_err("PySys_AddAuditHook refused the hook")));
    }
    Ok(true)
}

/// Whether [`install`] has run.
pub fn is_installed() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

/// The number of frames captured per record.
pub fn trace_depth() -> usize {
    TRACE_DEPTH.load(Ordering::Relaxed)
}

/// Sets the context variable whose truth, at record time, marks the handle for raising.
pub fn set_raise_var(var: Py<PyAny>) {
    let old = RAISE_VAR.swap(var.into_ptr(), Ordering::AcqRel);
    if !old.is_null() {
        // Kept alive on purpose: a concurrent hook may still read it. Setting twice is rare.
        tracing::debug!("raise-on-violations variable replaced");
    }
}

/// Sets the function called at a handle's first record to capture the user's context.
pub fn set_first_record_context(f: ContextCapture) {
    let _ = FIRST_RECORD_CONTEXT.set(f);
}

fn raise_enabled() -> bool {
    let var = RAISE_VAR.load(Ordering::Acquire);
    if var.is_null() {
        return false;
    }
    let mut value: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: the GIL is held (we are inside an audit hook); `var` is a ContextVar kept alive
    // forever; PyContextVar_Get stores a new reference (or NULL) in `value`.
    let rc = unsafe { ffi::PyContextVar_Get(var, std::ptr::null_mut(), &mut value) };
    if rc != 0 {
        // SAFETY: GIL held; an error from the lookup is ours to clear, never the user's.
        unsafe { ffi::PyErr_Clear() };
        return false;
    }
    if value.is_null() {
        return false;
    }
    // SAFETY: GIL held; compare against the True singleton, then release our reference.
    let enabled = unsafe { value == ffi::Py_True() };
    // SAFETY: `value` is the new reference PyContextVar_Get gave us.
    unsafe { ffi::Py_DECREF(value) };
    enabled
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The hook. On a thread that is not inside a monitored handle it returns at once: two
/// thread-local reads, no allocation, no Python call.
unsafe extern "C" fn audit_hook(
    event: *const c_char,
    args: *mut ffi::PyObject,
    _data: *mut c_void,
) -> c_int {
    if should_skip() {
        return 0;
    }
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: CPython passes a valid NUL-terminated event name.
        let name = unsafe { CStr::from_ptr(event) }.to_bytes();
        let Some(spec) = aiocop_severity::lookup(name) else {
            return;
        };
        // Audit hooks run with the GIL held; attaching (cheap then) makes pyo3 release any
        // object we drop at once instead of deferring it.
        Python::attach(|py| {
            in_hook(|| {
                push_record(
                    |_first| PendingRecord {
                        spec,
                        // SAFETY: `args` is the event's argument tuple, valid for this call; we
                        // take our own reference.
                        args: unsafe { Bound::from_borrowed_ptr(py, args) }.unbind(),
                        frames: capture_current(py, trace_depth()),
                        timestamp: now_unix(),
                    },
                    raise_enabled,
                    || FIRST_RECORD_CONTEXT.get().and_then(|f| f(py)),
                );
            })
        });
        // Nothing we ran may leave an exception behind for the audited call.
        // SAFETY: GIL held.
        if unsafe { !ffi::PyErr_Occurred().is_null() } {
            // SAFETY: GIL held.
            unsafe { ffi::PyErr_Clear() };
        }
    }))
    .unwrap_or_else(|_| {
        tracing::error!("panic inside the aiocop audit hook; record dropped");
    });
    0
}
