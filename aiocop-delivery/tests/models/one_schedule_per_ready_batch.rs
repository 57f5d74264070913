//! An idle loop's batch can be scheduled by the loop thread itself (the end of a handle) or by
//! the background thread (the pick-up grace passed): exactly one of them schedules it, and the
//! delivery takes the event once.

use loom::sync::Arc;
use loom::thread;

use super::{check, deliver};
use aiocop_delivery::DeliveryQueue;

#[test]
fn one_schedule_per_ready_batch() {
    check(|| {
        let q = Arc::new(DeliveryQueue::new(4));
        q.hand_off();
        let background = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                q.arrive(Some(1), 1);
                // The grace passed: the background thread schedules the delivery itself.
                q.take_ready()
            })
        };
        let by_loop = q.take_ready();
        let by_background = background
            .join()
            .expect("the background thread does not panic");
        assert!(
            by_loop != by_background,
            "scheduled by the loop: {by_loop}, by the background thread: {by_background}"
        );
        let mut delivered = Vec::new();
        deliver(&q, &mut delivered);
        assert_eq!(delivered, [1]);
        assert!(!q.has_ready());
    });
}
