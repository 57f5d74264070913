//! The cross-thread state machines of aiocop's event delivery, free of Python: one loop's
//! queue of events waiting for delivery and its marks ([`DeliveryQueue`]; `aiocop-loop` holds
//! one per monitored loop and does the Python side of each transition: scheduling the delivery
//! handle, calling the callbacks), and the background thread's abandonable inbox ([`Inbox`]).
//!
//! A crate of its own, without pyo3, so that the loom models of these protocols
//! (`tests/models/`, run by `cargo xtask test` with `RUSTFLAGS="--cfg loom"`) build this crate
//! and loom only: no CPython to link, no pyo3 to rebuild under another cfg. The atomics come
//! from [`sync`], loom's in a model build and the standard library's otherwise.
//!
//! The behaviours, one per file: `src/tests/` (plain threads, no timing) and `tests/models/`
//! (loom: every interleaving, bounded).

mod inbox;
mod queue;
mod sync;

pub use inbox::{Inbox, Refused};
pub use queue::{Arrived, DeliveryQueue, Queued};

#[cfg(all(test, not(loom)))]
mod tests;
