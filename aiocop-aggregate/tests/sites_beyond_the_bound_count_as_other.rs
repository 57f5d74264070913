//! At most `max_sites` sites are kept; the calls at further sites are counted in the "other"
//! row, so no call is lost.

use aiocop_aggregate::{record, set_max_sites, snapshot, HandleRun, OTHER};
use aiocop_events::{Frame, Reason, Stack};
use aiocop_severity::Level;

#[test]
fn five_sites_under_a_bound_of_three() {
    set_max_sites(3);
    let stacks: Vec<_> = (1..=5)
        .map(|line| Stack::shared(vec![Frame::new("/srv/app/a.py", line, "f")]))
        .collect();
    for (i, stack) in stacks.iter().enumerate() {
        let run = HandleRun {
            elapsed_ns: 1_000_000 * (i as u64 + 1),
            level: Level::High,
            reason: Reason::IoBlocking,
        };
        record(run, [(stack, "open")]);
    }
    let report = snapshot();
    assert_eq!(report.sites.len(), 3);
    let other = report.other.expect("two sites over the bound");
    assert_eq!((other.site.as_str(), other.event.as_str()), (OTHER, OTHER));
    let kept: u64 = report.sites.iter().map(|s| s.totals.count).sum();
    assert_eq!(kept + other.totals.count, 5);
    assert_eq!(other.totals.count, 2);
}
