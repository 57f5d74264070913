//! The delivery state machines, one behaviour per file, without Python and without timing.

mod a_batch_is_ready_once_until_delivered;
mod a_failed_schedule_keeps_the_events;
mod a_full_queue_hands_the_event_back;
mod an_abandoned_inbox_hands_everything_back;
mod events_made_in_place_wait_for_handed_off_ones;
mod one_delivery_is_scheduled_per_batch;
mod racing_producers_and_a_flush_lose_and_repeat_nothing;
mod undeliverable_events_are_drained;

use crate::DeliveryQueue;

/// A queue of numbered events with room for `capacity`.
fn queue(capacity: usize) -> DeliveryQueue<u32> {
    DeliveryQueue::new(capacity)
}

/// Every event waiting, oldest first.
fn taken(q: &DeliveryQueue<u32>) -> Vec<u32> {
    std::iter::from_fn(|| q.pop()).collect()
}
