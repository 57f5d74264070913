//! The native audit hook.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::heaptype::{carry_on, guard};
use crate::stack::{self, capture_site};
use crate::state::{in_hook, push_record, should_skip, PendingRecord};
use crate::{enforce, rules};

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
/// Called at the first record of a handle to capture the user's context.
static FIRST_RECORD_CONTEXT: OnceLock<ContextCapture> = OnceLock::new();

/// Captures the user's context (context providers) at a handle's first record.
pub(crate) type ContextCapture = fn(Python<'_>) -> Option<Py<PyAny>>;

/// Installs the hook (once per process). Returns `Ok(false)` when it was already installed.
pub fn install(py: Python<'_>, trace_depth: usize) -> PyResult<bool> {
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Ok(false);
    }
    TRACE_DEPTH.store(trace_depth.max(1), Ordering::Relaxed);
    stack::read_library_dirs(py);
    // SAFETY: the GIL is held (`py`); `audit_hook` has the required signature, needs no user
    // data and never unwinds (its body runs under `guard`).
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

/// Sets the function called at a handle's first record to capture the user's context.
pub fn set_first_record_context(f: ContextCapture) {
    let _ = FIRST_RECORD_CONTEXT.set(f);
}

/// The hook. On a thread that is not inside a monitored handle it returns at once: two
/// thread-local reads, no allocation, no Python call, and no unwinding frame (those reads
/// cannot panic). The rest runs under [`guard`]: a panic of ours drops the record and lets the
/// audited call go on (`0`, any exception set before the panic cleared); only enforcement's
/// deliberate `BlockingCallError` (`-1`) ever stops it.
unsafe extern "C" fn audit_hook(
    event: *const c_char,
    args: *mut ffi::PyObject,
    _data: *mut c_void,
) -> c_int {
    if should_skip() {
        return 0;
    }
    guard("audit hook", carry_on, || {
        // SAFETY: CPython passes a valid NUL-terminated event name, alive for the call.
        let name = unsafe { CStr::from_ptr(event) }.to_bytes();
        let Some(spec) = aiocop_severity::lookup(name) else {
            return 0;
        };
        // Not `Python::attach`: pyo3 would ask CPython for the thread state
        // (PyGILState_Ensure/Release) on every record. `Bound`s release their objects at once;
        // an unbound one dropped here (a cache eviction) waits in pyo3's pool until the next
        // real attach, at the end of this handle. Rules, enforcement and errors attach for real.
        // SAFETY: audit hooks run with the GIL held.
        let py = unsafe { Python::assume_attached() };
        let rc = in_hook(|| on_blocking_call(py, spec, args));
        if rc == 0 && PyErr::occurred(py) {
            // Nothing we ran may leave an exception behind for the audited call.
            clear_error();
        }
        rc
    })
}

/// Clears the pending exception, attached so that pyo3 releases it at once.
#[cold]
#[inline(never)]
fn clear_error() {
    Python::attach(|py| drop(PyErr::take(py)));
}

/// A blocking call inside a monitored handle: recorded, or, with allow rules or enforcement in
/// use, see [`on_checked_call`].
fn on_blocking_call(
    py: Python<'_>,
    spec: &'static aiocop_severity::EventSpec,
    args: *mut ffi::PyObject,
) -> c_int {
    let site = capture_site(py, trace_depth());
    if enforce::in_use() || rules::has_active() {
        return Python::attach(|py| on_checked_call(py, spec, args, &site));
    }
    let record = new_record(py, spec, args, &site);
    // Without enforcement in use, after-the-handle raising is off (its variable is unread).
    keep(py, record, || None);
    0
}

/// The record of this call, with our own reference to its argument tuple.
fn new_record(
    py: Python<'_>,
    spec: &'static aiocop_severity::EventSpec,
    args: *mut ffi::PyObject,
    site: &stack::CallSite,
) -> PendingRecord {
    PendingRecord {
        spec,
        // SAFETY: `args` is the event's argument tuple, valid for this call (CPython passes it
        // to the hook); we take our own reference.
        args: unsafe { Bound::from_borrowed_ptr(py, args) }.unbind(),
        stack: Arc::clone(&site.stack),
        timestamp: aiocop_clock::unix_now(),
    }
}

/// Adds `record` to the running handle's records.
fn keep(
    py: Python<'_>,
    record: PendingRecord,
    violation_mode: impl FnOnce() -> Option<enforce::Mode>,
) {
    push_record(
        || record,
        violation_mode,
        || FIRST_RECORD_CONTEXT.get().and_then(|f| f(py)),
    );
}

/// A blocking call while allow rules or enforcement are in use: allowed by a rule (nothing
/// happens), stopped at the call (`-1` with `BlockingCallError` set), or recorded. Kept out
/// of the plain path so that the code every recorded call runs stays small.
#[cold]
#[inline(never)]
fn on_checked_call(
    py: Python<'_>,
    spec: &'static aiocop_severity::EventSpec,
    args: *mut ffi::PyObject,
    site: &stack::CallSite,
) -> c_int {
    let scoped = enforce::scoped_rules(py);
    if (rules::has_active() || !scoped.is_empty())
        && rules::find_match(spec.name, site.stack.frames(), &scoped).is_some()
    {
        return 0;
    }
    let record = new_record(py, spec, args, site);
    if let Some(min_weight) = enforce::at_call_min_weight(py) {
        if spec.weight >= min_weight {
            match enforce::mode(py) {
                enforce::Mode::Raise if enforce::accepted_at_call(spec.name, &site.stack) => {
                    // A site the baseline accepts: recorded (the end of the test sees it, and
                    // a baseline being written keeps it), not raised, not a violation.
                    keep(py, record, || None);
                    return 0;
                }
                enforce::Mode::Raise => {
                    enforce::blocking_call_error(py, &record).restore(py);
                    return -1;
                }
                enforce::Mode::Warn => {
                    enforce::warn_blocking_call(py, &record);
                    // Warned once, at the call: the end of its handle does not warn again.
                    keep(py, record, || None);
                    return 0;
                }
            }
        }
    }
    keep(py, record, || {
        enforce::raise_enabled(py).then(|| enforce::mode(py))
    });
    0
}
