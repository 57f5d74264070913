//! `flush()` on the loop thread delivers whatever is waiting while the background thread is
//! still bringing events back, and the end of the next handle picks up the rest: each event is
//! delivered once, in order, and none is left waiting unmarked.

use super::{check, deliver, finish, join, with_background};

#[test]
fn a_flush_racing_arrivals_delivers_each_once() {
    check(|| {
        let (q, background) = with_background(3, |q| {
            for n in 1..=3 {
                q.arrive(Some(n), u64::from(n));
            }
        });
        let mut delivered = Vec::new();
        // The flush: deliver now, whatever the marks say.
        deliver(&q, &mut delivered);
        // The end of the next handle.
        if q.take_ready() {
            deliver(&q, &mut delivered);
        }
        join(background);
        finish(&q, delivered, &[1, 2, 3]);
    });
}
