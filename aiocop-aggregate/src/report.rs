//! [`snapshot`]: every thread's totals merged, by call site as the user reads it.

use std::collections::HashMap;

use aiocop_events::Reason;
use aiocop_severity::Level;

use crate::durations::Durations;
use crate::table::{level_index, reason_index, SiteTotals};
use crate::threads::{for_each_table, max_sites};

/// The name of the row that counts calls beyond the bound on sites (as `site` and `event`).
pub const OTHER: &str = "other";

/// One call site's totals: where (the entry point `path:line:function`) and which audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteStats {
    /// The entry point of the calls' stack, `path:line:function`.
    pub site: String,
    /// The audit event, e.g. `"open"`.
    pub event: String,
    /// Calls, and the handles they blocked.
    pub totals: SiteTotals,
}

/// Slow handles of one level and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowTaskCount {
    /// Their severity level.
    pub level: Level,
    /// Why they are reported.
    pub reason: Reason,
    /// How many.
    pub count: u64,
}

/// Every thread's totals, merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Call sites by total blocking time, longest first (then by count, then by name), at most
    /// [`max_sites`].
    pub sites: Vec<SiteStats>,
    /// Calls at sites beyond the bound (`site` and `event` are [`OTHER`]); `None` when none.
    pub other: Option<SiteStats>,
    /// Slow handles for each level and reason (all six, zeros included), low first.
    pub slow_tasks: Vec<SlowTaskCount>,
    /// All slow handles' durations.
    pub durations: Durations,
}

const LEVELS: [Level; 3] = [Level::Low, Level::Medium, Level::High];
const REASONS: [Reason; 2] = [Reason::IoBlocking, Reason::CpuBlocking];

/// Every thread's totals merged by (entry point, event): stacks that differ further out but
/// enter at the same line are one site.
pub fn snapshot() -> Snapshot {
    let mut sites: HashMap<(String, &'static str), SiteTotals> = HashMap::new();
    let mut other = SiteTotals::default();
    let mut slow_tasks = [[0u64; 2]; 3];
    let mut durations = Durations::default();
    for_each_table(|table| {
        for site in table.sites.values() {
            let key = (site.stack.entry_point().to_owned(), site.event);
            sites.entry(key).or_default().merge(&site.row.totals);
        }
        other.merge(&table.other.totals);
        for (mine, theirs) in slow_tasks.iter_mut().zip(table.slow_tasks) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
        durations.merge(&table.durations);
    });
    let mut sites: Vec<SiteStats> = sites
        .into_iter()
        .map(|((site, event), totals)| SiteStats {
            site,
            event: event.to_owned(),
            totals,
        })
        .collect();
    sites.sort_by(|a, b| {
        (b.totals.total_ns, b.totals.count)
            .cmp(&(a.totals.total_ns, a.totals.count))
            .then_with(|| (&a.site, &a.event).cmp(&(&b.site, &b.event)))
    });
    let max = max_sites();
    if sites.len() > max {
        for extra in sites.drain(max..) {
            other.merge(&extra.totals);
        }
    }
    let slow_tasks = LEVELS
        .iter()
        .flat_map(|&level| {
            REASONS.iter().map(move |&reason| SlowTaskCount {
                level,
                reason,
                count: slow_tasks[level_index(level)][reason_index(reason)],
            })
        })
        .collect();
    Snapshot {
        sites,
        other: (other.count > 0).then(|| SiteStats {
            site: OTHER.to_owned(),
            event: OTHER.to_owned(),
            totals: other,
        }),
        slow_tasks,
        durations,
    }
}

/// Every site's stack as a line of the "folded" format flamegraph tools read: its frames
/// outermost first (`path:line:function`), then the audit event, separated by `;`, then a space
/// and the summed duration in microseconds of the handles it blocked. Equal stacks of several
/// threads are one line; lines are sorted.
///
/// ```
/// use aiocop_aggregate::{folded_stacks, record, HandleRun};
/// use aiocop_events::{Frame, Reason, Stack};
/// use aiocop_severity::Level;
///
/// let stack = Stack::shared(vec![Frame::new("/srv/db.py", 12, "load"), Frame::new("/srv/app.py", 3, "main")]);
/// let run = HandleRun { elapsed_ns: 2_500_000, level: Level::Medium, reason: Reason::IoBlocking };
/// record(run, [(&stack, "open")]);
/// assert_eq!(folded_stacks(), ["/srv/app.py:3:main;/srv/db.py:12:load;open 2500"]);
/// ```
pub fn folded_stacks() -> Vec<String> {
    let mut lines: HashMap<String, u64> = HashMap::new();
    for_each_table(|table| {
        for site in table.sites.values() {
            let mut line = String::new();
            for frame in site.stack.frames().iter().rev() {
                line.push_str(&aiocop_events::format_frame(frame).replace(';', ":"));
                line.push(';');
            }
            line.push_str(site.event);
            *lines.entry(line).or_default() += site.row.totals.total_ns / 1_000;
        }
    });
    let mut out: Vec<String> = lines
        .into_iter()
        .filter(|(_, us)| *us > 0)
        .map(|(line, us)| format!("{line} {us}"))
        .collect();
    out.sort();
    out
}
