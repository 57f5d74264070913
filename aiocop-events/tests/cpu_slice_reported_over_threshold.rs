//! A handle without blocking IO is reported as `cpu_blocking` (score 0, level low) only when it
//! ran at least as long as the threshold, with its sampled stacks aggregated.

use aiocop_events::{assemble, CpuSample, Frame, Reason, Slice};
use aiocop_severity::Level;

fn stack(line: i32) -> Vec<Frame> {
    vec![
        Frame::new("/app/src/compute.py", line, "crunch"),
        Frame::new("/app/src/handlers.py", 5, "handle"),
    ]
}

fn cpu_slice(elapsed_ns: u64) -> Slice {
    Slice {
        elapsed_ns,
        threshold_ns: 30_000_000,
        cpu_samples: vec![
            stack(10),
            stack(20),
            stack(20),
            stack(30),
            stack(10),
            stack(20),
        ],
        ..Slice::default()
    }
}

#[test]
fn not_reported_under_threshold() {
    let slice = cpu_slice(29_999_999);
    assert!(!slice.is_reportable());
    assert_eq!(assemble(&slice), None);
}

#[test]
fn reported_at_threshold() {
    let task = assemble(&cpu_slice(30_000_000)).expect("elapsed == threshold is reported");
    assert!(task.exceeded_threshold);
    assert_eq!(task.reason, Reason::CpuBlocking);
}

#[test]
fn reported_over_threshold_with_aggregated_samples() {
    let task = assemble(&cpu_slice(75_000_000)).expect("over the threshold");
    assert_eq!(task.reason.as_str(), "cpu_blocking");
    assert_eq!(task.elapsed_ms, 75.0);
    assert_eq!(task.threshold_ms, 30.0);
    assert_eq!(task.severity_score, 0);
    assert_eq!(task.severity_level, Level::Low);
    assert!(task.blocking_events.is_empty());

    let sample = |line: i32, count: u32| CpuSample {
        trace: format!("compute.py:{line}:crunch <- handlers.py:5:handle"),
        entry_point: format!("compute.py:{line}:crunch"),
        count,
        on_cpu: None,
        native_frames: vec![],
    };
    assert_eq!(
        task.cpu_stack_samples,
        [sample(20, 3), sample(10, 2), sample(30, 1)]
    );
}
