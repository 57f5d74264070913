//! While a slice of the loop is with the background thread, the loop thread may not queue an
//! event made in place ahead of it: when it sees the slice back (`can_queue_here`), the
//! slice's event is already queued, so the two are delivered in the order their handles ran.

use super::{check, join, leftover, with_background};

#[test]
fn in_place_events_follow_handed_off_ones() {
    check(|| {
        let (q, background) = with_background(1, |q| q.arrive(Some(1), 1));
        // The next handle's event: made here when nothing is in flight, else handed off too
        // (and then brought back after the first: the inbox is first in, first out).
        let here = q.can_queue_here();
        if here {
            q.queue_here(2);
        }
        join(background);
        if !here {
            q.hand_off();
            q.arrive(Some(2), 2);
        }
        q.begin_delivery();
        assert_eq!(leftover(&q), [1, 2]);
    });
}
