//! The background thread: slices of new call sites arrive in a lock-free inbox, are assembled
//! into events without the GIL (formatting the new stacks), and wait in their loop's pending
//! queue ([`crate::loop_state`]) for delivery on the loop's own thread. Slices whose stacks are
//! all formatted already are assembled by the loop thread in place
//! ([`LoopShared::queue_here`]): cheaper than the hand-off.
//!
//! The loop thread never waits here: it pushes and goes on; when the inbox is full the slice is
//! dropped and counted. It wakes the background thread only when that thread has announced a
//! nap (after finding the inbox empty); under steady traffic the background thread polls the
//! inbox on its own timer instead. Delivery is picked up by the loop thread itself at the end
//! of its next monitored handle (one atomic load per handle; it schedules a delivery handle
//! with the plain, non-threadsafe `call_soon`). Only when the loop stays idle for
//! [`PICKUP_GRACE`] does the background thread take the GIL to schedule delivery with
//! `call_soon_threadsafe`: a busy loop never pays for a GIL hand-off or a self-pipe wake-up
//! per event.
//!
//! Faults: a panic on the background thread is caught there, and the thread ends; a thread
//! that makes no progress for [`STALL_AFTER`] while work waits for it (slices in its inbox, a
//! flush) is found stalled by the next loop thread that sends it a slice or flushes. Either
//! way the thread is given up: its inbox is abandoned (`aiocop_delivery::Inbox`), the slices
//! it held are lost and counted (`lost_events`, `dispatch_thread_failures` in `stats()`), one
//! warning is logged on a loop thread (logger `aiocop`), and the next slice starts a new
//! thread. Events it had assembled already wait in their loop's queue as usual. After
//! [`MAX_THREADS`] threads, slices are assembled on the loop thread instead (in order with
//! the loop's earlier events, unless one of them is still with a stalled thread). No wait of a
//! loop thread on the background thread (`flush`, a loop's `close`, interpreter exit) outlasts
//! the stall limit. A dispatcher given up stays allocated (a stalled thread, or a producer
//! that loaded it just before, may still use it): a few MB at most per thread, and at most
//! [`MAX_THREADS`] of them.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiocop_delivery::{Inbox, Refused};
use aiocop_events::{assemble, Slice};
use aiocop_hook::fault;
use pyo3::prelude::*;

use crate::config;
use crate::counters::{count, count_failure, report_faults, Failure, DROPPED, LOST};
pub use crate::counters::{
    delivery_counts, dispatch_thread_failures, dropped_events, lost_events, undelivered_events,
};
use crate::event::SliceObjects;
use crate::loop_state::{live_loops, LoopShared};

/// Slices that may wait for the background thread (all loops together).
const CHANNEL_CAPACITY: usize = 16_384;
/// How long events may wait for the loop thread to pick them up before the background thread
/// schedules their delivery itself.
pub(crate) const PICKUP_GRACE: Duration = Duration::from_millis(2);

struct SliceMsg {
    slice: Slice,
    objects: SliceObjects,
    target: Arc<LoopShared>,
}

enum Wake {
    /// Slices are waiting in the inbox.
    Work,
    /// Assemble everything in the inbox, then answer.
    Flush(flume::Sender<()>),
}

/// How long the background thread lets slices accumulate after a wake-up before it drains
/// them: bursts become one wake-up and one delivery per loop, instead of one per slice.
const COALESCE: Duration = Duration::from_micros(500);
/// While slices keep coming, the background thread looks at the inbox this often, on its own
/// timer: loop threads never wake it (a futex call and a context switch per batch) under
/// steady traffic. It asks to be woken only after a look finds the inbox empty.
const POLL: Duration = Duration::from_millis(1);

/// How long the background thread may make no progress while work waits for it before it is
/// given up as stalled.
pub const STALL_AFTER: Duration = Duration::from_secs(5);
/// The stall limit in force (ns): [`STALL_AFTER`], or what a test set.
static STALL_AFTER_NS: AtomicU64 = AtomicU64::new(5_000_000_000);
/// Background threads started at most per process (a thread that keeps failing is not
/// restarted forever); after them, slices are assembled on the loop thread.
pub const MAX_THREADS: u32 = 8;
/// Background threads started in this process (since the last fork).
static THREADS_STARTED: AtomicU32 = AtomicU32::new(0);
/// How often a loop thread waiting on the background thread (a flush) looks for a stall.
const STALL_CHECK: Duration = Duration::from_millis(20);

/// Sets the stall limit (tests: a short one).
#[cfg(feature = "fault-injection")]
pub fn set_stall_after(limit: Duration) {
    STALL_AFTER_NS.store(
        u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

struct Dispatcher {
    /// Slices from every loop thread: lock-free, bounded, abandoned when the thread is given up.
    inbox: Inbox<SliceMsg>,
    /// The background thread is (about to be) parked on `wake`: the next producer wakes it.
    asleep: AtomicBool,
    wake: flume::Sender<Wake>,
    /// When the background thread last showed progress (ns on `aiocop_clock::now_ns`): each
    /// turn of its loop and each slice it takes, or when a producer woke it from a nap.
    beat_ns: AtomicU64,
    /// The thread is taking the GIL (to schedule deliveries): a loop thread that holds the GIL
    /// itself does not take that wait for a stall.
    in_python: AtomicBool,
}

impl Dispatcher {
    /// The thread shows progress (or was just woken: it has the stall limit from now).
    fn beat(&self, now_ns: u64) {
        self.beat_ns.fetch_max(now_ns, Ordering::AcqRel);
    }

    /// Whether the thread made no progress for the stall limit since `since_ns` (or its last
    /// beat, if later), with work waiting (`work`: a flush request, or slices in the inbox).
    fn stalled(&self, now_ns: u64, since_ns: u64, work: bool) -> bool {
        let last = self.beat_ns.load(Ordering::Acquire).max(since_ns);
        (work || !self.inbox.is_empty())
            && now_ns.saturating_sub(last) > STALL_AFTER_NS.load(Ordering::Relaxed)
    }

    /// [`Self::stalled`], asked by a loop thread holding the GIL: a background thread waiting
    /// for the GIL is waiting for the caller, not stalled.
    fn stalled_while_holding_the_gil(&self, now_ns: u64) -> bool {
        !self.in_python.load(Ordering::Acquire) && self.stalled(now_ns, 0, false)
    }
}

/// The current dispatcher. Replaced (the old one leaked) after a fork, so no lock that another
/// thread held at fork time is ever taken in the child.
static DISPATCHER: AtomicPtr<Dispatcher> = AtomicPtr::new(std::ptr::null_mut());

fn current_dispatcher() -> Option<&'static Dispatcher> {
    let current = DISPATCHER.load(Ordering::Acquire);
    // SAFETY: dispatchers are leaked, never freed: a non-null pointer stays valid.
    (!current.is_null()).then(|| unsafe { &*current })
}

/// The current dispatcher, started (with its thread) if there is none: `None` when
/// [`MAX_THREADS`] were started already or the thread could not be started.
fn dispatcher() -> Option<&'static Dispatcher> {
    if let Some(d) = current_dispatcher() {
        return Some(d);
    }
    if THREADS_STARTED.load(Ordering::Acquire) >= MAX_THREADS {
        return None;
    }
    let (tx, rx) = flume::unbounded();
    let fresh: &'static Dispatcher = Box::leak(Box::new(Dispatcher {
        inbox: Inbox::new(CHANNEL_CAPACITY),
        asleep: AtomicBool::new(false),
        wake: tx,
        beat_ns: AtomicU64::new(aiocop_clock::now_ns()),
        in_python: AtomicBool::new(false),
    }));
    let fresh_ptr = std::ptr::from_ref(fresh).cast_mut();
    match DISPATCHER.compare_exchange(
        std::ptr::null_mut(),
        fresh_ptr,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            THREADS_STARTED.fetch_add(1, Ordering::AcqRel);
            let spawned = std::thread::Builder::new()
                .name("aiocop-dispatch".into())
                .spawn(move || run_guarded(fresh, rx));
            match spawned {
                Ok(_) => Some(fresh),
                Err(err) => {
                    tracing::error!("aiocop could not start its dispatch thread: {err}");
                    DISPATCHER.store(std::ptr::null_mut(), Ordering::Release);
                    None
                }
            }
        }
        // Another thread won the race; ours (never published, no thread) stays leaked: tiny
        // and once per start at most.
        Err(_) => current_dispatcher(),
    }
}

/// Gives up the dispatcher `d` (its thread died or stalled): abandons its inbox, counts the
/// slices it held as lost, and unpublishes it, so that the next slice starts a new one. Only
/// the first caller for a dispatcher does it; `false` for the others. Runs on a loop thread
/// (stall) or on the dying background thread (panic, without the GIL: the Python objects of
/// the slices dropped there wait in pyo3's pool of deferred releases).
fn give_up(d: &'static Dispatcher, failure: Failure) -> bool {
    let Some(held) = d.inbox.abandon() else {
        return false;
    };
    let _ = DISPATCHER.compare_exchange(
        std::ptr::from_ref(d).cast_mut(),
        std::ptr::null_mut(),
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    let mut lost = 0;
    for msg in held {
        // Back (lost): the loop may queue its events in place again.
        msg.target.hand_off_failed();
        lost += 1;
    }
    count_failure(failure, lost);
    true
}

/// Hands a slice to the background thread, on the loop thread. Never blocks; a full inbox
/// drops (and counts) it. Wakes the background thread only when it is parked, and gives it up
/// when it is found stalled. Out of line: in steady traffic slices come from known call sites
/// and are assembled in place instead.
#[cold]
#[inline(never)]
pub(crate) fn send(py: Python<'_>, slice: Slice, objects: SliceObjects, target: &Arc<LoopShared>) {
    report_faults(py);
    let mut msg = SliceMsg {
        slice,
        objects,
        target: Arc::clone(target),
    };
    // A second try when the dispatcher was given up between our look and our push.
    for _ in 0..2 {
        let Some(d) = dispatcher() else {
            // No background thread can be had: assembled here, as inline dispatch does.
            if let Some(task) = assemble(&msg.slice) {
                target.queue_here(py, task, msg.objects);
            }
            return;
        };
        target.hand_off();
        let now = aiocop_clock::now_ns();
        match d.inbox.push(msg) {
            Ok(()) => {
                if d.asleep.swap(false, Ordering::AcqRel) {
                    d.beat(now);
                    let _ = d.wake.send(Wake::Work);
                } else if d.stalled_while_holding_the_gil(now) && give_up(d, Failure::Stalled) {
                    report_faults(py);
                }
                return;
            }
            Err(Refused::Full(rejected)) => {
                target.hand_off_failed();
                count(&DROPPED);
                if d.stalled_while_holding_the_gil(now) && give_up(d, Failure::Stalled) {
                    report_faults(py);
                }
                // Release the Python objects here, with the GIL.
                drop(rejected);
                return;
            }
            Err(Refused::Abandoned(rejected)) => {
                target.hand_off_failed();
                msg = rejected;
            }
        }
    }
    count(&LOST);
}

/// Waits (without the GIL) until the background thread has assembled everything sent so far:
/// at most until it has made no progress for the stall limit, when it is given up.
fn drain_background(py: Python<'_>) {
    report_faults(py);
    let Some(d) = current_dispatcher() else {
        return;
    };
    let asked = aiocop_clock::now_ns();
    if d.stalled(asked, 0, false) {
        give_up(d, Failure::Stalled);
        report_faults(py);
        return;
    }
    let wake = d.wake.clone();
    let stalled = py.detach(move || {
        let (ack_tx, ack_rx) = flume::bounded(1);
        if wake.send(Wake::Flush(ack_tx)).is_err() {
            return false; // the thread ended (it gave itself up)
        }
        loop {
            match ack_rx.recv_timeout(STALL_CHECK) {
                // Answered, or the thread ended with the request unanswered.
                Ok(()) | Err(flume::RecvTimeoutError::Disconnected) => return false,
                Err(flume::RecvTimeoutError::Timeout) => {
                    if d.stalled(aiocop_clock::now_ns(), asked, true) {
                        return true;
                    }
                }
            }
        }
    });
    if stalled {
        give_up(d, Failure::Stalled);
    }
    report_faults(py);
}

/// The delivery counters of `aiocop.stats()` into `dict`: `dropped_events`,
/// `undelivered_events`, `lost_events`, `dispatch_thread_failures`, `deliveries_picked_up` and
/// `deliveries_woken`.
pub fn add_counters(dict: &Bound<'_, pyo3::types::PyDict>) -> PyResult<()> {
    dict.set_item("dropped_events", dropped_events())?;
    dict.set_item("undelivered_events", undelivered_events())?;
    dict.set_item("lost_events", lost_events())?;
    dict.set_item("dispatch_thread_failures", dispatch_thread_failures())?;
    let (picked_up, woken) = delivery_counts();
    dict.set_item("deliveries_picked_up", picked_up)?;
    dict.set_item("deliveries_woken", woken)?;
    Ok(())
}

/// Waits (without the GIL) until the background thread has assembled everything sent so far,
/// then delivers, on this thread, the pending events of `target` — or of every loop of this
/// thread when `target` is `None`.
pub fn flush(py: Python<'_>, target: Option<&Arc<LoopShared>>) {
    drain_background(py);
    match target {
        Some(t) => t.deliver_pending(py),
        None => {
            let me = std::thread::current().id();
            for l in live_loops().into_iter().filter(|l| l.thread() == me) {
                l.deliver_pending(py);
            }
        }
    }
}

/// At interpreter exit (before [`shutdown`]): every event still pending is delivered on this
/// thread when its loop ran here, and otherwise (its thread has ended, or still runs it)
/// logged at WARNING with its content. Only what can be neither counts as undelivered.
pub fn deliver_at_exit(py: Python<'_>) {
    drain_background(py);
    let me = std::thread::current().id();
    for l in live_loops() {
        if l.thread() == me {
            l.deliver_pending(py);
        } else {
            l.log_pending(
                py,
                "its loop's thread ended (or still runs it) at interpreter exit",
            );
        }
    }
}

/// Stops scheduling deliveries (interpreter shutdown).
pub fn shutdown() {
    config::begin_shutdown();
}

/// In a child process after `fork()`: forget the parent's thread and channel (the child starts
/// a thread of its own on its first slice).
pub fn after_fork_child() {
    DISPATCHER.store(std::ptr::null_mut(), Ordering::Release);
    THREADS_STARTED.store(0, Ordering::Release);
}

/// The background thread: [`run`], and, should it panic, the thread is given up (the panic
/// ends here, not in the process).
fn run_guarded(d: &'static Dispatcher, wake: flume::Receiver<Wake>) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(d, &wake)));
    if outcome.is_err() {
        tracing::error!("panic on aiocop's dispatch thread; a new one takes the next slices");
        give_up(d, Failure::Panicked);
    }
    // `wake` goes now: a flush still waiting for this thread stops waiting.
}

fn run(d: &'static Dispatcher, wake: &flume::Receiver<Wake>) {
    // Loops with events waiting to be picked up (each loop once).
    let mut waiting: Vec<Arc<LoopShared>> = Vec::new();
    let mut due: Vec<Arc<LoopShared>> = Vec::new();
    let grace_ns = u64::try_from(PICKUP_GRACE.as_nanos()).unwrap_or(u64::MAX);
    loop {
        d.beat(aiocop_clock::now_ns());
        let drained = drain(d, &mut waiting);
        aiocop_clock::recalibrate();
        let now = aiocop_clock::now_ns();
        // The age that counts is the loop's own: when its events last became ready after a
        // pick-up, not when this thread first saw it waiting (a loop that picks up batch after
        // batch is never idle, however long it stays in the list).
        waiting.retain(|target| {
            if !target.has_ready() {
                return false; // picked up by its loop thread
            }
            if now.saturating_sub(target.ready_since()) < grace_ns {
                return true;
            }
            if target.take_ready() {
                due.push(Arc::clone(target));
            }
            false
        });
        let guarded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            schedule(d, &mut due);
        }));
        if guarded.is_err() {
            tracing::error!("panic while scheduling aiocop event delivery");
            due.clear();
        }
        let grace_left = waiting.iter().map(|t| t.ready_since()).min().map(|oldest| {
            let deadline = oldest.saturating_add(grace_ns);
            Duration::from_nanos(deadline.saturating_sub(aiocop_clock::now_ns()))
        });
        let next = if drained > 0 {
            // Traffic: look again after POLL without announcing a nap, so that producers
            // (loop threads) never pay for a wake-up while slices keep coming.
            wake.recv_timeout(grace_left.map_or(POLL, |left| left.min(POLL)))
        } else {
            // Quiet: announce the nap, then look again: a slice pushed before the
            // announcement is seen here, one pushed after it finds `asleep` set and sends a
            // wake-up.
            d.asleep.store(true, Ordering::SeqCst);
            if !d.inbox.is_empty() {
                continue;
            }
            match grace_left {
                None => wake
                    .recv()
                    .map_err(|_| flume::RecvTimeoutError::Disconnected),
                Some(left) => wake.recv_timeout(left),
            }
        };
        match next {
            Ok(Wake::Work) => std::thread::sleep(COALESCE),
            Ok(Wake::Flush(ack)) => {
                drain(d, &mut waiting);
                let _ = ack.send(());
            }
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Assembles every slice in the inbox; returns how many there were.
fn drain(d: &Dispatcher, waiting: &mut Vec<Arc<LoopShared>>) -> usize {
    // Test builds: the thread stalls here (with work waiting, or soon) while armed.
    while fault::fires("dispatch_thread_stall") {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut drained = 0;
    while let Some(SliceMsg {
        slice,
        objects,
        target,
    }) = d.inbox.pop()
    {
        drained += 1;
        d.beat(aiocop_clock::now_ns());
        // Should this slice's assembly panic, it is lost (counted), and its loop no longer
        // waits for it to come back.
        let held = Held(Some(&target));
        if fault::fires("dispatch_thread_panic") {
            panic!("injected panic on aiocop's dispatch thread");
        }
        let event = assemble(&slice).map(|task| (task, objects));
        held.release();
        if !target.arrive(event) {
            continue;
        }
        if !waiting.iter().any(|w| Arc::ptr_eq(w, &target)) {
            waiting.push(target);
        }
    }
    drained
}

/// A slice taken from the inbox and not yet back in its loop: when the thread unwinds with it,
/// it is counted as lost and its loop stops waiting for it.
struct Held<'a>(Option<&'a LoopShared>);

impl Held<'_> {
    /// The slice is about to go back to its loop (`LoopShared::arrive`).
    fn release(mut self) {
        self.0 = None;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(target) = self.0 {
            target.hand_off_failed();
            count(&LOST);
        }
    }
}

/// Schedules delivery with `call_soon_threadsafe` for loops that did not pick their events up.
fn schedule(d: &Dispatcher, targets: &mut Vec<Arc<LoopShared>>) {
    if targets.is_empty() {
        return;
    }
    if config::is_shutting_down() || !aiocop_hook::compat::interpreter_alive() {
        for t in targets.drain(..) {
            t.discard_pending();
        }
        return;
    }
    d.in_python.store(true, Ordering::Release);
    Python::attach(|py| {
        for target in targets.drain(..) {
            target.wake_for_delivery(py);
        }
    });
    d.in_python.store(false, Ordering::Release);
    d.beat(aiocop_clock::now_ns());
}
