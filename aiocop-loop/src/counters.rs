//! The delivery counters `aiocop.stats()` reports, and the rate-limited warning about
//! dropped events.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;

/// Events dropped because a bounded queue was full.
pub(crate) static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Events that could be neither delivered nor logged (their loop gone with them).
pub(crate) static UNDELIVERED: AtomicU64 = AtomicU64::new(0);
/// Deliveries scheduled by the loop thread itself, at the end of one of its handles.
pub(crate) static PICKED_UP: AtomicU64 = AtomicU64::new(0);
/// Deliveries the background thread had to schedule (`call_soon_threadsafe`): the loop ran no
/// monitored handle for the pick-up grace.
pub(crate) static WOKEN: AtomicU64 = AtomicU64::new(0);

/// Counts one more of `counter`.
#[inline]
pub(crate) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Events dropped because a bounded queue was full.
pub fn dropped_events() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Events that could be neither delivered nor logged.
pub fn undelivered_events() -> u64 {
    UNDELIVERED.load(Ordering::Relaxed)
}

/// `(picked up, woken)`: deliveries scheduled by the loop thread itself, and by the background
/// thread because the loop was idle.
pub fn delivery_counts() -> (u64, u64) {
    (
        PICKED_UP.load(Ordering::Relaxed),
        WOKEN.load(Ordering::Relaxed),
    )
}

/// Logs (logger `aiocop`, at most once a second) how many events were dropped since the last
/// report, if any.
pub(crate) fn report_drops(py: Python<'_>) {
    static REPORTED: AtomicU64 = AtomicU64::new(0);
    static LAST_NS: AtomicU64 = AtomicU64::new(0);
    let dropped = DROPPED.load(Ordering::Relaxed);
    let reported = REPORTED.load(Ordering::Relaxed);
    if dropped <= reported {
        return;
    }
    let now = aiocop_clock::now_ns();
    let last = LAST_NS.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < 1_000_000_000 {
        return;
    }
    LAST_NS.store(now, Ordering::Relaxed);
    REPORTED.store(dropped, Ordering::Relaxed);
    crate::pylog::warning(
        py,
        &format!(
            "aiocop dropped {} slow-task event(s): a bounded queue was full; {dropped} in all, \
             see aiocop.stats()",
            dropped - reported
        ),
    );
}
