//! `reset` forgets every thread's totals; recording goes on afterwards.

use aiocop_aggregate::{record, reset, snapshot, HandleRun};
use aiocop_events::{Frame, Reason, Stack};
use aiocop_severity::Level;

#[test]
fn reset_then_record_again() {
    let stack = Stack::shared(vec![Frame::new("/srv/app/a.py", 1, "f")]);
    let run = HandleRun {
        elapsed_ns: 1_000_000,
        level: Level::Medium,
        reason: Reason::IoBlocking,
    };
    record(run, [(&stack, "open")]);
    std::thread::spawn(move || record(run, []))
        .join()
        .expect("recorder");
    reset();
    let empty = snapshot();
    assert!(empty.sites.is_empty() && empty.other.is_none());
    assert_eq!(empty.durations.count(), 0);
    assert!(empty.slow_tasks.iter().all(|c| c.count == 0));
    record(run, [(&stack, "open")]);
    assert_eq!(snapshot().sites[0].totals.count, 1);
}
