//! One loop's delivery state machine, free of Python: the queue of events waiting for
//! delivery and the marks that say whether a delivery is due, scheduled, or must wait for
//! slices still with the background thread. `aiocop-loop`'s `LoopShared` holds one and does
//! the Python side of each transition (scheduling the delivery handle, calling the callbacks);
//! the transitions themselves, each an atomic operation or two, are here and are tested here,
//! one behaviour per file under `src/tests/`, and modelled with loom under `tests/models/`.
//!
//! The marks:
//!
//! - `ready`: events arrived from the background thread and no delivery was scheduled for them
//!   yet. Turned on by [`DeliveryQueue::arrive`] (the background thread: the age of the batch
//!   starts then), off by whoever schedules the delivery ([`DeliveryQueue::take_ready`]: the
//!   loop thread at the end of a handle, or the background thread for a loop idle too long),
//!   back on when the loop thread could not schedule ([`DeliveryQueue::ready_again`]).
//! - `delivery_scheduled`: the loop thread queued an event made in place and scheduled a
//!   delivery that has not run yet ([`DeliveryQueue::queue_here`] says when to schedule).
//! - `in_flight`: slices handed to the background thread and not back yet
//!   ([`DeliveryQueue::hand_off`] / [`DeliveryQueue::arrive`]); while any are, events made
//!   later must follow them there ([`DeliveryQueue::can_queue_here`]), so a loop's events are
//!   delivered in the order its handles ran.
//!
//! [`DeliveryQueue::begin_delivery`] (the delivery running) clears both marks and the events
//! are then taken one by one ([`DeliveryQueue::pop`]).
//!
//! Every write to `ready`, which two threads change, is a read-modify-write (`swap`), never a
//! plain store: each transition then acts on the latest mark, which is what the loom models
//! check (and loom's own model of a plain store racing a read-modify-write is unsound, its
//! issue 254, so a store there would also make the models report what cannot happen).

use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, BoundedQueue, Ordering};

/// A loop's events waiting for delivery, and the marks of their state (see the module doc).
#[derive(Debug)]
pub struct DeliveryQueue<T> {
    pending: BoundedQueue<T>,
    ready: AtomicBool,
    /// When `ready` last went from false to true (ns on the caller's clock).
    ready_since_ns: AtomicU64,
    in_flight: AtomicUsize,
    delivery_scheduled: AtomicBool,
}

/// What [`DeliveryQueue::queue_here`] did with an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Queued<T> {
    /// Queued; the caller must now schedule a delivery (none is scheduled yet).
    Schedule,
    /// Queued; a delivery is scheduled already and will take it.
    Scheduled,
    /// The queue was full: the event is handed back (to be dropped and counted).
    Full(T),
}

/// What [`DeliveryQueue::arrive`] did with a slice back from the background thread.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrived<T> {
    /// The event is queued and marked ready.
    Queued,
    /// The slice made no event.
    Nothing,
    /// The queue was full: the event is handed back (to be dropped and counted).
    Full(T),
}

impl<T> DeliveryQueue<T> {
    /// An empty queue holding at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            pending: BoundedQueue::new(capacity),
            ready: AtomicBool::new(false),
            ready_since_ns: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            delivery_scheduled: AtomicBool::new(false),
        }
    }

    /// Whether events wait for a delivery to be scheduled (one relaxed load: checked at the
    /// end of every monitored handle).
    #[inline]
    pub fn has_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether an event made on the loop's thread may be queued here now: no earlier slice of
    /// this loop is still with the background thread.
    #[inline]
    pub fn can_queue_here(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// On the loop's thread: queues an event made in place.
    pub fn queue_here(&self, event: T) -> Queued<T> {
        if let Err(rejected) = self.pending.push(event) {
            return Queued::Full(rejected);
        }
        if self.delivery_scheduled.swap(true, Ordering::AcqRel) {
            Queued::Scheduled
        } else {
            Queued::Schedule
        }
    }

    /// The delivery [`Self::queue_here`] asked for could not be scheduled.
    pub fn schedule_failed(&self) {
        self.delivery_scheduled.store(false, Ordering::Release);
    }

    /// Takes the ready mark: `true` when events were ready and no delivery was scheduled for
    /// them (the caller schedules one now).
    pub fn take_ready(&self) -> bool {
        self.ready.swap(false, Ordering::AcqRel)
    }

    /// The delivery [`Self::take_ready`] promised could not be scheduled: the events are ready
    /// again (the background thread will try, and report).
    pub fn ready_again(&self) {
        self.ready.swap(true, Ordering::AcqRel);
    }

    /// When events last became ready.
    pub fn ready_since(&self) -> u64 {
        self.ready_since_ns.load(Ordering::Acquire)
    }

    /// A slice of this loop goes to the background thread.
    pub fn hand_off(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// A slice handed off could not be queued for the background thread after all.
    pub fn hand_off_failed(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// On the background thread: a slice handed off is back, made into `event` (`None` when it
    /// made no event), at `now_ns`. Only this thread turns `ready` on; the age of the ready
    /// batch starts now when none was waiting.
    pub fn arrive(&self, event: Option<T>, now_ns: u64) -> Arrived<T> {
        let pushed = event.map(|event| self.pending.push(event));
        // In `pending` (or dropped) now: the loop thread may queue in place again.
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        match pushed {
            None => Arrived::Nothing,
            Some(Err(rejected)) => Arrived::Full(rejected),
            Some(Ok(())) => {
                // One read-modify-write (not a load, then a store): it reads the latest mark,
                // so an event pushed just after a delivery took the mark off turns it on
                // again, never skipping it on a stale `true` (the loom model
                // `arrivals_racing_a_pick_up_are_never_stranded`). Only this thread reads
                // the age, so it may be written after the mark.
                if !self.ready.swap(true, Ordering::AcqRel) {
                    self.ready_since_ns.store(now_ns, Ordering::Release);
                }
                Arrived::Queued
            }
        }
    }

    /// The delivery runs (or a flush delivers): both marks are cleared; the caller then takes
    /// the events with [`Self::pop`].
    pub fn begin_delivery(&self) {
        self.delivery_scheduled.store(false, Ordering::Release);
        // A read-modify-write: it reads (and synchronizes with) the latest `arrive`, whose
        // event the pops that follow then see.
        self.ready.swap(false, Ordering::AcqRel);
    }

    /// The next event waiting, oldest first.
    pub fn pop(&self) -> Option<T> {
        self.pending.pop()
    }

    /// Takes every event waiting (they cannot be delivered) and clears the ready mark.
    pub fn drain(&self) -> impl Iterator<Item = T> + '_ {
        self.ready.swap(false, Ordering::AcqRel);
        std::iter::from_fn(|| self.pending.pop())
    }
}
