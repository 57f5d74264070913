//! Events back from the background thread make the batch ready, once: the first to take the
//! mark schedules the delivery; the batch's age is when it became ready, not later arrivals.

use super::{queue, taken};
use crate::Arrived;

#[test]
fn idle_ready_scheduled_delivered() {
    let q = queue(8);
    assert!(!q.has_ready());
    q.hand_off();
    assert_eq!(q.arrive(Some(1), 100), Arrived::Queued);
    assert!(q.has_ready());
    assert_eq!(q.ready_since(), 100);
    q.hand_off();
    assert_eq!(q.arrive(Some(2), 250), Arrived::Queued);
    assert_eq!(
        q.ready_since(),
        100,
        "the batch's age starts with its first event"
    );
    assert!(q.take_ready(), "the first taker schedules the delivery");
    assert!(!q.take_ready(), "and only the first");
    assert!(!q.has_ready());
    q.begin_delivery();
    assert_eq!(taken(&q), [1, 2]);
}

#[test]
fn a_slice_without_event_makes_nothing_ready() {
    let q = queue(8);
    q.hand_off();
    assert_eq!(q.arrive(None, 5), Arrived::Nothing);
    assert!(!q.has_ready());
    assert!(q.can_queue_here(), "the slice is back: nothing in flight");
}

#[test]
fn a_new_batch_after_a_delivery_has_its_own_age() {
    let q = queue(8);
    q.hand_off();
    q.arrive(Some(1), 10);
    assert!(q.take_ready());
    q.begin_delivery();
    assert_eq!(taken(&q), [1]);
    q.hand_off();
    q.arrive(Some(2), 90);
    assert_eq!(q.ready_since(), 90);
}
