//! Every call is counted once; a handle's duration counts once per site, however many calls it
//! made there; calls made on several threads add up.

use aiocop_aggregate::{record, snapshot, HandleRun};
use aiocop_events::{Frame, Reason, Stack};
use aiocop_severity::Level;

#[test]
fn calls_on_four_threads_add_up() {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let stack = Stack::shared(vec![Frame::new("/srv/app/views.py", 7, "stat")]);
                for _ in 0..1000 {
                    let run = HandleRun {
                        elapsed_ns: 2_000_000,
                        level: Level::Medium,
                        reason: Reason::IoBlocking,
                    };
                    record(run, [(&stack, "os.stat"), (&stack, "os.stat")]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("recorder");
    }
    let report = snapshot();
    assert_eq!(report.sites.len(), 1);
    let site = &report.sites[0];
    assert_eq!(site.site, "/srv/app/views.py:7:stat");
    assert_eq!(site.event, "os.stat");
    assert_eq!(site.totals.count, 8000);
    assert_eq!(site.totals.histogram.count(), 4000);
    assert_eq!(site.totals.total_ns, 4000 * 2_000_000);
    assert_eq!(report.durations.count(), 4000);
    assert!(report.other.is_none());
}
