//! The handshake between the watchdog, which asks for a capture, and the signal handler, which
//! writes it: one atomic state and a static, preallocated buffer of instruction pointers.
//!
//! States: `IDLE` → (watchdog) `REQUESTED` → (handler) `WRITING` → (handler) `DONE` → (watchdog,
//! once it has copied the buffer) `IDLE`. A watchdog that stops waiting moves `REQUESTED` back to
//! `IDLE`, so a handler that runs late finds no request and writes nothing; a handler that is
//! already `WRITING` is waited for (it only walks its own stack, it cannot block).

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Instruction pointers kept per capture at most (the interrupted one and its callers).
pub(crate) const CAPACITY: usize = 64;

const IDLE: u8 = 0;
const REQUESTED: u8 = 1;
const WRITING: u8 = 2;
const DONE: u8 = 3;

/// One capture slot: the state and the buffer the handler fills.
#[derive(Debug)]
pub(crate) struct Handshake {
    state: AtomicU8,
    len: AtomicUsize,
    ips: [AtomicUsize; CAPACITY],
}

/// What the watchdog saw while it waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The handler wrote its capture.
    Done,
    /// No handler has started: the request is withdrawn.
    Withdrawn,
    /// A handler is writing right now.
    Writing,
}

impl Handshake {
    pub(crate) const fn new() -> Self {
        Handshake {
            state: AtomicU8::new(IDLE),
            len: AtomicUsize::new(0),
            ips: [const { AtomicUsize::new(0) }; CAPACITY],
        }
    }

    /// Watchdog: asks for a capture. `false` when one is still being written (a late handler
    /// of an earlier request).
    pub(crate) fn request(&self) -> bool {
        let state = self.state.load(Ordering::Acquire);
        if state == WRITING {
            return false;
        }
        self.len.store(0, Ordering::Relaxed);
        self.state.store(REQUESTED, Ordering::Release);
        true
    }

    /// Handler: takes the request, if there is one. Only then may it [`write`](Self::write).
    pub(crate) fn begin(&self) -> bool {
        self.state
            .compare_exchange(REQUESTED, WRITING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Handler, after [`begin`](Self::begin): stores the `index`-th instruction pointer
    /// (`false`: the buffer is full).
    pub(crate) fn write(&self, index: usize, ip: usize) -> bool {
        match self.ips.get(index) {
            Some(slot) => {
                slot.store(ip, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Handler: publishes the first `len` pointers written.
    pub(crate) fn finish(&self, len: usize) {
        self.len.store(len.min(CAPACITY), Ordering::Relaxed);
        self.state.store(DONE, Ordering::Release);
    }

    /// Watchdog: where the request stands; `Withdrawn` when it was still pending (then it is
    /// withdrawn: a handler running later writes nothing).
    pub(crate) fn poll(&self, give_up: bool) -> Option<Waited> {
        match self.state.load(Ordering::Acquire) {
            DONE => Some(Waited::Done),
            WRITING if give_up => Some(Waited::Writing),
            REQUESTED if give_up => match self.state.compare_exchange(
                REQUESTED,
                IDLE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => Some(Waited::Withdrawn),
                Err(DONE) => Some(Waited::Done),
                Err(_) => Some(Waited::Writing),
            },
            _ => None,
        }
    }

    /// In a child after `fork()`: no capture is in flight (the threads that asked and answered
    /// are gone).
    pub(crate) fn reset(&self) {
        self.state.store(IDLE, Ordering::Release);
    }

    /// Watchdog, after `Done`: copies the capture out and frees the slot.
    pub(crate) fn take(&self, out: &mut Vec<usize>) {
        out.clear();
        let len = self.len.load(Ordering::Relaxed);
        out.extend(self.ips[..len].iter().map(|ip| ip.load(Ordering::Relaxed)));
        self.state.store(IDLE, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_goes_requested_writing_done_idle() {
        let h = Handshake::new();
        assert!(!h.begin(), "no request, no capture");
        assert!(h.request());
        assert_eq!(h.poll(false), None);
        assert!(h.begin());
        assert!(!h.begin(), "one handler per request");
        assert!(!h.request(), "a capture being written is not overwritten");
        assert_eq!(h.poll(true), Some(Waited::Writing));
        assert!(h.write(0, 0x10));
        assert!(h.write(1, 0x20));
        h.finish(2);
        assert_eq!(h.poll(false), Some(Waited::Done));
        let mut out = Vec::new();
        h.take(&mut out);
        assert_eq!(out, [0x10, 0x20]);
        assert!(!h.begin(), "taken: idle again");
    }

    #[test]
    fn a_late_handler_after_the_watchdog_gave_up_writes_nothing() {
        let h = Handshake::new();
        assert!(h.request());
        assert_eq!(h.poll(true), Some(Waited::Withdrawn));
        assert!(!h.begin());
        assert!(h.request(), "a new request after a withdrawn one");
        assert!(h.begin());
        h.finish(0);
        let mut out = vec![1];
        h.take(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_forked_child_starts_with_no_capture_in_flight() {
        let h = Handshake::new();
        assert!(h.request() && h.begin());
        assert!(!h.request(), "being written");
        h.reset();
        assert!(h.request(), "nothing in flight after a fork");
    }

    #[test]
    fn the_buffer_is_bounded() {
        let h = Handshake::new();
        assert!(h.request() && h.begin());
        assert!(h.write(CAPACITY - 1, 1));
        assert!(!h.write(CAPACITY, 1));
        h.finish(CAPACITY + 10);
        let mut out = Vec::new();
        h.take(&mut out);
        assert_eq!(out.len(), CAPACITY);
    }
}
