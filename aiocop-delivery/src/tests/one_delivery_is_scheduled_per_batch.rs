//! Events made in place on the loop thread ask for one delivery until it runs: a busy loop
//! schedules one delivery handle per batch, not one per event.

use super::{queue, taken};
use crate::Queued;

#[test]
fn the_first_event_schedules_the_rest_ride_along() {
    let q = queue(8);
    assert_eq!(q.queue_here(1), Queued::Schedule);
    assert_eq!(q.queue_here(2), Queued::Scheduled);
    assert_eq!(q.queue_here(3), Queued::Scheduled);
    q.begin_delivery();
    assert_eq!(taken(&q), [1, 2, 3]);
    assert_eq!(
        q.queue_here(4),
        Queued::Schedule,
        "a new batch after the delivery ran"
    );
}

#[test]
fn events_made_in_place_do_not_mark_the_batch_ready() {
    // Their delivery is scheduled by the loop thread at once; `ready` is for events coming
    // back from the background thread, which the loop thread picks up later.
    let q = queue(8);
    assert_eq!(q.queue_here(1), Queued::Schedule);
    assert!(!q.has_ready());
}
