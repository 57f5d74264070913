//! The monotonic clock of aiocop's hot path: read twice per monitored handle, once per
//! blocking call. Pure Rust, no pyo3.
//!
//! On x86_64 Linux with an invariant TSC that the kernel itself uses as its clocksource, a
//! reading is one `rdtsc` and a multiply (about 9 ns on a 2-core VM, against about 24 ns for
//! `clock_gettime(CLOCK_MONOTONIC)` through the vDSO); everywhere else, and with
//! `AIOCOP_CLOCK=monotonic` in the environment, it is `CLOCK_MONOTONIC`. Either way
//! [`now_ns`] is nanoseconds on one clock shared by every thread of the process.
//!
//! The TSC is calibrated against `CLOCK_MONOTONIC` over 200 µs on first use, then refined by
//! [`recalibrate`] (called from background threads and from the end of slow handles) over an
//! ever longer span, geometrically, until the span passes [`FINAL_SPAN_NS`]. Each refinement
//! keeps the clock continuous (the new rate starts where the old one ended), so a duration
//! measured across one is off by at most the old rate's error over that duration. Each check
//! also compares the calibrated clock with `CLOCK_MONOTONIC`: should the TSC leave its rate (a
//! virtual machine moved to another host, say), readings go to `CLOCK_MONOTONIC` for good.

mod calibration;
mod source;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

pub use calibration::{rate_changed, Calibration};
pub use source::{Source, CLOCK_ENV};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Span of the first calibration.
pub const FIRST_SPAN_NS: u64 = 200_000;
/// Once a calibration spans this long, the rate is final (a TSC's rate does not change).
pub const FINAL_SPAN_NS: u64 = 100_000_000_000;
/// How often, at most, the wall-clock offset behind [`unix_now`] is taken again.
const WALL_REFRESH_NS: u64 = 1_000_000_000;

/// The TSC calibration in force: null until the first reading, then a leaked `Calibration`
/// (at most ~20 per process: one per refinement, the span growing fourfold each time).
static CALIBRATION: AtomicPtr<Calibration> = AtomicPtr::new(std::ptr::null_mut());
/// The clock source, chosen once: [`UNCHOSEN`] until then. An atomic, not a `OnceLock`: a
/// `fork()` while another thread chose would leave a `OnceLock` initialising for good in the
/// child (every reader waiting); here threads that race each choose (the same) and store.
static SOURCE: AtomicU8 = AtomicU8::new(UNCHOSEN);
const UNCHOSEN: u8 = 0;
const TSC: u8 = 1;
const MONOTONIC: u8 = 2;
/// The TSC stopped ticking at its calibrated rate: `CLOCK_MONOTONIC` from then on.
static FELL_BACK: AtomicBool = AtomicBool::new(false);
/// [`now_ns`] time of the next due refinement or wall-clock refresh.
static NEXT_DUE_NS: AtomicU64 = AtomicU64::new(0);
/// Unix time minus [`now_ns`], in nanoseconds.
static WALL_OFFSET_NS: AtomicI64 = AtomicI64::new(0);
/// Serialises refinements (taken with `try_lock` only); holds what they measure from.
static ORIGIN: Mutex<Option<Tracking>> = Mutex::new(None);

/// What refinements measure from.
#[derive(Debug, Clone, Copy)]
struct Tracking {
    /// The first (tsc, monotonic ns) pair: the rate's origin.
    origin: (u64, u64),
    /// The last check of the calibrated clock against `CLOCK_MONOTONIC`: (monotonic ns,
    /// calibrated minus monotonic).
    checked: Option<(u64, i64)>,
}

/// The source [`now_ns`] reads: `Monotonic` from the moment the TSC is found to have left its
/// calibrated rate.
pub fn source() -> Source {
    if FELL_BACK.load(Ordering::Relaxed) {
        return Source::Monotonic;
    }
    match SOURCE.load(Ordering::Relaxed) {
        TSC => Source::Tsc,
        MONOTONIC => Source::Monotonic,
        _ => choose_source(),
    }
}

#[cold]
#[inline(never)]
fn choose_source() -> Source {
    let chosen = Source::detect();
    let code = match chosen {
        Source::Tsc => TSC,
        Source::Monotonic => MONOTONIC,
    };
    SOURCE.store(code, Ordering::Relaxed);
    chosen
}

/// Monotonic nanoseconds; never 0. One clock for every thread of the process.
#[inline]
pub fn now_ns() -> u64 {
    let calibration = CALIBRATION.load(Ordering::Acquire);
    if calibration.is_null() {
        return first_now_ns();
    }
    // SAFETY: non-null pointers in CALIBRATION come from `Box::leak` and are never freed.
    let calibration = unsafe { &*calibration };
    calibration.ns_at(source::read_tsc())
}

/// The first reading of the process (or any reading on the `CLOCK_MONOTONIC` source): picks
/// the source and, for the TSC, calibrates it.
#[cold]
#[inline(never)]
fn first_now_ns() -> u64 {
    match source() {
        Source::Tsc => {
            calibrate_first();
            if CALIBRATION.load(Ordering::Acquire).is_null() {
                // Another thread is calibrating: the first calibration is based on
                // CLOCK_MONOTONIC, so a reading of it is on the same clock.
                source::monotonic_ns()
            } else {
                now_ns()
            }
        }
        Source::Monotonic => source::monotonic_ns(),
    }
}

/// The first calibration: spins over [`FIRST_SPAN_NS`] of `CLOCK_MONOTONIC`, and gives the TSC
/// up if it cannot in 50 times that. Returns at once when another thread holds the lock (never
/// waits for it: after a `fork()` it may be held by a thread that does not exist in the child).
fn calibrate_first() {
    let Some(mut origin) = lock_origin() else {
        return;
    };
    if !CALIBRATION.load(Ordering::Acquire).is_null() || FELL_BACK.load(Ordering::Relaxed) {
        return; // another thread was first, or the TSC was given up
    }
    let deadline = source::monotonic_ns().saturating_add(FIRST_SPAN_NS * 50);
    let mut first_pair = None;
    let (first, calibration) = loop {
        if source::monotonic_ns() > deadline {
            // Not one uninterrupted pair (or no forward-moving TSC) in 10 ms: not a TSC to
            // time handles with.
            FELL_BACK.store(true, Ordering::Relaxed);
            return;
        }
        let Some((tsc, ns)) = source::tsc_and_monotonic() else {
            continue;
        };
        let Some((tsc0, ns0)) = first_pair else {
            first_pair = Some((tsc, ns));
            continue;
        };
        if ns.saturating_sub(ns0) >= FIRST_SPAN_NS {
            if let Some(calibration) = Calibration::measured(tsc0, ns0, tsc, ns) {
                break ((tsc0, ns0), calibration);
            }
        }
        std::hint::spin_loop();
    };
    *origin = Some(Tracking {
        origin: first,
        checked: None,
    });
    publish(calibration);
}

/// Makes `calibration` the one in force and schedules the next refinement.
fn publish(calibration: Calibration) {
    let span_ns = calibration.span_ns();
    let leaked: &'static mut Calibration = Box::leak(Box::new(calibration));
    CALIBRATION.store(leaked, Ordering::Release);
    let now = now_ns();
    refresh_wall_offset(now);
    let next = if span_ns >= FINAL_SPAN_NS {
        u64::MAX
    } else {
        now.saturating_add(span_ns.saturating_mul(3))
    };
    NEXT_DUE_NS.store(
        next.min(now.saturating_add(WALL_REFRESH_NS)),
        Ordering::Release,
    );
}

/// Refines the TSC's rate and takes the wall-clock offset again when due; otherwise one clock
/// reading and a comparison. Call it now and then from any thread.
#[inline]
pub fn recalibrate() {
    if source() != Source::Tsc || now_ns() < NEXT_DUE_NS.load(Ordering::Acquire) {
        return;
    }
    refine();
}

#[cold]
#[inline(never)]
fn refine() {
    let Some(mut tracking) = lock_origin() else {
        return; // another thread is at it
    };
    let Some(Tracking {
        origin: (tsc0, ns0),
        checked,
    }) = *tracking
    else {
        return;
    };
    let current = CALIBRATION.load(Ordering::Acquire);
    if current.is_null() {
        return;
    }
    // SAFETY: non-null pointers in CALIBRATION come from `Box::leak` and are never freed.
    let current = unsafe { &*current };
    let now = now_ns();
    if now < NEXT_DUE_NS.load(Ordering::Acquire) {
        return; // another thread did it
    }
    let Some((tsc, ns)) = source::tsc_and_monotonic() else {
        // Interrupted every time: look again at the next call.
        return;
    };
    let drift = i64::try_from(i128::from(current.ns_at(tsc)) - i128::from(ns)).unwrap_or(i64::MAX);
    if let Some((checked_ns, checked_drift)) = checked {
        if rate_changed(checked_ns, checked_drift, ns, drift) {
            // Readings go to CLOCK_MONOTONIC from now on (the calibrated clock was based on
            // it, so the step is the drift); `source()` reports the change.
            FELL_BACK.store(true, Ordering::Relaxed);
            CALIBRATION.store(std::ptr::null_mut(), Ordering::Release);
            return;
        }
    }
    if let Some(tracking) = tracking.as_mut() {
        tracking.checked = Some((ns, drift));
    }
    let span = ns.saturating_sub(ns0);
    if current.span_ns() >= FINAL_SPAN_NS || span < current.span_ns().saturating_mul(4) {
        // Not a refinement yet: only the wall-clock offset is due.
        refresh_wall_offset(now);
        let next = now.saturating_add(WALL_REFRESH_NS);
        NEXT_DUE_NS.store(next, Ordering::Release);
        return;
    }
    match current.refined(tsc0, ns0, tsc, ns) {
        Some(refined) => publish(refined),
        // The TSC did not move forward: keep the rate, try again later.
        None => NEXT_DUE_NS.store(now.saturating_add(WALL_REFRESH_NS), Ordering::Release),
    }
}

/// The origin, if no other thread holds it.
fn lock_origin() -> Option<std::sync::MutexGuard<'static, Option<Tracking>>> {
    match ORIGIN.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

fn refresh_wall_offset(now: u64) {
    let wall = source::unix_ns();
    let offset = i64::try_from(i128::from(wall) - i128::from(now)).unwrap_or(0);
    WALL_OFFSET_NS.store(offset, Ordering::Relaxed);
}

/// Unix time in seconds: the wall clock as of the last [`recalibrate`] that was due, advanced
/// by [`now_ns`]. For timestamps that are stored, not compared.
#[inline]
pub fn unix_now() -> f64 {
    match source() {
        Source::Tsc => {
            let now = now_ns();
            match WALL_OFFSET_NS.load(Ordering::Relaxed) {
                // Not taken yet (another thread is making the first calibration).
                0 => source::unix_ns() as f64 / 1e9,
                // i64 nanoseconds reach the year 2262; an i128 would convert in software.
                offset => {
                    i64::try_from(now)
                        .unwrap_or(i64::MAX)
                        .saturating_add(offset) as f64
                        / 1e9
                }
            }
        }
        Source::Monotonic => source::unix_ns() as f64 / 1e9,
    }
}
