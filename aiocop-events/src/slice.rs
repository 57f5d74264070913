//! A monitored handle's run ([`Slice`]) and the slow-task event assembled from it ([`SlowTask`]).

use std::borrow::Cow;
use std::fmt;

use aiocop_severity::{level_from_score, score, Level};

use crate::frame::Frame;
use crate::record::{format_record, BlockingEvent, RawRecord};
use crate::samples::{aggregate_samples, CpuSample};
use crate::thread_time::ThreadTime;

/// Why a slow-task event was emitted.
///
/// ```
/// use aiocop_events::Reason;
///
/// assert_eq!(Reason::IoBlocking.as_str(), "io_blocking");
/// assert_eq!(Reason::CpuBlocking.to_string(), "cpu_blocking");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The handle made at least one blocking IO call (whatever its duration).
    IoBlocking,
    /// The handle ran over the threshold without any blocking IO call.
    CpuBlocking,
}

impl Reason {
    /// The reason as aiocop 1.2.1 spells it: `"io_blocking"` or `"cpu_blocking"`.
    ///
    /// ```
    /// use aiocop_events::Reason;
    ///
    /// assert_eq!(Reason::IoBlocking.as_str(), "io_blocking");
    /// assert_eq!(Reason::CpuBlocking.as_str(), "cpu_blocking");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::IoBlocking => "io_blocking",
            Reason::CpuBlocking => "cpu_blocking",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One monitored handle's run, as the loop thread hands it over.
///
/// ```
/// use aiocop_events::Slice;
///
/// let slice = Slice { elapsed_ns: 30_000_000, threshold_ns: 30_000_000, ..Slice::default() };
/// assert!(slice.exceeded_threshold());
/// assert!(slice.is_reportable());
/// assert_eq!(slice.score(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slice {
    /// How long the handle ran, in nanoseconds.
    pub elapsed_ns: u64,
    /// The slow-task threshold in force, in nanoseconds.
    pub threshold_ns: u64,
    /// The blocking events recorded during the run, at most
    /// [`MAX_RECORDS_PER_HANDLE`](crate::MAX_RECORDS_PER_HANDLE), in call order.
    pub records: Vec<RawRecord>,
    /// Stacks sampled while the handle ran (each innermost first).
    pub cpu_samples: Vec<Vec<Frame>>,
    /// For each of `cpu_samples`, in order: whether the thread was on CPU when it was taken
    /// (shorter, or empty, where that is not known).
    pub cpu_sample_on_cpu: Vec<Option<bool>>,
    /// Records that did not fit (over [`MAX_RECORDS_PER_HANDLE`](crate::MAX_RECORDS_PER_HANDLE)).
    pub dropped_records: u32,
    /// Where the handle's time went (CPU, waits, the garbage collector), as far as measured.
    pub thread_time: ThreadTime,
}

impl Slice {
    /// Whether the handle ran at least as long as the threshold (`elapsed_ns >= threshold_ns`).
    ///
    /// ```
    /// use aiocop_events::Slice;
    ///
    /// let at = |elapsed_ns| Slice { elapsed_ns, threshold_ns: 100, ..Slice::default() };
    /// assert!(!at(99).exceeded_threshold());
    /// assert!(at(100).exceeded_threshold());
    /// ```
    pub fn exceeded_threshold(&self) -> bool {
        self.elapsed_ns >= self.threshold_ns
    }

    /// Whether this slice produces an event: it has any record, or it exceeded the threshold.
    ///
    /// ```
    /// use aiocop_events::Slice;
    ///
    /// assert!(!Slice { elapsed_ns: 1, threshold_ns: 100, ..Slice::default() }.is_reportable());
    /// ```
    pub fn is_reportable(&self) -> bool {
        !self.records.is_empty() || self.exceeded_threshold()
    }

    /// The severity score of the records: the sum of their weights, an unknown weight counting 10.
    ///
    /// ```
    /// use aiocop_events::{RawArgs, RawRecord, Slice};
    ///
    /// let record = |weight| RawRecord {
    ///     event_name: "e".into(),
    ///     args: RawArgs::Values(vec![]),
    ///     stack: Default::default(),
    ///     timestamp: 0.0,
    ///     weight,
    /// };
    /// let slice = Slice { records: vec![record(Some(50)), record(None), record(Some(1))], ..Slice::default() };
    /// assert_eq!(slice.score(), 61);
    /// ```
    pub fn score(&self) -> u32 {
        score(self.records.iter().map(|record| record.weight))
    }

    /// Whether [`assemble`] has nothing to format but the events' own `name(args)` text: every
    /// record's stack was formatted before and there are no CPU samples. Such a slice is as
    /// cheap to assemble in place as to hand over.
    ///
    /// ```
    /// use aiocop_events::{Frame, RawArgs, RawRecord, Slice, Stack};
    ///
    /// let stack = Stack::shared(vec![Frame::new("/app/src/db.py", 10, "query")]);
    /// let slice = Slice {
    ///     records: vec![RawRecord {
    ///         event_name: "open".into(),
    ///         args: RawArgs::Values(vec![]),
    ///         stack: stack.clone(),
    ///         timestamp: 0.0,
    ///         weight: Some(10),
    ///     }],
    ///     ..Slice::default()
    /// };
    /// assert!(!slice.is_preformatted());
    /// let _ = stack.trace();
    /// assert!(slice.is_preformatted());
    /// ```
    pub fn is_preformatted(&self) -> bool {
        self.cpu_samples.is_empty() && self.records.iter().all(|r| r.stack.is_formatted())
    }
}

/// A slow-task event (Python's `SlowTaskEvent`, without the context and the task identity, which
/// stay Python objects on the loop thread).
///
/// ```
/// use aiocop_events::{assemble, Reason, Slice};
/// use aiocop_severity::Level;
///
/// let task = assemble(&Slice { elapsed_ns: 45_000_000, threshold_ns: 30_000_000, ..Slice::default() })
///     .expect("over the threshold");
/// assert_eq!((task.reason, task.severity_level, task.elapsed_ms), (Reason::CpuBlocking, Level::Low, 45.0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SlowTask {
    /// How long the handle ran, in milliseconds.
    pub elapsed_ms: f64,
    /// The threshold in force, in milliseconds.
    pub threshold_ms: f64,
    /// `elapsed >= threshold`.
    pub exceeded_threshold: bool,
    /// Sum of the blocking events' weights (0 for `cpu_blocking`).
    pub severity_score: u32,
    /// Level of the score ([`Level::Low`] for `cpu_blocking`).
    pub severity_level: Level,
    /// Why the event was emitted.
    pub reason: Reason,
    /// The formatted blocking events, in call order (empty for `cpu_blocking`).
    pub blocking_events: Vec<BlockingEvent>,
    /// The aggregated CPU stack samples, most frequent first.
    pub cpu_stack_samples: Vec<CpuSample>,
    /// Blocking events that were not recorded because the handle hit
    /// [`MAX_RECORDS_PER_HANDLE`](crate::MAX_RECORDS_PER_HANDLE).
    pub dropped_records: u32,
    /// The loop thread's CPU time during the handle, in milliseconds (`None`: not measured,
    /// see [`ThreadTime`]).
    pub cpu_ms: Option<f64>,
    /// `elapsed_ms - cpu_ms`, never negative: the time the thread waited (in a system call,
    /// for the GIL, for a CPU).
    pub wait_ms: Option<f64>,
    /// The system call the thread was seen waiting in most often during the handle.
    pub blocked_in: Option<Cow<'static, str>>,
    /// Time in the garbage collector during the handle, in milliseconds.
    pub gc_ms: Option<f64>,
    /// Times the handle was reported as stuck while it ran (0: never).
    pub stuck_reports: u32,
}

fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl SlowTask {
    /// The `io_blocking` event of a handle that ran `elapsed_ns` (threshold `threshold_ns`) and
    /// made `blocking_events`, without CPU samples: score = sum of the events' weights, level
    /// from the score. What [`assemble`] makes of a slice with records, for a caller that has
    /// the blocking events already (the loop thread, for call sites whose stacks are formatted).
    ///
    /// ```
    /// use aiocop_events::{BlockingEvent, Reason, SlowTask, Stack};
    /// use aiocop_severity::Level;
    ///
    /// let event = BlockingEvent { name: "time.sleep".into(), event: String::new(), stack: Stack::shared(vec![]), severity: Some(50) };
    /// let task = SlowTask::io_blocking(2_000_000, 30_000_000, vec![event], 0);
    /// assert_eq!((task.reason, task.severity_score, task.severity_level), (Reason::IoBlocking, 50, Level::High));
    /// assert_eq!((task.elapsed_ms, task.exceeded_threshold), (2.0, false));
    /// ```
    pub fn io_blocking(
        elapsed_ns: u64,
        threshold_ns: u64,
        blocking_events: Vec<BlockingEvent>,
        dropped_records: u32,
    ) -> Self {
        let severity_score = score(blocking_events.iter().map(|event| event.severity));
        SlowTask {
            elapsed_ms: ns_to_ms(elapsed_ns),
            threshold_ms: ns_to_ms(threshold_ns),
            exceeded_threshold: elapsed_ns >= threshold_ns,
            severity_score,
            severity_level: level_from_score(i64::from(severity_score)),
            reason: Reason::IoBlocking,
            blocking_events,
            cpu_stack_samples: Vec::new(),
            dropped_records,
            cpu_ms: None,
            wait_ms: None,
            blocked_in: None,
            gc_ms: None,
            stuck_reports: 0,
        }
    }

    /// The event with what was seen of the thread during the handle (`cpu_ms`, `wait_ms`,
    /// `blocked_in`, `gc_ms`); `elapsed_ns` is the handle's duration.
    ///
    /// ```
    /// use aiocop_events::{SlowTask, ThreadTime};
    ///
    /// let seen = ThreadTime { cpu_ns: Some(2_000_000), blocked_in: Some("read".into()), gc_ns: Some(500_000), stuck_reports: 2 };
    /// let task = SlowTask::io_blocking(50_000_000, 30_000_000, vec![], 0).with_thread_time(50_000_000, &seen);
    /// assert_eq!((task.cpu_ms, task.wait_ms, task.gc_ms), (Some(2.0), Some(48.0), Some(0.5)));
    /// assert_eq!(task.blocked_in.as_deref(), Some("read"));
    /// assert_eq!(task.stuck_reports, 2);
    /// ```
    #[must_use]
    pub fn with_thread_time(mut self, elapsed_ns: u64, seen: &ThreadTime) -> Self {
        self.cpu_ms = seen.cpu_ns.map(ns_to_ms);
        self.wait_ms = seen.wait_ns(elapsed_ns).map(ns_to_ms);
        self.blocked_in.clone_from(&seen.blocked_in);
        self.gc_ms = seen.gc_ns.map(ns_to_ms);
        self.stuck_reports = seen.stuck_reports;
        self
    }
}

/// Assembles the event for a slice, as aiocop 1.2.1's monitored wrapper does:
///
/// - with records, whatever the duration: `io_blocking`, score = sum of the weights, level from
///   the score, the records formatted by [`format_record`];
/// - without records, over the threshold: `cpu_blocking`, score 0, level low, no blocking events;
/// - otherwise `None`.
///
/// In both cases `cpu_stack_samples` is [`aggregate_samples`] of the slice's samples, and
/// `cpu_ms`, `wait_ms`, `blocked_in` and `gc_ms` come from its [`ThreadTime`].
///
/// ```
/// use aiocop_events::{assemble, Frame, RawArgs, RawRecord, Reason, Slice, Stack};
/// use aiocop_severity::Level;
///
/// let slice = Slice {
///     elapsed_ns: 2_000_000, // 2 ms, under the 30 ms threshold: still reported
///     threshold_ns: 30_000_000,
///     records: vec![RawRecord {
///         event_name: "open".into(),
///         args: RawArgs::Values(vec!["/etc/hosts".into(), "r".into()]),
///         stack: Stack::shared(vec![Frame::new("/app/src/config.py", 8, "load")]),
///         timestamp: 1_700_000_000.0,
///         weight: Some(10),
///     }],
///     ..Slice::default()
/// };
/// let task = assemble(&slice).expect("io is always reported");
/// assert_eq!(task.reason, Reason::IoBlocking);
/// assert_eq!((task.severity_score, task.severity_level), (10, Level::Medium));
/// assert!(!task.exceeded_threshold);
/// assert_eq!(task.blocking_events[0].event, "open(/etc/hosts, r)");
///
/// assert!(assemble(&Slice { elapsed_ns: 1, threshold_ns: 30_000_000, ..Slice::default() }).is_none());
/// ```
#[inline(never)] // one copy for every caller: the slow path calls it from several branches
pub fn assemble(slice: &Slice) -> Option<SlowTask> {
    if !slice.records.is_empty() {
        let events = slice.records.iter().map(format_record).collect();
        let task = SlowTask {
            cpu_stack_samples: aggregate_samples(&slice.cpu_samples, &slice.cpu_sample_on_cpu),
            ..SlowTask::io_blocking(
                slice.elapsed_ns,
                slice.threshold_ns,
                events,
                slice.dropped_records,
            )
        };
        return Some(task.with_thread_time(slice.elapsed_ns, &slice.thread_time));
    }
    if !slice.exceeded_threshold() {
        return None;
    }
    let task = SlowTask {
        elapsed_ms: ns_to_ms(slice.elapsed_ns),
        threshold_ms: ns_to_ms(slice.threshold_ns),
        exceeded_threshold: true,
        severity_score: 0,
        severity_level: Level::Low,
        reason: Reason::CpuBlocking,
        blocking_events: Vec::new(),
        cpu_stack_samples: aggregate_samples(&slice.cpu_samples, &slice.cpu_sample_on_cpu),
        dropped_records: slice.dropped_records,
        cpu_ms: None,
        wait_ms: None,
        blocked_in: None,
        gc_ms: None,
        stuck_reports: 0,
    };
    Some(task.with_thread_time(slice.elapsed_ns, &slice.thread_time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::RawArgs;

    fn record(weight: Option<u32>) -> RawRecord {
        RawRecord {
            event_name: "e".into(),
            args: RawArgs::Values(vec![]),
            stack: Default::default(),
            timestamp: 0.0,
            weight,
        }
    }

    fn slice(elapsed_ns: u64, threshold_ns: u64, weights: &[Option<u32>]) -> Slice {
        Slice {
            elapsed_ns,
            threshold_ns,
            records: weights.iter().copied().map(record).collect(),
            ..Slice::default()
        }
    }

    #[test]
    fn exceeded_and_reportable_table() {
        // (elapsed, threshold, has record) -> (exceeded, reportable)
        let cases: &[(u64, u64, bool, bool, bool)] = &[
            (0, 0, false, true, true),
            (99, 100, false, false, false),
            (100, 100, false, true, true),
            (101, 100, false, true, true),
            (99, 100, true, false, true),
            (100, 100, true, true, true),
            (u64::MAX, u64::MAX, false, true, true),
        ];
        for &(elapsed, threshold, has_record, exceeded, reportable) in cases {
            let weights: &[Option<u32>] = if has_record { &[Some(1)] } else { &[] };
            let s = slice(elapsed, threshold, weights);
            assert_eq!(s.exceeded_threshold(), exceeded, "{elapsed}/{threshold}");
            assert_eq!(
                s.is_reportable(),
                reportable,
                "{elapsed}/{threshold}/{has_record}"
            );
        }
    }

    #[test]
    fn score_and_level_boundaries() {
        let cases: &[(&[Option<u32>], u32, Level)] = &[
            (&[Some(0)], 0, Level::Low),
            (&[Some(0), Some(0)], 0, Level::Low),
            (&[Some(1); 9], 9, Level::Low),
            (&[Some(9)], 9, Level::Low),
            (&[None], 10, Level::Medium),
            (&[Some(10)], 10, Level::Medium),
            (&[Some(9), Some(1)], 10, Level::Medium),
            (
                &[Some(10), Some(10), Some(10), Some(10), Some(9)],
                49,
                Level::Medium,
            ),
            (&[None, None, None, None, Some(9)], 49, Level::Medium),
            (&[Some(49), Some(1)], 50, Level::High),
            (&[Some(50)], 50, Level::High),
            (&[None; 5], 50, Level::High),
            (&[Some(u32::MAX), Some(50)], u32::MAX, Level::High),
        ];
        for &(weights, expected_score, expected_level) in cases {
            let s = slice(0, 1, weights);
            assert_eq!(s.score(), expected_score, "{weights:?}");
            let task = assemble(&s).expect("records are reported");
            assert_eq!(task.reason, Reason::IoBlocking);
            assert_eq!(task.severity_score, expected_score, "{weights:?}");
            assert_eq!(task.severity_level, expected_level, "{weights:?}");
        }
    }

    /// `(elapsed_ns, threshold_ns, record weights)` and the expected reason, if reported.
    type ReasonCase = (u64, u64, &'static [Option<u32>], Option<Reason>);

    #[test]
    fn assemble_reason_table() {
        let cases: &[ReasonCase] = &[
            (0, 30, &[], None),
            (29, 30, &[], None),
            (30, 30, &[], Some(Reason::CpuBlocking)),
            (31, 30, &[], Some(Reason::CpuBlocking)),
            (0, 30, &[Some(0)], Some(Reason::IoBlocking)),
            (29, 30, &[Some(50)], Some(Reason::IoBlocking)),
            (31, 30, &[None], Some(Reason::IoBlocking)),
        ];
        for &(elapsed, threshold, weights, reason) in cases {
            let got = assemble(&slice(elapsed, threshold, weights)).map(|t| t.reason);
            assert_eq!(got, reason, "{elapsed}/{threshold}/{weights:?}");
        }
    }

    #[test]
    fn cpu_event_shape() {
        let s = Slice {
            elapsed_ns: 45_500_000,
            threshold_ns: 30_000_000,
            cpu_samples: vec![vec![Frame::new("/app/src/m.py", 3, "spin")]; 3],
            ..Slice::default()
        };
        let expected = SlowTask {
            elapsed_ms: 45.5,
            threshold_ms: 30.0,
            exceeded_threshold: true,
            severity_score: 0,
            severity_level: Level::Low,
            reason: Reason::CpuBlocking,
            blocking_events: vec![],
            cpu_stack_samples: vec![CpuSample {
                trace: "m.py:3:spin".into(),
                entry_point: "m.py:3:spin".into(),
                count: 3,
                on_cpu: None,
                native_frames: vec![],
            }],
            dropped_records: 0,
            cpu_ms: None,
            wait_ms: None,
            blocked_in: None,
            gc_ms: None,
            stuck_reports: 0,
        };
        assert_eq!(assemble(&s), Some(expected));
    }

    #[test]
    fn io_event_keeps_samples_and_dropped_count() {
        let mut s = slice(1_000, 30_000_000, &[Some(1); 50]);
        s.dropped_records = 7;
        s.cpu_samples = vec![vec![], vec![]];
        let task = assemble(&s).expect("records are reported");
        assert_eq!(task.blocking_events.len(), 50);
        assert_eq!(task.dropped_records, 7);
        assert_eq!(task.cpu_stack_samples.len(), 1);
        assert_eq!(task.cpu_stack_samples[0].count, 2);
        assert_eq!(task.elapsed_ms, 0.001);
        assert_eq!(task.threshold_ms, 30.0);
    }

    #[test]
    fn both_reasons_carry_the_thread_time() {
        let seen = ThreadTime {
            cpu_ns: Some(1_000_000),
            blocked_in: Some("futex".into()),
            gc_ns: Some(0),
            stuck_reports: 3,
        };
        for weights in [&[][..], &[Some(10)][..]] {
            let mut s = slice(40_000_000, 30_000_000, weights);
            s.thread_time = seen.clone();
            let task = assemble(&s).expect("reported");
            assert_eq!(task.cpu_ms, Some(1.0));
            assert_eq!(task.wait_ms, Some(39.0));
            assert_eq!(task.blocked_in.as_deref(), Some("futex"));
            assert_eq!(task.stuck_reports, 3);
            assert_eq!(task.gc_ms, Some(0.0));
        }
        let task = assemble(&slice(40_000_000, 30_000_000, &[])).expect("reported");
        assert_eq!((task.cpu_ms, task.wait_ms, task.gc_ms), (None, None, None));
        assert_eq!(task.blocked_in, None);
    }
}
