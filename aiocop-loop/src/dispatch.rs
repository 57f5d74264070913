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

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiocop_events::{assemble, Slice};
use crossbeam_queue::ArrayQueue;
use pyo3::prelude::*;

use crate::config;
use crate::counters::{count, DROPPED};
pub use crate::counters::{delivery_counts, dropped_events, undelivered_events};
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

struct Dispatcher {
    /// Slices from every loop thread: lock-free, bounded.
    inbox: ArrayQueue<SliceMsg>,
    /// The background thread is (about to be) parked on `wake`: the next producer wakes it.
    asleep: AtomicBool,
    wake: flume::Sender<Wake>,
}

/// The current dispatcher. Replaced (the old one leaked) after a fork, so no lock that another
/// thread held at fork time is ever taken in the child.
static DISPATCHER: AtomicPtr<Dispatcher> = AtomicPtr::new(std::ptr::null_mut());

fn current_dispatcher() -> Option<&'static Dispatcher> {
    let current = DISPATCHER.load(Ordering::Acquire);
    // SAFETY: dispatchers are leaked, never freed: a non-null pointer stays valid.
    (!current.is_null()).then(|| unsafe { &*current })
}

fn dispatcher() -> Option<&'static Dispatcher> {
    if let Some(d) = current_dispatcher() {
        return Some(d);
    }
    let (tx, rx) = flume::unbounded();
    let fresh: &'static Dispatcher = Box::leak(Box::new(Dispatcher {
        inbox: ArrayQueue::new(CHANNEL_CAPACITY),
        asleep: AtomicBool::new(false),
        wake: tx,
    }));
    let fresh_ptr = std::ptr::from_ref(fresh).cast_mut();
    match DISPATCHER.compare_exchange(
        std::ptr::null_mut(),
        fresh_ptr,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            let spawned = std::thread::Builder::new()
                .name("aiocop-dispatch".into())
                .spawn(move || run(fresh, rx));
            if let Err(err) = spawned {
                tracing::error!("aiocop could not start its dispatch thread: {err}");
            }
            Some(fresh)
        }
        // Another thread won the race; ours (never published, no thread) stays leaked: tiny
        // and once per process at most.
        Err(_) => current_dispatcher(),
    }
}

/// Hands a slice to the background thread. Never blocks; a full inbox drops (and counts) it.
/// Wakes the background thread only when it is parked. Out of line: in steady traffic slices
/// come from known call sites and are assembled in place instead.
#[cold]
#[inline(never)]
pub(crate) fn send(slice: Slice, objects: SliceObjects, target: &Arc<LoopShared>) {
    let Some(d) = dispatcher() else {
        count(&DROPPED);
        return;
    };
    let msg = SliceMsg {
        slice,
        objects,
        target: Arc::clone(target),
    };
    target.hand_off();
    if let Err(rejected) = d.inbox.push(msg) {
        target.hand_off_failed();
        count(&DROPPED);
        // Release the Python objects here, with the GIL.
        drop(rejected);
        return;
    }
    if d.asleep.swap(false, Ordering::AcqRel) {
        let _ = d.wake.send(Wake::Work);
    }
}

/// Waits (without the GIL) until the background thread has assembled everything sent so far.
fn drain_background(py: Python<'_>) {
    if let Some(d) = current_dispatcher() {
        let wake = d.wake.clone();
        py.detach(move || {
            let (ack_tx, ack_rx) = flume::bounded(1);
            if wake.send(Wake::Flush(ack_tx)).is_ok() {
                let _ = ack_rx.recv_timeout(Duration::from_secs(10));
            }
        });
    }
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

/// In a child process after `fork()`: forget the parent's thread and channel.
pub fn after_fork_child() {
    DISPATCHER.store(std::ptr::null_mut(), Ordering::Release);
}

fn run(d: &'static Dispatcher, wake: flume::Receiver<Wake>) {
    // Loops with events waiting to be picked up (each loop once).
    let mut waiting: Vec<Arc<LoopShared>> = Vec::new();
    let mut due: Vec<Arc<LoopShared>> = Vec::new();
    let grace_ns = u64::try_from(PICKUP_GRACE.as_nanos()).unwrap_or(u64::MAX);
    loop {
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
            schedule(&mut due);
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
    let mut drained = 0;
    while let Some(SliceMsg {
        slice,
        objects,
        target,
    }) = d.inbox.pop()
    {
        drained += 1;
        if !target.arrive(assemble(&slice).map(|task| (task, objects))) {
            continue;
        }
        if !waiting.iter().any(|w| Arc::ptr_eq(w, &target)) {
            waiting.push(target);
        }
    }
    drained
}

/// Schedules delivery with `call_soon_threadsafe` for loops that did not pick their events up.
fn schedule(targets: &mut Vec<Arc<LoopShared>>) {
    if targets.is_empty() {
        return;
    }
    if config::is_shutting_down() || !aiocop_hook::compat::interpreter_alive() {
        for t in targets.drain(..) {
            t.discard_pending();
        }
        return;
    }
    Python::attach(|py| {
        for target in targets.drain(..) {
            target.wake_for_delivery(py);
        }
    });
}
