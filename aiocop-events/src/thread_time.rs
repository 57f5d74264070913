//! Where a slice's time went: on CPU or waiting, and in which system call, and how much of it
//! in the garbage collector ([`ThreadTime`]), and the estimate of the loop thread's CPU time
//! from what the watchdog saw ([`estimate_cpu_ns`]).

use std::borrow::Cow;

/// What was seen of the loop thread while one handle ran. Every part is `None` when it was not
/// measured (off Linux, CPU sampling off, the handle over before the watchdog saw it, the
/// garbage-collector callback not installed).
///
/// ```
/// use aiocop_events::ThreadTime;
///
/// let seen = ThreadTime { cpu_ns: Some(4_000_000), blocked_in: Some("futex".into()), gc_ns: Some(0), stuck_reports: 0 };
/// assert_eq!(seen.wait_ns(150_000_000), Some(146_000_000));
/// assert_eq!(ThreadTime::default().wait_ns(150_000_000), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadTime {
    /// The thread's CPU time during the handle, in nanoseconds (at most the elapsed time).
    pub cpu_ns: Option<u64>,
    /// The system call the thread was seen waiting in most often (`futex`, `read`, ...).
    pub blocked_in: Option<Cow<'static, str>>,
    /// Time spent in the garbage collector during the handle, in nanoseconds.
    pub gc_ns: Option<u64>,
    /// Times the handle was reported as stuck while it ran (`detect_stuck_loops`).
    pub stuck_reports: u32,
}

impl ThreadTime {
    /// The time the thread was not on a CPU: `elapsed_ns - cpu_ns`, never negative; `None`
    /// without a CPU time.
    pub fn wait_ns(&self, elapsed_ns: u64) -> Option<u64> {
        self.cpu_ns.map(|cpu| elapsed_ns.saturating_sub(cpu))
    }
}

/// The loop thread's CPU time over a whole handle, from a window of it.
///
/// The thread's CPU clock is read only off the per-handle fast path: by the watchdog when it
/// first sees the handle running, `head_ns` after the handle began, and by the loop thread at
/// the end of a slow handle; the CPU time between the two readings is `window_cpu_ns`, over
/// `window_ns` of wall time. The head before the first reading is given the window's on-CPU
/// ratio. The error is therefore at most `head_ns` (the head's true CPU time and its estimate
/// both lie in `[0, head_ns]`), and none when the thread's ratio is the same over the whole
/// handle (a busy loop, a sleep).
///
/// `None` without a window (`window_ns == 0`). The result never exceeds
/// `head_ns + window_ns`.
///
/// ```
/// use aiocop_events::estimate_cpu_ns;
///
/// // A busy loop: seen 10 ms in, 140 ms on CPU over the 140 ms after.
/// assert_eq!(estimate_cpu_ns(10_000_000, 140_000_000, 140_000_000), Some(150_000_000));
/// // A sleep: 0.1 ms of CPU over the 140 ms after.
/// assert_eq!(estimate_cpu_ns(10_000_000, 140_000_000, 100_000), Some(107_142));
/// // CPU read a little after the wall clock: capped at the elapsed time.
/// assert_eq!(estimate_cpu_ns(0, 1_000, 1_200), Some(1_000));
/// assert_eq!(estimate_cpu_ns(5, 0, 0), None);
/// ```
pub fn estimate_cpu_ns(head_ns: u64, window_ns: u64, window_cpu_ns: u64) -> Option<u64> {
    if window_ns == 0 {
        return None;
    }
    let window_cpu = window_cpu_ns.min(window_ns);
    let head_cpu = (u128::from(head_ns) * u128::from(window_cpu) / u128::from(window_ns)) as u64;
    Some(window_cpu.saturating_add(head_cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_table() {
        // (head, window, cpu in the window) -> estimate
        let cases: &[(u64, u64, u64, Option<u64>)] = &[
            (0, 100, 100, Some(100)),
            (0, 100, 0, Some(0)),
            (50, 100, 50, Some(75)),
            (100, 100, 100, Some(200)),
            (100, 100, 0, Some(0)),
            (0, 0, 0, None),
            (u64::MAX / 2, u64::MAX / 2, u64::MAX, Some(u64::MAX - 1)),
        ];
        for &(head, window, cpu, expected) in cases {
            assert_eq!(
                estimate_cpu_ns(head, window, cpu),
                expected,
                "{head}/{window}/{cpu}"
            );
        }
    }

    #[test]
    fn error_is_at_most_the_head() {
        // The head ran at ratio a, the window at ratio b: the estimate is off by at most head.
        for head in [0u64, 3_000_000, 15_000_000] {
            for (a, b) in [(0.0, 1.0), (1.0, 0.0), (0.5, 0.5), (1.0, 1.0)] {
                let window = 135_000_000u64;
                let truth = (head as f64 * a + window as f64 * b) as u64;
                let got =
                    estimate_cpu_ns(head, window, (window as f64 * b) as u64).expect("a window");
                assert!(
                    got.abs_diff(truth) <= head,
                    "{head} {a} {b}: {got} vs {truth}"
                );
            }
        }
    }

    #[test]
    fn wait_never_negative() {
        let seen = ThreadTime {
            cpu_ns: Some(10),
            ..ThreadTime::default()
        };
        assert_eq!(seen.wait_ns(5), Some(0));
        assert_eq!(seen.wait_ns(15), Some(5));
    }
}
