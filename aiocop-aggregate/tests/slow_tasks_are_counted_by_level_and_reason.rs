//! Every slow handle counts once under its level and reason, with or without blocking calls;
//! its duration lands in the exporters' buckets.

use aiocop_aggregate::{record, snapshot, HandleRun, BOUNDS_SECONDS};
use aiocop_events::{Frame, Reason, Stack};
use aiocop_severity::Level;

#[test]
fn levels_and_reasons() {
    let stack = Stack::shared(vec![Frame::new("/srv/app/a.py", 1, "f")]);
    let cpu = HandleRun {
        elapsed_ns: 120_000_000,
        level: Level::Low,
        reason: Reason::CpuBlocking,
    };
    let io = HandleRun {
        elapsed_ns: 3_000_000,
        level: Level::High,
        reason: Reason::IoBlocking,
    };
    record(cpu, []);
    record(cpu, []);
    record(io, [(&stack, "open")]);
    let report = snapshot();
    let counts: Vec<(&str, &str, u64)> = report
        .slow_tasks
        .iter()
        .map(|c| (c.level.as_str(), c.reason.as_str(), c.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("low", "io_blocking", 0),
            ("low", "cpu_blocking", 2),
            ("medium", "io_blocking", 0),
            ("medium", "cpu_blocking", 0),
            ("high", "io_blocking", 1),
            ("high", "cpu_blocking", 0),
        ]
    );
    let le = |seconds: f64| {
        BOUNDS_SECONDS
            .iter()
            .position(|&b| b == seconds)
            .expect("a bound")
    };
    assert_eq!(report.durations.counts()[le(0.005)], 1);
    assert_eq!(report.durations.counts()[le(0.25)], 2);
    assert_eq!(report.durations.sum_ns(), 243_000_000);
}
