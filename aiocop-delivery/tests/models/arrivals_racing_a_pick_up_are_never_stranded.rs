//! The background thread brings two events back while the loop thread, at the end of two
//! handles, takes the ready mark and delivers: every event is delivered once, in order, and an
//! event still waiting at the end has the ready mark on (the loop's next handle, or the
//! background thread's idle wake-up, comes for it).

use super::{check, deliver, finish, join, with_background};

#[test]
fn arrivals_racing_a_pick_up_are_never_stranded() {
    check(|| {
        let (q, background) = with_background(2, |q| {
            q.arrive(Some(1), 1);
            q.arrive(Some(2), 2);
        });
        let mut delivered = Vec::new();
        for _handle in 0..2 {
            if q.take_ready() {
                deliver(&q, &mut delivered);
            }
        }
        join(background);
        finish(&q, delivered, &[1, 2]);
    });
}
