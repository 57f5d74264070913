//! A loop that is gone (closed, or its thread ended) has its events taken out all at once, and
//! the batch is no longer ready (nobody is woken for it).

use super::queue;

#[test]
fn drain_takes_everything_and_clears_ready() {
    let q = queue(8);
    for n in 1..=3 {
        q.hand_off();
        q.arrive(Some(n), 0);
    }
    assert!(q.has_ready());
    let drained: Vec<u32> = q.drain().collect();
    assert_eq!(drained, [1, 2, 3]);
    assert!(!q.has_ready());
    assert_eq!(q.pop(), None);
}
