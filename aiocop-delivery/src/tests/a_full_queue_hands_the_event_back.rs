//! Memory stays bounded: a full queue refuses the event and hands it back (the caller drops
//! and counts it); the events already queued are untouched.

use super::{queue, taken};
use crate::{Arrived, Queued};

#[test]
fn in_place_and_from_the_background_thread() {
    let q = queue(2);
    assert_eq!(q.queue_here(1), Queued::Schedule);
    assert_eq!(q.queue_here(2), Queued::Scheduled);
    assert_eq!(q.queue_here(3), Queued::Full(3));
    q.hand_off();
    assert_eq!(q.arrive(Some(4), 0), Arrived::Full(4));
    assert!(
        q.can_queue_here(),
        "the refused slice is not in flight any more"
    );
    q.begin_delivery();
    assert_eq!(taken(&q), [1, 2]);
}
