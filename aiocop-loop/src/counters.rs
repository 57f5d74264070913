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
/// Slices lost with a background thread that died (a panic) or stalled: those it held, and
/// those sent to it while it was being given up.
pub(crate) static LOST: AtomicU64 = AtomicU64::new(0);
/// Background (dispatch) threads given up: found dead (a panic) or stalled.
pub(crate) static THREAD_FAILURES: AtomicU64 = AtomicU64::new(0);
/// Of those, the ones not yet reported (logged) on a loop thread: the background thread logs
/// nothing itself (it runs no Python code but the scheduling of deliveries).
static UNREPORTED_PANICS: AtomicU64 = AtomicU64::new(0);
static UNREPORTED_STALLS: AtomicU64 = AtomicU64::new(0);

/// How a background thread failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// It panicked (caught; the thread ended).
    Panicked,
    /// It made no progress for the stall limit with work waiting.
    Stalled,
}

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

/// Slices lost with a background thread that died or stalled.
pub fn lost_events() -> u64 {
    LOST.load(Ordering::Relaxed)
}

/// Background threads given up because they died (a panic) or stalled.
pub fn dispatch_thread_failures() -> u64 {
    THREAD_FAILURES.load(Ordering::Relaxed)
}

/// A background thread was given up (`lost`: the slices lost with it); reported on a loop
/// thread by the next [`report_faults`].
pub(crate) fn count_failure(failure: Failure, lost: u64) {
    LOST.fetch_add(lost, Ordering::Relaxed);
    THREAD_FAILURES.fetch_add(1, Ordering::Relaxed);
    match failure {
        Failure::Panicked => UNREPORTED_PANICS.fetch_add(1, Ordering::Release),
        Failure::Stalled => UNREPORTED_STALLS.fetch_add(1, Ordering::Release),
    };
}

/// Logs (logger `aiocop`, WARNING) each background thread given up since the last report: one
/// warning per thread. On a loop thread, with the GIL; one atomic load when there is nothing.
pub(crate) fn report_faults(py: Python<'_>) {
    for (counter, what) in [
        (&UNREPORTED_PANICS, "panicked"),
        (
            &UNREPORTED_STALLS,
            "stalled (no progress with work waiting)",
        ),
    ] {
        if counter.load(Ordering::Relaxed) == 0 {
            continue;
        }
        for _ in 0..counter.swap(0, Ordering::Acquire) {
            crate::pylog::warning(
                py,
                &format!(
                    "aiocop's background dispatch thread {what}: the slow-task events it held \
                     are lost ({} in all, see aiocop.stats()['lost_events']); new ones go to a \
                     new thread",
                    lost_events()
                ),
            );
        }
    }
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
