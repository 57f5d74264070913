//! When the delivery cannot be scheduled, nothing is lost: the marks go back so that the
//! next attempt (the loop thread's, or the background thread's) schedules it again.

use super::queue;
use crate::Queued;

#[test]
fn a_failed_pick_up_leaves_the_batch_ready() {
    let q = queue(8);
    q.hand_off();
    q.arrive(Some(1), 0);
    assert!(q.take_ready());
    q.ready_again();
    assert!(q.has_ready());
    assert!(q.take_ready(), "the next taker schedules it");
}

#[test]
fn a_failed_in_place_schedule_lets_the_next_event_schedule() {
    let q = queue(8);
    assert_eq!(q.queue_here(1), Queued::Schedule);
    q.schedule_failed();
    assert_eq!(q.queue_here(2), Queued::Schedule);
}
