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
