//! Sites are reported by entry point and event: stacks that differ further out but enter at
//! the same line are one site; the same line with another event is another.

use aiocop_aggregate::{record, snapshot, HandleRun};
use aiocop_events::{Frame, Reason, Stack};
use aiocop_severity::Level;

#[test]
fn two_callers_of_one_line() {
    let inner = Frame::new("/srv/app/db.py", 12, "load");
    let a = Stack::shared(vec![inner.clone(), Frame::new("/srv/app/a.py", 1, "a")]);
    let b = Stack::shared(vec![inner, Frame::new("/srv/app/b.py", 2, "b")]);
    let run = HandleRun {
        elapsed_ns: 1_000_000,
        level: Level::Medium,
        reason: Reason::IoBlocking,
    };
    record(run, [(&a, "open")]);
    record(run, [(&b, "open"), (&b, "os.stat")]);
    let report = snapshot();
    let names: Vec<(&str, &str, u64)> = report
        .sites
        .iter()
        .map(|s| (s.site.as_str(), s.event.as_str(), s.totals.count))
        .collect();
    assert_eq!(
        names,
        [
            ("/srv/app/db.py:12:load", "open", 2),
            ("/srv/app/db.py:12:load", "os.stat", 1)
        ]
    );
}
