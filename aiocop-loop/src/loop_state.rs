//! The state aiocop keeps for one monitored loop, shared between its thread and the
//! background thread: the queue of events waiting for delivery, the marks that say whether a
//! delivery is due or scheduled, the count of slices still with the background thread, and the
//! scheduling of the delivery handle on the loop (by the loop thread itself with `call_soon`,
//! or by the background thread with `call_soon_threadsafe` for an idle loop; on a trio run,
//! `TrioToken.run_sync_soon` for both).
//!
//! The marks form a small state machine, free of Python and tested on its own:
//! `aiocop_delivery`. This module does the Python side of its transitions.

use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;

use aiocop_events::{Slice, SlowTask};
use pyo3::prelude::*;

use crate::counters::{count, report_drops, report_faults, DROPPED, PICKED_UP, UNDELIVERED, WOKEN};
use crate::deliver::deliver;
use crate::event::SliceObjects;
use crate::registry::CallbackSnapshot;
use aiocop_delivery::{Arrived, DeliveryQueue, Queued};

/// Assembled events that may wait for delivery, per loop.
const PENDING_CAPACITY: usize = 16_384;

/// What aiocop knows about one monitored loop, shared with the background thread. Holds no
/// strong reference to the loop (only a weak one), so it never keeps a loop alive.
#[derive(Debug)]
pub struct LoopShared {
    /// How the delivery handle is scheduled on the loop.
    scheduler: Scheduler,
    /// A trio run: its end (the instrument's `after_run`) has delivered its events.
    run_over: std::sync::atomic::AtomicBool,
    /// The events waiting for delivery and the marks of their state.
    queue: DeliveryQueue<Pending>,
    thread: ThreadId,
    /// The callable scheduled to deliver this loop's events, made on first use and reused
    /// (it refers back to this state weakly, so it keeps nothing alive).
    delivery: std::sync::OnceLock<Py<Delivery>>,
}

/// How a loop runs a callable on its own thread.
#[derive(Debug)]
enum Scheduler {
    /// An asyncio (or uvloop) loop: its class's `call_soon` and `call_soon_threadsafe`, called
    /// with the loop, held weakly where the loop allows it.
    Loop {
        loop_ref: Py<PyAny>,
        weak: bool,
        call_soon: Py<PyAny>,
        call_soon_threadsafe: Py<PyAny>,
    },
    /// A trio run: its token's `run_sync_soon` (from the run's own thread and from any other
    /// alike). The token keeps no finished run alive: it fails with `RunFinishedError`.
    Trio { run_sync_soon: Py<PyAny> },
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
        Ok(Self::register(Scheduler::Loop {
            loop_ref,
            weak,
            call_soon,
            call_soon_threadsafe,
        }))
    }

    /// Describes the trio run of `token` (a `trio.lowlevel.TrioToken`), running on the current
    /// thread.
    pub(crate) fn for_trio(token: &Bound<'_, PyAny>) -> PyResult<Arc<Self>> {
        let run_sync_soon = token.getattr("run_sync_soon")?.unbind();
        Ok(Self::register(Scheduler::Trio { run_sync_soon }))
    }

    /// Whether this is a trio run's state.
    pub(crate) fn is_trio(&self) -> bool {
        matches!(self.scheduler, Scheduler::Trio { .. })
    }

    fn register(scheduler: Scheduler) -> Arc<Self> {
        let shared = Arc::new(Self {
            scheduler,
            run_over: std::sync::atomic::AtomicBool::new(false),
            queue: DeliveryQueue::new(PENDING_CAPACITY),
            thread: std::thread::current().id(),
            delivery: std::sync::OnceLock::new(),
        });
        let mut loops = LOOPS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loops.retain(|l| l.strong_count() > 0);
        loops.push(Arc::downgrade(&shared));
        shared
    }

    /// Delivers every pending event now, on the calling thread.
    pub(crate) fn deliver_pending(&self, py: Python<'_>) {
        report_drops(py);
        report_faults(py);
        self.queue.begin_delivery();
        let mut callbacks = CallbackSnapshot::default();
        while let Some(p) = self.queue.pop() {
            deliver(py, p.task, p.objects, callbacks.current(py));
        }
    }

    /// Whether events wait for a delivery to be scheduled (one atomic load: checked at the end
    /// of every monitored handle).
    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        self.queue.has_ready()
    }

    /// On the loop's thread, at the end of a handle: whether its slice may be assembled right
    /// here ([`Self::queue_here`]) rather than handed to the background thread. Only when there
    /// is nothing left to format (the call sites' stacks were formatted before) and no earlier
    /// slice of this loop is still with the background thread.
    pub(crate) fn can_assemble_here(&self, slice: &Slice) -> bool {
        self.can_queue_here() && slice.is_preformatted()
    }

    /// Whether an event made on the loop's thread may be queued here now: no earlier slice of
    /// this loop is still with the background thread (events stay in order).
    #[inline]
    pub(crate) fn can_queue_here(&self) -> bool {
        self.queue.can_queue_here()
    }

    /// On the loop's thread: queues an event assembled in place and, unless one is scheduled
    /// already, schedules its delivery with the loop's plain `call_soon`. No other thread is
    /// involved: a service whose blocking calls come from known call sites pays for no
    /// hand-off, wake-up or cross-thread allocation.
    pub(crate) fn queue_here(
        self: &Arc<Self>,
        py: Python<'_>,
        task: SlowTask,
        objects: SliceObjects,
    ) {
        match self.queue.queue_here(Pending { task, objects }) {
            Queued::Scheduled => {}
            Queued::Full(rejected) => {
                count(&DROPPED);
                drop(rejected);
            }
            Queued::Schedule => {
                if self.schedule(py, Via::LoopThread).is_ok() {
                    count(&PICKED_UP);
                } else {
                    // The loop is closed or gone: nobody will run the delivery.
                    PyErr::take(py);
                    self.queue.schedule_failed();
                    self.discard_unless_run_ends();
                }
            }
        }
    }

    /// On the loop's thread: schedules the delivery of the pending events as a handle of its
    /// own, with the loop's plain `call_soon` (no self-pipe wake-up, no GIL hand-off).
    pub(crate) fn pick_up(self: &Arc<Self>, py: Python<'_>) {
        if !self.queue.take_ready() {
            return;
        }
        if self.schedule(py, Via::LoopThread).is_ok() {
            count(&PICKED_UP);
        } else {
            PyErr::take(py);
            // Let the background thread try (and report) instead.
            self.queue.ready_again();
        }
    }

    /// Schedules the delivery handle: on an asyncio loop `method(loop, delivery,
    /// context=<new empty context>)`, with `method` the class-level (unpatched) `call_soon`
    /// (`via` the loop's thread) or `call_soon_threadsafe`, as one vectorcall (no argument tuple
    /// or keyword dict); on a trio run `run_sync_soon(delivery)` either way.
    fn schedule(self: &Arc<Self>, py: Python<'_>, via: Via) -> PyResult<()> {
        let (loop_ref, weak, method) = match &self.scheduler {
            Scheduler::Trio { run_sync_soon } => {
                let delivery = self.delivery(py)?;
                run_sync_soon.bind(py).call1((delivery,))?;
                return Ok(());
            }
            Scheduler::Loop {
                loop_ref,
                weak,
                call_soon,
                call_soon_threadsafe,
            } => match via {
                Via::LoopThread => (loop_ref, *weak, call_soon),
                Via::OtherThread => (loop_ref, *weak, call_soon_threadsafe),
            },
        };
        let event_loop = if weak {
            loop_ref.bind(py).call0().ok().filter(|l| !l.is_none())
        } else {
            Some(loop_ref.bind(py).clone())
        }
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("the loop is gone"))?;
        let delivery = self.delivery(py)?;
        // Deliver in a fresh, empty context: not in a copy of whichever task's context was
        // current when the delivery was scheduled.
        // SAFETY: GIL held; returns a new reference or NULL with an exception set.
        let context = unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyContext_New()) }?;
        let kwnames = crate::kwnames::context_kwnames(py);
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
    pub(crate) fn log_pending(&self, py: Python<'_>, why: &str) {
        for p in self.queue.drain() {
            let message = crate::deliver::describe(py, &p.task, &p.objects);
            crate::pylog::warning(
                py,
                &format!("aiocop could not deliver a slow-task event ({why}): {message}"),
            );
        }
    }

    /// A delivery could not be scheduled. On a trio run whose end has not been seen yet the
    /// events stay for it: trio refuses `run_sync_soon` from the moment its system tasks end,
    /// before the instrument's `after_run`, which delivers them ([`Self::mark_run_over`] after).
    /// Anywhere else they are discarded (counted as undelivered).
    fn discard_unless_run_ends(&self) {
        if self.is_trio() && !self.run_over.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        self.discard_pending();
    }

    /// A trio run's end has delivered its events: what is scheduled later cannot be.
    pub(crate) fn mark_run_over(&self) {
        self.run_over
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn discard_pending(&self) {
        for p in self.queue.drain() {
            count(&UNDELIVERED);
            drop(p);
        }
    }

    /// The thread the loop runs on.
    pub(crate) fn thread(&self) -> ThreadId {
        self.thread
    }

    /// A slice of this loop goes to the background thread: later ones follow it there until
    /// it is back ([`Self::arrive`]), so events stay in order.
    pub(crate) fn hand_off(&self) {
        self.queue.hand_off();
    }

    /// A slice handed off could not be queued for the background thread after all.
    pub(crate) fn hand_off_failed(&self) {
        self.queue.hand_off_failed();
    }

    /// On the background thread: a slice handed off is back, assembled into `event` (`None`
    /// when it made no event). Queues the event for delivery and marks it ready (the age of
    /// the ready batch starts now when none was waiting); `false` when the loop's queue was
    /// full (the event is dropped and counted) or there was no event.
    pub(crate) fn arrive(&self, event: Option<(SlowTask, SliceObjects)>) -> bool {
        let event = event.map(|(task, objects)| Pending { task, objects });
        match self.queue.arrive(event, aiocop_clock::now_ns()) {
            Arrived::Queued => true,
            Arrived::Nothing => false,
            Arrived::Full(rejected) => {
                count(&DROPPED);
                drop(rejected);
                false
            }
        }
    }

    /// When events last became ready (ns on [`aiocop_clock::now_ns`]'s clock).
    pub(crate) fn ready_since(&self) -> u64 {
        self.queue.ready_since()
    }

    /// Takes the ready mark: `true` when events were ready and no delivery was scheduled for
    /// them (the caller schedules one now).
    pub(crate) fn take_ready(&self) -> bool {
        self.queue.take_ready()
    }

    /// On the background thread, with the GIL: schedules the delivery with the loop's
    /// `call_soon_threadsafe` (the loop ran no monitored handle for the pick-up grace); a
    /// loop that is closed or gone has its events discarded (counted as undelivered).
    pub(crate) fn wake_for_delivery(self: &Arc<Self>, py: Python<'_>) {
        if self.schedule(py, Via::OtherThread).is_ok() {
            count(&WOKEN);
        } else {
            // The loop is closed or gone: nobody will run the delivery.
            PyErr::take(py);
            self.discard_unless_run_ends();
        }
    }
}

/// From which thread a delivery is scheduled.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// The loop's own (`call_soon`).
    LoopThread,
    /// Any other (`call_soon_threadsafe`).
    OtherThread,
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
        aiocop_hook::heaptype::guard(
            "event delivery",
            || (),
            || {
                if let Some(target) = self.target.upgrade() {
                    target.deliver_pending(py);
                    if target.is_trio() {
                        // Trio runs `run_sync_soon` callables inside a task step of its own,
                        // which is monitored: what the user's callbacks did is not the run's.
                        aiocop_hook::reset_records();
                    }
                }
            },
        )
    }

    fn __repr__(&self) -> &'static str {
        "<aiocop event delivery>"
    }
}

/// Every monitored loop still alive.
pub(crate) fn live_loops() -> Vec<Arc<LoopShared>> {
    LOOPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect()
}
