//! The loop thread takes the ready mark but cannot schedule the delivery (`ready_again`)
//! while the background thread looks at the same batch: the batch is either scheduled by the
//! background thread or still marked ready for the next look, never dropped from both.

use super::{check, deliver, join, with_background};

#[test]
fn a_failed_pick_up_stays_ready() {
    check(|| {
        let (q, background) = with_background(1, |q| {
            q.arrive(Some(1), 1);
            q.take_ready()
        });
        if q.take_ready() {
            // `call_soon` failed.
            q.ready_again();
        }
        let by_background = join(background);
        assert!(
            by_background || q.has_ready(),
            "the batch is neither scheduled nor ready"
        );
        let mut delivered = Vec::new();
        deliver(&q, &mut delivered);
        assert_eq!(delivered, [1]);
    });
}
