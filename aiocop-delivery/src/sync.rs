//! The atomics and the bounded queue of the state machines: the real ones, or, when the crate
//! is built for the loom models (`--cfg loom`), loom's, which let those models run every
//! interleaving of the threads and every value a weak memory model allows a load to see.
//! Nothing else differs between the two builds; a normal build pays nothing for the choice.
//!
//! The bounded queue is `crossbeam_queue::ArrayQueue` in both builds, taken as linearizable
//! (crossbeam checks it with its own loom build): in a model, each push and pop is first made
//! a step of its own, one where loom may switch threads (a relaxed read-modify-write of a loom
//! atomic that only these steps touch: every two of them conflict, as two operations on one
//! queue do, so loom tries both orders; relaxed, it adds no ordering), and the operation then
//! runs whole, in the order the model ran the threads. Loom thus sees every order of our marks' operations and the queue's,
//! and no more synchronization than the marks themselves give.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::ArrayQueue as BoundedQueue;

/// One turn of a wait for another thread's few-nanosecond step (loom: let another thread run).
#[cfg(not(loom))]
pub(crate) fn spin_wait() {
    std::hint::spin_loop();
}

/// One turn of a wait for another thread's few-nanosecond step (loom: let another thread run).
#[cfg(loom)]
pub(crate) fn spin_wait() {
    loom::thread::yield_now();
}

#[cfg(loom)]
pub(crate) use model::BoundedQueue;

#[cfg(loom)]
mod model {
    use crossbeam_queue::ArrayQueue;
    use loom::sync::atomic::{AtomicUsize, Ordering};

    /// `ArrayQueue`, each operation a step of its own for loom.
    #[derive(Debug)]
    pub(crate) struct BoundedQueue<T> {
        items: ArrayQueue<T>,
        step: AtomicUsize,
    }

    impl<T> BoundedQueue<T> {
        pub(crate) fn new(capacity: usize) -> Self {
            Self {
                items: ArrayQueue::new(capacity),
                step: AtomicUsize::new(0),
            }
        }

        /// A point where loom may switch threads, adding no ordering.
        fn step(&self) {
            self.step.fetch_add(1, Ordering::Relaxed);
        }

        pub(crate) fn push(&self, item: T) -> Result<(), T> {
            self.step();
            self.items.push(item)
        }

        pub(crate) fn pop(&self) -> Option<T> {
            self.step();
            self.items.pop()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.step();
            self.items.is_empty()
        }
    }
}
