//! Loom models of the delivery state machines' cross-thread protocols: the background thread
//! bringing events back and marking them ready, against the loop thread picking them up,
//! delivering or flushing, and queueing events made in place; loop threads pushing slices into
//! the background thread's inbox while it is abandoned. Loom runs every interleaving of
//! the model's threads (bounded by `LOOM_MAX_PREEMPTIONS`) and lets each load see every value
//! the memory model allows; each model checks that no event is lost, repeated or reordered,
//! and that no event is left waiting with nothing to come for it (the `ready` mark off and
//! no delivery scheduled).
//!
//! Built only with `RUSTFLAGS="--cfg loom"` (`cargo xtask test` runs them, in `target/loom`):
//! in a normal build this test binary is empty. One behaviour per file.

#![cfg(loom)]

mod a_failed_pick_up_stays_ready;
mod a_flush_racing_arrivals_delivers_each_once;
mod an_abandoned_inbox_strands_nothing;
mod arrivals_racing_a_pick_up_are_never_stranded;
mod in_place_events_follow_handed_off_ones;
mod one_schedule_per_ready_batch;

use aiocop_delivery::DeliveryQueue;
use loom::sync::Arc;
use loom::thread::{self, JoinHandle};

/// A queue with `in_flight` slices handed off, and the background thread running `arrivals`
/// on it (bringing events back).
fn with_background<R: Send + 'static>(
    in_flight: usize,
    arrivals: impl FnOnce(&DeliveryQueue<u32>) -> R + Send + 'static,
) -> (Arc<DeliveryQueue<u32>>, JoinHandle<R>) {
    let q = Arc::new(DeliveryQueue::new(4));
    for _ in 0..in_flight {
        q.hand_off();
    }
    let background = {
        let q = Arc::clone(&q);
        thread::spawn(move || arrivals(&q))
    };
    (q, background)
}

/// Waits for the background thread.
fn join<R>(background: JoinHandle<R>) -> R {
    background
        .join()
        .expect("the background thread does not panic")
}

/// Once every thread is done: an event still waiting has the ready mark on (something comes
/// for it), and everything, delivered and waiting, is `expected`, in order.
fn finish(q: &DeliveryQueue<u32>, mut delivered: Vec<u32>, expected: &[u32]) {
    let ready = q.has_ready();
    let rest = leftover(q);
    assert!(
        rest.is_empty() || ready,
        "events {rest:?} wait with nothing to come for them"
    );
    delivered.extend(rest);
    assert_eq!(delivered, expected);
}

/// The delivery running on the loop thread: clears the marks and takes every event waiting.
fn deliver(q: &DeliveryQueue<u32>, out: &mut Vec<u32>) {
    q.begin_delivery();
    out.extend(std::iter::from_fn(|| q.pop()));
}

/// Every event still waiting, oldest first.
fn leftover(q: &DeliveryQueue<u32>) -> Vec<u32> {
    std::iter::from_fn(|| q.pop()).collect()
}

/// Runs `model` under loom with the project's bounds: the preemption bound comes from
/// `LOOM_MAX_PREEMPTIONS` (`cargo xtask test` sets 8, more than these models can use: every
/// interleaving is run, in hundredths of a second), else 8.
fn check(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(8);
    }
    builder.check(model);
}
