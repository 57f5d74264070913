//! A loop's events are delivered in the order its handles ran: while a slice is with the
//! background thread, later events may not be queued in place ahead of it.

use super::{queue, taken};
use crate::Queued;

#[test]
fn in_place_is_refused_while_a_slice_is_in_flight() {
    let q = queue(8);
    assert!(q.can_queue_here());
    q.hand_off();
    q.hand_off();
    assert!(!q.can_queue_here());
    q.arrive(Some(1), 0);
    assert!(!q.can_queue_here(), "one slice is still out");
    q.arrive(Some(2), 0);
    assert!(q.can_queue_here());
    assert_eq!(q.queue_here(3), Queued::Schedule);
    q.begin_delivery();
    assert_eq!(taken(&q), [1, 2, 3]);
}

#[test]
fn a_hand_off_that_failed_is_not_waited_for() {
    let q = queue(8);
    q.hand_off();
    q.hand_off_failed();
    assert!(q.can_queue_here());
}
