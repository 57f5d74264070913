//! The background thread: slices of new call sites arrive in a lock-free inbox, are assembled
//! into events without the GIL (formatting the new stacks), and wait in their loop's pending
//! queue for delivery on the loop's own thread. Slices whose stacks are all formatted already
//! are assembled by the loop thread in place ([`LoopShared::queue_here`]): cheaper than the
//! hand-off.
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

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use aiocop_events::{assemble, Slice, SlowTask};
use crossbeam_queue::ArrayQueue;
use pyo3::prelude::*;

use crate::deliver::deliver;
use crate::event::SliceObjects;
use crate::registry::CallbackSnapshot;

/// Slices that may wait for the background thread (all loops together).
const CHANNEL_CAPACITY: usize = 16_384;
/// Assembled events that may wait for delivery, per loop.
const PENDING_CAPACITY: usize = 16_384;
/// How long events may wait for the loop thread to pick them up before the background thread
/// schedules their delivery itself.
pub const PICKUP_GRACE: Duration = Duration::from_millis(2);

static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Events whose loop had closed or gone before they could be delivered.
static UNDELIVERED: AtomicU64 = AtomicU64::new(0);
/// Deliveries scheduled by the loop thread itself, at the end of one of its handles.
static PICKED_UP: AtomicU64 = AtomicU64::new(0);
/// Deliveries the background thread had to schedule (`call_soon_threadsafe`): the loop ran no
/// monitored handle for [`PICKUP_GRACE`].
static WOKEN: AtomicU64 = AtomicU64::new(0);

/// What aiocop knows about one monitored loop, shared with the background thread. Holds no
/// strong reference to the loop (only a weak one), so it never keeps a loop alive.
#[derive(Debug)]
pub struct LoopShared {
    loop_ref: Py<PyAny>,
    weak: bool,
    call_soon: Py<PyAny>,
    call_soon_threadsafe: Py<PyAny>,
    pending: ArrayQueue<Pending>,
    /// Events are pending and no delivery has been scheduled for them yet.
    ready: AtomicBool,
    /// When `ready` last went from false to true (ns on [`aiocop_clock::now_ns`]'s clock).
    ready_since_ns: AtomicU64,
    /// Slices of this loop handed to the background thread and not yet in `pending`: while
    /// there are any, later slices follow them there too (events stay in order).
    in_flight: AtomicUsize,
    /// The loop thread has scheduled a delivery that has not run yet.
    delivery_scheduled: AtomicBool,
    thread: ThreadId,
    /// The callable scheduled to deliver this loop's events, made on first use and reused
    /// (it refers back to this state weakly, so it keeps nothing alive).
    delivery: std::sync::OnceLock<Py<Delivery>>,
}

#[derive(Debug)]
struct Pending {
    task: SlowTask,
    objects: SliceObjects,
}

static LOOPS: Mutex<Vec<Weak<LoopShared>>> = Mutex::new(Vec::new());

impl LoopShared {
    /// Describes `event_loop`, running on the current thread.
    pub fn new(event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<Self>> {
        let py = event_loop.py();
        let (loop_ref, weak) = match py.import("weakref")?.getattr("ref")?.call1((event_loop,)) {
            Ok(weak) => (weak.unbind(), true),
            Err(_) => (event_loop.clone().unbind(), false),
        };
        // The class attributes are the unpatched methods and hold no reference to the loop.
        let call_soon = event_loop.get_type().getattr("call_soon")?.unbind();
        let call_soon_threadsafe = event_loop
            .get_type()
            .getattr("call_soon_threadsafe")?
            .unbind();
        let shared = Arc::new(Self {
            loop_ref,
            weak,
            call_soon,
            call_soon_threadsafe,
            pending: ArrayQueue::new(PENDING_CAPACITY),
            ready: AtomicBool::new(false),
            ready_since_ns: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            delivery_scheduled: AtomicBool::new(false),
            thread: std::thread::current().id(),
            delivery: std::sync::OnceLock::new(),
        });
        let mut loops = LOOPS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loops.retain(|l| l.strong_count() > 0);
        loops.push(Arc::downgrade(&shared));
        Ok(shared)
    }

    fn event_loop<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let obj = self.loop_ref.bind(py);
        if !self.weak {
            return Some(obj.clone());
        }
        obj.call0().ok().filter(|l| !l.is_none())
    }

    /// Delivers every pending event now, on the calling thread.
    pub fn deliver_pending(&self, py: Python<'_>) {
        report_drops(py);
        self.delivery_scheduled.store(false, Ordering::Release);
        self.ready.store(false, Ordering::Release);
        let mut callbacks = CallbackSnapshot::default();
        while let Some(p) = self.pending.pop() {
            deliver(py, p.task, p.objects, callbacks.current(py));
        }
    }

    /// Whether events wait for a delivery to be scheduled (one atomic load: checked at the end
    /// of every monitored handle).
    #[inline]
    pub fn has_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// On the loop's thread, at the end of a handle: whether its slice may be assembled right
    /// here ([`Self::queue_here`]) rather than handed to the background thread. Only when there
    /// is nothing left to format (the call sites' stacks were formatted before) and no earlier
    /// slice of this loop is still with the background thread.
    pub fn can_assemble_here(&self, slice: &Slice) -> bool {
        self.can_queue_here() && slice.is_preformatted()
    }

    /// Whether an event made on the loop's thread may be queued here now: no earlier slice of
    /// this loop is still with the background thread (events stay in order).
    #[inline]
    pub fn can_queue_here(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// On the loop's thread: queues an event assembled in place and, unless one is scheduled
    /// already, schedules its delivery with the loop's plain `call_soon`. No other thread is
    /// involved: a service whose blocking calls come from known call sites pays for no
    /// hand-off, wake-up or cross-thread allocation.
    pub fn queue_here(self: &Arc<Self>, py: Python<'_>, task: SlowTask, objects: SliceObjects) {
        if let Err(rejected) = self.pending.push(Pending { task, objects }) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            drop(rejected);
            return;
        }
        if self.delivery_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.schedule_with(py, &self.call_soon).is_ok() {
            PICKED_UP.fetch_add(1, Ordering::Relaxed);
        } else {
            // The loop is closed or gone: nobody will run the delivery.
            PyErr::take(py);
            self.delivery_scheduled.store(false, Ordering::Release);
            self.discard_pending();
        }
    }

    /// On the loop's thread: schedules the delivery of the pending events as a handle of its
    /// own, with the loop's plain `call_soon` (no self-pipe wake-up, no GIL hand-off).
    pub fn pick_up(self: &Arc<Self>, py: Python<'_>) {
        if !self.ready.swap(false, Ordering::AcqRel) {
            return;
        }
        if self.schedule_with(py, &self.call_soon).is_ok() {
            PICKED_UP.fetch_add(1, Ordering::Relaxed);
        } else {
            PyErr::take(py);
            // Let the background thread try (and report) instead.
            self.ready.store(true, Ordering::Release);
        }
    }

    /// Schedules the delivery handle: `method(loop, delivery, context=<new empty context>)`,
    /// with `method` a class-level (unpatched) `call_soon` or `call_soon_threadsafe`, as one
    /// vectorcall (no argument tuple or keyword dict).
    fn schedule_with(self: &Arc<Self>, py: Python<'_>, method: &Py<PyAny>) -> PyResult<()> {
        let event_loop = self
            .event_loop(py)
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("the loop is gone"))?;
        let delivery = self.delivery(py)?;
        // Deliver in a fresh, empty context: not in a copy of whichever task's context was
        // current when the delivery was scheduled.
        // SAFETY: GIL held; returns a new reference or NULL with an exception set.
        let context = unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyContext_New()) }?;
        let kwnames = crate::native::context_kwnames(py);
        if kwnames.is_null() {
            return Err(PyErr::fetch(py));
        }
        // Slot 0 is spare for PY_VECTORCALL_ARGUMENTS_OFFSET.
        let args = [
            std::ptr::null_mut(),
            event_loop.as_ptr(),
            delivery.as_ptr(),
            context.as_ptr(),
        ];
        // SAFETY: GIL held; two positionals and the `context` keyword's value, all valid for
        // the call; `kwnames` names the last one; slot 0 may be overwritten by the callee.
        let handle = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                pyo3::ffi::PyObject_Vectorcall(
                    method.as_ptr(),
                    args.as_ptr().add(1),
                    2 | pyo3::ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                    kwnames,
                ),
            )
        }?;
        drop(handle);
        Ok(())
    }

    /// This loop's delivery callable (made once).
    fn delivery<'py>(self: &Arc<Self>, py: Python<'py>) -> PyResult<&Bound<'py, Delivery>> {
        if let Some(delivery) = self.delivery.get() {
            return Ok(delivery.bind(py));
        }
        let made = Py::new(
            py,
            Delivery {
                target: Arc::downgrade(self),
            },
        )?;
        Ok(self.delivery.get_or_init(|| made).bind(py))
    }

    /// Logs every pending event at WARNING with its content (they cannot be delivered: `why`).
    fn log_pending(&self, py: Python<'_>, why: &str) {
        self.ready.store(false, Ordering::Release);
        while let Some(p) = self.pending.pop() {
            let message = crate::deliver::describe(py, &p.task, &p.objects);
            crate::pylog::warning(
                py,
                &format!("aiocop could not deliver a slow-task event ({why}): {message}"),
            );
        }
    }

    fn discard_pending(&self) {
        while let Some(p) = self.pending.pop() {
            UNDELIVERED.fetch_add(1, Ordering::Relaxed);
            drop(p);
        }
        self.ready.store(false, Ordering::Release);
    }
}

/// The callable scheduled on the loop to deliver its pending events.
#[pyclass(frozen, module = "aiocop._aiocop", name = "_Delivery")]
#[derive(Debug)]
pub struct Delivery {
    target: Weak<LoopShared>,
}

#[pymethods]
impl Delivery {
    fn __call__(&self, py: Python<'_>) {
        if let Some(target) = self.target.upgrade() {
            target.deliver_pending(py);
        }
    }

    fn __repr__(&self) -> &'static str {
        "<aiocop event delivery>"
    }
}

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
pub fn send(slice: Slice, objects: SliceObjects, target: &Arc<LoopShared>) {
    let Some(d) = dispatcher() else {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let msg = SliceMsg {
        slice,
        objects,
        target: Arc::clone(target),
    };
    target.in_flight.fetch_add(1, Ordering::AcqRel);
    if let Err(rejected) = d.inbox.push(msg) {
        target.in_flight.fetch_sub(1, Ordering::AcqRel);
        DROPPED.fetch_add(1, Ordering::Relaxed);
        // Release the Python objects here, with the GIL.
        drop(rejected);
        return;
    }
    if d.asleep.swap(false, Ordering::AcqRel) {
        let _ = d.wake.send(Wake::Work);
    }
}

/// Logs (logger `aiocop`, at most once a second) how many events were dropped since the last
/// report, if any.
fn report_drops(py: Python<'_>) {
    static REPORTED: AtomicU64 = AtomicU64::new(0);
    static LAST_NS: AtomicU64 = AtomicU64::new(0);
    let dropped = DROPPED.load(Ordering::Relaxed);
    let reported = REPORTED.load(Ordering::Relaxed);
    if dropped <= reported {
        return;
    }
    let now = aiocop_clock::now_ns();
    let last = LAST_NS.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < 1_000_000_000 {
        return;
    }
    LAST_NS.store(now, Ordering::Relaxed);
    REPORTED.store(dropped, Ordering::Relaxed);
    crate::pylog::warning(
        py,
        &format!(
            "aiocop dropped {} slow-task event(s): a bounded queue was full; {dropped} in all, \
             see aiocop.stats()",
            dropped - reported
        ),
    );
}

/// Events dropped because a bounded queue was full.
pub fn dropped_events() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Events not delivered because their loop had closed or gone first.
pub fn undelivered_events() -> u64 {
    UNDELIVERED.load(Ordering::Relaxed)
}

/// `(picked up, woken)`: deliveries scheduled by the loop thread itself, and by the background
/// thread because the loop was idle.
pub fn delivery_counts() -> (u64, u64) {
    (
        PICKED_UP.load(Ordering::Relaxed),
        WOKEN.load(Ordering::Relaxed),
    )
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

/// Every monitored loop still alive.
fn live_loops() -> Vec<Arc<LoopShared>> {
    LOOPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect()
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
            for l in live_loops().into_iter().filter(|l| l.thread == me) {
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
        if l.thread == me {
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
    SHUTTING_DOWN.store(true, Ordering::Release);
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
            let since = target.ready_since_ns.load(Ordering::Acquire);
            if now.saturating_sub(since) < grace_ns {
                return true;
            }
            if target.ready.swap(false, Ordering::AcqRel) {
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
        let grace_left = waiting
            .iter()
            .map(|t| t.ready_since_ns.load(Ordering::Acquire))
            .min()
            .map(|oldest| {
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
        let Some(task) = assemble(&slice) else {
            target.in_flight.fetch_sub(1, Ordering::AcqRel);
            continue;
        };
        let pushed = target.pending.push(Pending { task, objects });
        // In `pending` (or dropped) now: the loop thread may assemble in place again.
        target.in_flight.fetch_sub(1, Ordering::AcqRel);
        if pushed.is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if !target.ready.load(Ordering::Acquire) {
            // Only this thread turns `ready` on (the loop thread turns it off, or back on when
            // it could not schedule): the age starts now.
            target
                .ready_since_ns
                .store(aiocop_clock::now_ns(), Ordering::Release);
            target.ready.store(true, Ordering::Release);
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
    if SHUTTING_DOWN.load(Ordering::Acquire) || !aiocop_hook::compat::interpreter_alive() {
        for t in targets.drain(..) {
            t.discard_pending();
        }
        return;
    }
    Python::attach(|py| {
        for target in targets.drain(..) {
            if target
                .schedule_with(py, &target.call_soon_threadsafe)
                .is_ok()
            {
                WOKEN.fetch_add(1, Ordering::Relaxed);
            } else {
                // The loop is closed or gone: nobody will run the delivery.
                PyErr::take(py);
                target.discard_pending();
            }
        }
    });
}

/// Whether the interpreter is shutting down (deliveries and sampling stop).
pub fn is_shutting_down() -> bool {
    SHUTTING_DOWN.load(Ordering::Acquire)
}
