//! Per-thread handle state: "is this thread inside a monitored handle?" and the records taken
//! while it is.
//!
//! The flags read on every audited call and every handle are bits of one `const`-initialised
//! thread-local without a destructor — the cheapest TLS there is, and one TLS address per
//! function (in an extension module each TLS variable costs a `__tls_get_addr` call); the
//! record list is created on a thread's first record only.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

use std::sync::Arc;

use aiocop_events::{BlockingEvent, RawArgs, RawRecord, Stack, MAX_RECORDS_PER_HANDLE};
use aiocop_severity::EventSpec;
use pyo3::prelude::*;

use crate::args::resolve_args;
use crate::mode::Mode;

/// Inside a monitored handle.
const IN_HANDLE: u8 = 1;
/// A record (or a dropped one) was taken during the current handle.
const TOUCHED: u8 = 2;
/// The hook is running on this thread (a nested audit event must not record).
const IN_HOOK: u8 = 4;
/// A garbage collection ran during the current (or, after it ended, the last) handle:
/// `HANDLE_GC_NS` holds its time. Cleared when a handle starts.
const GC_SEEN: u8 = 8;

thread_local! {
    static FLAGS: Cell<u8> = const { Cell::new(0) };
    static RECORDS: ThreadRecords = ThreadRecords::new();
    /// Time in the garbage collector during the handle marked by `GC_SEEN`.
    static HANDLE_GC_NS: Cell<u64> = const { Cell::new(0) };
}

/// A blocking call seen by the hook, not yet resolved to text (that happens at the end of the
/// handle, on the slow path only).
#[derive(Debug)]
pub struct PendingRecord {
    /// The event's entry in the table.
    pub spec: &'static EventSpec,
    /// The audit event's argument tuple.
    pub args: Py<PyAny>,
    /// The stack at the call, innermost first, resolved (and shared per call site).
    pub stack: Arc<Stack>,
    /// Unix time of the call, in seconds.
    pub timestamp: f64,
}

impl PendingRecord {
    /// Resolves the record to plain Rust data (argument text; the stack is already resolved).
    pub fn resolve(&self, py: Python<'_>) -> RawRecord {
        RawRecord {
            event_name: self.spec.name.into(),
            args: resolve_args(self.args.bind(py)),
            stack: Arc::clone(&self.stack),
            timestamp: self.timestamp,
            weight: Some(self.spec.weight),
        }
    }

    /// The record with its argument text left to be made later ([`RawArgs::Deferred`]), and
    /// what it will be made from.
    pub fn into_deferred(self, py: Python<'_>) -> (RawRecord, DeferredArgs) {
        let record = RawRecord {
            event_name: self.spec.name.into(),
            args: RawArgs::Deferred,
            stack: self.stack,
            timestamp: self.timestamp,
            weight: Some(self.spec.weight),
        };
        (record, DeferredArgs::new(py, self.spec.name, self.args))
    }

    /// Lets go of the record with the caller's GIL token: its argument tuple is released at
    /// once (a `Py` dropped without pyo3's attach would wait in pyo3's lock-protected pool of
    /// deferred releases).
    pub fn release(self, py: Python<'_>) {
        drop(self.args.into_bound(py));
    }

    /// The record as the blocking event of a slow-task event, its text left to be made later
    /// as [`Self::into_deferred`] leaves it (the stack is moved, not formatted: for a call site
    /// whose stack is formatted already, this is all [`aiocop_events::assemble`] would do).
    pub fn into_event(self, py: Python<'_>) -> (BlockingEvent, DeferredArgs) {
        let event = BlockingEvent {
            name: self.spec.name.into(),
            event: String::new(),
            stack: self.stack,
            severity: Some(self.spec.weight),
        };
        (event, DeferredArgs::new(py, self.spec.name, self.args))
    }
}

/// A record's event name and arguments, kept so that its text (`name(arg1, arg2)`) is made
/// only when someone reads it.
#[derive(Debug)]
pub struct DeferredArgs {
    /// The audit event's name.
    pub name: &'static str,
    /// The audit event's argument tuple, or, for an `(args_tuple, kwargs_dict)` pair (what
    /// aiocop's wrappers emit), the inner tuple alone: the only part its text shows, so the
    /// pair and the dict are let go at once.
    pub args: Py<PyAny>,
    /// `args` is a pair's inner tuple ([`RawArgs::Call`]).
    pub call: bool,
}

impl DeferredArgs {
    /// Keeps what the text of `args` will be made from.
    pub fn new(py: Python<'_>, name: &'static str, args: Py<PyAny>) -> Self {
        // Held as a `Bound`: a pair let go here is released at once, also where pyo3 does not
        // count the thread as attached (the end of a slow handle runs on the caller's token),
        // instead of waiting in pyo3's pool of deferred releases.
        let args = args.into_bound(py);
        if let Some(inner) = crate::args::call_tuple(&args) {
            return Self {
                name,
                args: inner.into_any().unbind(),
                call: true,
            };
        }
        Self {
            name,
            args: args.unbind(),
            call: false,
        }
    }

    /// The arguments' text (`str()` of each, now).
    pub fn resolve(&self, py: Python<'_>) -> RawArgs {
        if self.call {
            if let Ok(inner) = self.args.bind(py).cast::<pyo3::types::PyTuple>() {
                return crate::args::call_args(inner);
            }
        }
        resolve_args(self.args.bind(py))
    }

    /// `name(arg1, arg2)`, see [`aiocop_events::format_event`].
    pub fn event_text(&self, py: Python<'_>) -> String {
        aiocop_events::format_event(self.name, &self.resolve(py))
    }
}

/// One thread's records of the running handle. Only its own thread touches it; borrows are
/// short and never held while Python code runs (dropping a record can).
struct ThreadRecords {
    records: RefCell<Vec<PendingRecord>>,
    dropped: Cell<u32>,
    /// The violation mode in force at the records taken while raise-on-violations was on.
    violation_mode: Cell<Option<Mode>>,
    first_context: RefCell<Option<Py<PyAny>>>,
}

impl ThreadRecords {
    fn new() -> Self {
        Self {
            records: RefCell::new(Vec::with_capacity(MAX_RECORDS_PER_HANDLE)),
            dropped: Cell::new(0),
            violation_mode: Cell::new(None),
            first_context: RefCell::new(None),
        }
    }

    fn take(&self) -> Vec<PendingRecord> {
        match self.records.try_borrow_mut() {
            Ok(mut records) => records.drain(..).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.records
            .try_borrow()
            .map_or(MAX_RECORDS_PER_HANDLE, |r| r.len())
    }

    fn clear(&self) {
        drop(self.take());
        self.dropped.set(0);
        self.violation_mode.set(None);
        self.first_context.borrow_mut().take();
    }
}

/// Proof that the current thread entered a monitored handle; not `Send`.
#[derive(Debug)]
pub struct HandleToken {
    _not_send: PhantomData<*const ()>,
}

/// What a handle left behind when it recorded something.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The records, in call order (at most [`MAX_RECORDS_PER_HANDLE`]).
    pub records: Vec<PendingRecord>,
    /// Records that did not fit.
    pub dropped: u32,
    /// Raise-on-violations was enabled when at least one record was taken: what a violation
    /// then does, as the mode in force at that record said (`Raise` when records disagree).
    /// Read at the call, not at the end of the handle: a `raise_on_violations(...)` block may
    /// have ended by then.
    pub violation_mode: Option<Mode>,
    /// The context captured at the first record, if a capture function is set.
    pub first_context: Option<Py<PyAny>>,
}

/// Marks the current thread as running a monitored handle. `None` when it already is (a nested
/// run: the outer handle keeps the records).
#[inline]
pub fn enter_handle() -> Option<HandleToken> {
    let flags = FLAGS.get();
    if flags & IN_HANDLE != 0 {
        return None;
    }
    FLAGS.set((flags & !GC_SEEN) | IN_HANDLE);
    Some(HandleToken {
        _not_send: PhantomData,
    })
}

/// Ends the handle. `None` on the fast path: nothing was recorded.
#[inline]
pub fn exit_handle(token: HandleToken) -> Option<Recorded> {
    let HandleToken { _not_send } = token;
    let flags = FLAGS.get();
    FLAGS.set(flags & !(IN_HANDLE | TOUCHED));
    if flags & TOUCHED == 0 {
        return None;
    }
    Some(take_records())
}

/// The records of the handle that just ended (kept out of the per-handle code).
#[cold]
#[inline(never)]
fn take_records() -> Recorded {
    RECORDS.with(|r| {
        let records = r.take();
        let out = Recorded {
            records,
            dropped: r.dropped.replace(0),
            violation_mode: r.violation_mode.replace(None),
            first_context: r.first_context.borrow_mut().take(),
        };
        out
    })
}

/// Counts a garbage collection of `ns` that just ran on this thread, if inside a monitored
/// handle (called from the garbage collector's callback, when a collection happens).
pub fn count_gc(ns: u64) {
    let flags = FLAGS.get();
    if flags & IN_HANDLE == 0 {
        return;
    }
    let before = if flags & GC_SEEN != 0 {
        HANDLE_GC_NS.get()
    } else {
        0
    };
    HANDLE_GC_NS.set(before.saturating_add(ns));
    FLAGS.set(flags | GC_SEEN);
}

/// Time in the garbage collector, counted by [`count_gc`], during the handle running on this
/// thread or, after [`exit_handle`], the one that just ended (read on the slow path).
pub fn handle_gc_ns() -> u64 {
    if FLAGS.get() & GC_SEEN == 0 {
        return 0;
    }
    HANDLE_GC_NS.get()
}

/// Whether the current thread is inside a monitored handle.
#[inline]
pub fn in_handle() -> bool {
    FLAGS.get() & IN_HANDLE != 0
}

/// Forgets the records taken so far in the current handle (`aiocop.reset_blocking_events()`).
pub fn reset_records() {
    if FLAGS.get() & TOUCHED != 0 {
        RECORDS.with(ThreadRecords::clear);
    }
}

/// Whether the hook must ignore this event: not in a handle, or re-entered from the hook.
#[inline]
pub(crate) fn should_skip() -> bool {
    FLAGS.get() & (IN_HANDLE | IN_HOOK) != IN_HANDLE
}

/// Runs `f` with the re-entrancy flag set (restored even if `f` panics).
pub(crate) fn in_hook<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            FLAGS.set(FLAGS.get() & !IN_HOOK);
        }
    }
    FLAGS.set(FLAGS.get() | IN_HOOK);
    let _reset = Reset;
    f()
}

static DROPPED_RECORDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Records dropped because a handle already had [`MAX_RECORDS_PER_HANDLE`], since the start.
pub fn dropped_records() -> u64 {
    DROPPED_RECORDS.load(std::sync::atomic::Ordering::Relaxed)
}

fn count_dropped_record(r: &ThreadRecords) {
    r.dropped.set(r.dropped.get().saturating_add(1));
    DROPPED_RECORDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Everything the hook needs to take a record; the closures run only when the queue has room.
pub(crate) fn push_record(
    make: impl FnOnce() -> PendingRecord,
    violation_mode: impl FnOnce() -> Option<Mode>,
    first_context: impl FnOnce() -> Option<Py<PyAny>>,
) {
    FLAGS.set(FLAGS.get() | TOUCHED);
    RECORDS.with(|r| {
        let len = r.len();
        if len >= MAX_RECORDS_PER_HANDLE {
            count_dropped_record(r);
            return;
        }
        let first = len == 0;
        if let Some(mode) = violation_mode() {
            let strongest = match r.violation_mode.get() {
                Some(Mode::Raise) => Mode::Raise,
                _ => mode,
            };
            r.violation_mode.set(Some(strongest));
        }
        if first && r.first_context.borrow().is_none() {
            let ctx = first_context();
            *r.first_context.borrow_mut() = ctx;
        }
        let record = make();
        let rejected = match r.records.try_borrow_mut() {
            Ok(mut records) if records.len() < MAX_RECORDS_PER_HANDLE => {
                records.push(record);
                None
            }
            _ => Some(record),
        };
        if let Some(rejected) = rejected {
            drop(rejected);
            count_dropped_record(r);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enter_is_not_reentrant_and_exit_is_clean_without_records() {
        let token = enter_handle().expect("first enter");
        assert!(in_handle());
        assert!(enter_handle().is_none());
        assert!(exit_handle(token).is_none());
        assert!(!in_handle());
    }

    #[test]
    fn gc_time_counts_inside_a_handle_until_the_next_one_starts() {
        count_gc(5); // outside a handle: not counted
        let token = enter_handle().expect("enter");
        assert_eq!(handle_gc_ns(), 0);
        count_gc(7);
        count_gc(3);
        assert!(exit_handle(token).is_none(), "a collection is no record");
        count_gc(100); // after the handle: not counted
        assert_eq!(handle_gc_ns(), 10, "read after the handle ended");
        let token = enter_handle().expect("enter again");
        assert_eq!(handle_gc_ns(), 0, "a new handle starts at zero");
        assert!(exit_handle(token).is_none());
        assert_eq!(handle_gc_ns(), 0);
    }
}
