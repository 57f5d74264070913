//! The background thread's inbox: slices from every loop thread, bounded, lock-free, and
//! abandonable. When the background thread dies (a panic) or stalls, its inbox is abandoned:
//! what it holds is taken out at once (to be counted as lost) and every later push is refused,
//! so that no slice is left behind in an inbox nobody reads — and no loop waits on it for the
//! slice's return (`DeliveryQueue::can_queue_here`).
//!
//! Pushes and the abandonment meet on one atomic, `gate`: a count of pushes under way, with
//! the top bit meaning "abandoned". A push enters the gate (one read-modify-write), pushes and
//! leaves; the abandonment sets the bit, waits for the pushes under way to leave (each is a few
//! nanoseconds, never blocked), then drains. All of it is read-modify-writes of one location,
//! so they are in one total order: a push either entered before the bit was set (and its slice
//! is drained) or sees the bit (and is refused). The loom model
//! `an_abandoned_inbox_strands_nothing` checks it.

use crate::sync::{spin_wait, AtomicUsize, BoundedQueue, Ordering};

/// The "abandoned" bit of `gate`.
const ABANDONED: usize = 1 << (usize::BITS - 1);

/// A bounded inbox of `T`s (see the module doc).
#[derive(Debug)]
pub struct Inbox<T> {
    slots: BoundedQueue<T>,
    gate: AtomicUsize,
}

/// Why [`Inbox::push`] handed the message back.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<T> {
    /// The inbox is full.
    Full(T),
    /// The inbox was abandoned: its reader is gone.
    Abandoned(T),
}

impl<T> Inbox<T> {
    /// An empty inbox holding at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: BoundedQueue::new(capacity),
            gate: AtomicUsize::new(0),
        }
    }

    /// Adds `msg` (any thread); never blocks.
    pub fn push(&self, msg: T) -> Result<(), Refused<T>> {
        if self.gate.fetch_add(1, Ordering::AcqRel) & ABANDONED != 0 {
            self.gate.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Abandoned(msg));
        }
        let pushed = self.slots.push(msg).map_err(Refused::Full);
        self.gate.fetch_sub(1, Ordering::AcqRel);
        pushed
    }

    /// The oldest message (the reader).
    pub fn pop(&self) -> Option<T> {
        self.slots.pop()
    }

    /// Whether the inbox holds no message.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether the inbox was abandoned.
    pub fn is_abandoned(&self) -> bool {
        self.gate.load(Ordering::Acquire) & ABANDONED != 0
    }

    /// Abandons the inbox: later pushes are refused; returns every message it holds, or `None`
    /// when it was abandoned already (by another thread, which takes them).
    pub fn abandon(&self) -> Option<impl Iterator<Item = T> + '_> {
        if self.gate.fetch_or(ABANDONED, Ordering::AcqRel) & ABANDONED != 0 {
            return None;
        }
        // The pushes that entered before the bit finish theirs; none enters after it.
        while self.gate.fetch_add(0, Ordering::AcqRel) != ABANDONED {
            spin_wait();
        }
        Some(std::iter::from_fn(|| self.slots.pop()))
    }
}
