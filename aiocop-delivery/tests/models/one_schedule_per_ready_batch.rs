//! An idle loop's batch can be scheduled by the loop thread itself (the end of a handle) or by
//! the background thread (the pick-up grace passed): exactly one of them schedules it, and the
//! delivery takes the event once.

use super::{check, deliver, join, with_background};

#[test]
fn one_schedule_per_ready_batch() {
    check(|| {
        let (q, background) = with_background(1, |q| {
            q.arrive(Some(1), 1);
            // The grace passed: the background thread schedules the delivery itself.
            q.take_ready()
        });
        let by_loop = q.take_ready();
        let by_background = join(background);
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
