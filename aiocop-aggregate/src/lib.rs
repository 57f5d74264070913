//! aiocop's per-call-site totals: for every call site (the entry point `path:line:function`
//! of a blocking call's stack, and its audit event) how many calls, how long the handles they
//! blocked ran in all and at most, and those durations' percentiles; slow handles by severity
//! level and reason; all slow handles' durations in the buckets exporters use.
//!
//! Pure Rust, no pyo3: the loop thread calls [`record`] at the end of a slow handle (under a
//! lock of its own thread's table, which only a reader contends); [`snapshot`] merges every
//! thread's table for a report or an exporter's scrape. Bounded: at most [`max_sites`] sites
//! are kept per thread and reported; calls at further sites count in one [`OTHER`] row.
//!
//! ```
//! use aiocop_aggregate::{record, snapshot, HandleRun};
//! use aiocop_events::{Frame, Reason, Stack};
//! use aiocop_severity::Level;
//!
//! let db = Stack::shared(vec![Frame::new("/srv/app/db.py", 12, "load")]);
//! let cfg = Stack::shared(vec![Frame::new("/srv/app/config.py", 3, "read")]);
//! let io = |ms: u64| HandleRun { elapsed_ns: ms * 1_000_000, level: Level::Medium, reason: Reason::IoBlocking };
//! record(io(40), [(&db, "socket.connect")]);
//! record(io(10), [(&cfg, "open")]);
//! record(io(20), [(&db, "socket.connect")]);
//!
//! let report = snapshot();
//! let top = &report.sites[0];
//! assert_eq!((top.site.as_str(), top.event.as_str()), ("/srv/app/db.py:12:load", "socket.connect"));
//! assert_eq!((top.totals.count, top.totals.total_ns), (2, 60_000_000));
//! assert_eq!(top.totals.histogram.quantile_ns(1.0), 40_000_000);
//! ```
//!
//! Architecture invariant: recording never waits on another thread except a reader that is
//! merging that thread's table, allocates only for a site seen for the first time, and never
//! formats text (stacks are formatted by the reader).

mod durations;
mod histogram;
mod report;
mod table;
mod threads;

pub use durations::{Durations, BOUNDS_SECONDS};
pub use histogram::Histogram;
pub use report::{folded_stacks, snapshot, SiteStats, SlowTaskCount, Snapshot, OTHER};
pub use table::{HandleRun, SiteTotals};
pub use threads::{after_fork_child, max_sites, record, reset, set_max_sites, DEFAULT_MAX_SITES};
