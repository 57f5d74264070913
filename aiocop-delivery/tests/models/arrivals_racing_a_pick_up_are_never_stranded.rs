//! The background thread brings two events back while the loop thread, at the end of two
//! handles, takes the ready mark and delivers: every event is delivered once, in order, and an
//! event still waiting at the end has the ready mark on (the loop's next handle, or the
//! background thread's idle wake-up, comes for it).

use loom::sync::Arc;
use loom::thread;

use super::{check, deliver, leftover};
use aiocop_delivery::DeliveryQueue;

#[test]
fn arrivals_racing_a_pick_up_are_never_stranded() {
    check(|| {
        let q = Arc::new(DeliveryQueue::new(4));
        q.hand_off();
        q.hand_off();
        let background = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                q.arrive(Some(1), 1);
                q.arrive(Some(2), 2);
            })
        };
        let mut delivered = Vec::new();
        for _handle in 0..2 {
            if q.take_ready() {
                deliver(&q, &mut delivered);
            }
        }
        background
            .join()
            .expect("the background thread does not panic");
        let ready = q.has_ready();
        let rest = leftover(&q);
        assert!(
            rest.is_empty() || ready,
            "events {rest:?} wait with nothing to come for them"
        );
        delivered.extend(rest);
        assert_eq!(delivered, [1, 2]);
    });
}
