//! The background thread queues events while the loop thread delivers (a flush, or the
//! delivery handle): every event is delivered exactly once, in order, and the batch never
//! stays ready with nothing scheduled to take it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use super::queue;
use crate::Arrived;

#[test]
fn every_event_once_in_order() {
    const EVENTS: u32 = 20_000;
    let q = Arc::new(queue(64));
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let q = Arc::clone(&q);
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut next = 0;
            while next < EVENTS {
                q.hand_off();
                match q.arrive(Some(next), u64::from(next)) {
                    Arrived::Queued => next += 1,
                    // Full: the consumer is behind; try the same event again.
                    Arrived::Full(_) => thread::yield_now(),
                    Arrived::Nothing => unreachable!("every slice made an event"),
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut delivered = Vec::with_capacity(EVENTS as usize);
    loop {
        let finished = done.load(Ordering::Acquire);
        // The loop thread: at the end of a handle it takes the ready mark and delivers.
        if q.take_ready() || finished {
            q.begin_delivery();
            delivered.extend(std::iter::from_fn(|| q.pop()));
        }
        if finished && q.can_queue_here() && !q.has_ready() {
            delivered.extend(std::iter::from_fn(|| q.pop()));
            break;
        }
        thread::yield_now();
    }
    producer.join().expect("the producer does not panic");
    assert_eq!(
        delivered.len(),
        EVENTS as usize,
        "nothing lost, nothing repeated"
    );
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "in order");
}
