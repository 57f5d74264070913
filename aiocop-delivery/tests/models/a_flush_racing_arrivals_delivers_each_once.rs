//! `flush()` on the loop thread delivers whatever is waiting while the background thread is
//! still bringing events back, and the end of the next handle picks up the rest: each event is
//! delivered once, in order, and none is left waiting unmarked.

use loom::sync::Arc;
use loom::thread;

use super::{check, deliver, leftover};
use aiocop_delivery::DeliveryQueue;

#[test]
fn a_flush_racing_arrivals_delivers_each_once() {
    check(|| {
        let q = Arc::new(DeliveryQueue::new(4));
        for _ in 0..3 {
            q.hand_off();
        }
        let background = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                for n in 1..=3 {
                    q.arrive(Some(n), u64::from(n));
                }
            })
        };
        let mut delivered = Vec::new();
        // The flush: deliver now, whatever the marks say.
        deliver(&q, &mut delivered);
        // The end of the next handle.
        if q.take_ready() {
            deliver(&q, &mut delivered);
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
        assert_eq!(delivered, [1, 2, 3]);
    });
}
