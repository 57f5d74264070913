//! A thread's totals outlive it: they move into the retired table when it ends, and stay in
//! every later report.

use aiocop_aggregate::{record, snapshot, HandleRun};
use aiocop_events::{Frame, Reason, Stack};
use aiocop_severity::Level;

#[test]
fn totals_of_ended_threads_are_reported() {
    for _ in 0..3 {
        std::thread::spawn(|| {
            let stack = Stack::shared(vec![Frame::new("/srv/app/job.py", 3, "run")]);
            let run = HandleRun {
                elapsed_ns: 70_000_000,
                level: Level::High,
                reason: Reason::IoBlocking,
            };
            record(run, [(&stack, "time.sleep")]);
        })
        .join()
        .expect("recorder");
    }
    let report = snapshot();
    assert_eq!(report.sites.len(), 1);
    assert_eq!(report.sites[0].totals.count, 3);
    assert_eq!(
        report.sites[0].totals.histogram.quantile_ns(0.5),
        70_000_000
    );
    assert_eq!(snapshot(), report);
}
