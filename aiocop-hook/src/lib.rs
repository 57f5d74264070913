//! The native side of blocking-call detection: aiocop's CPython audit hook, the per-thread
//! record lists it fills, stack capture through the C API, and the CPython version differences.
//!
//! The hook is registered once with `PySys_AddAuditHook`. On every audited call it first asks
//! "is this thread inside a monitored handle?" (a thread-local flag set by `aiocop-loop`); when
//! not, it returns at once — no allocation, no Python call. Inside a handle, for an event in
//! [`aiocop_severity`]'s table, it captures up to `trace_depth` frames (code object and
//! instruction offset only) and pushes a [`PendingRecord`] onto the thread's record list (a
//! thread-local `Vec`), at most [`aiocop_events::MAX_RECORDS_PER_HANDLE`] per handle. Names and lines are resolved at
//! the end of the handle, on the slow path only ([`PendingRecord::resolve`]).
//!
//! Architecture invariant: nothing here may block, print, or let a panic cross FFI.

pub mod args;
pub mod attribution;
mod audited;
pub mod compat;
pub mod enforce;
pub mod fault;
pub mod heaptype;
mod hook;
mod mode;
pub mod native;
pub mod pylog;
pub mod redactor;
pub mod remote;
pub mod rules;
pub mod stack;
mod state;

pub use audited::audited;
pub use compat::{Current as CurrentPython, PythonVersion};
pub use enforce::set_raise_var;
pub use hook::{install, is_installed, set_first_record_context, trace_depth};
pub use state::{
    count_gc, dropped_records, enter_handle, exit_handle, handle_gc_ns, in_handle, reset_records,
    DeferredArgs, HandleToken, PendingRecord, Recorded,
};
