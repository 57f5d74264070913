//! One thread's totals ([`Table`]): what [`record`](crate::record) updates, under a lock only
//! that thread takes (until a reader merges).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use aiocop_events::{Reason, Stack};
use aiocop_severity::Level;

use crate::durations::Durations;
use crate::histogram::Histogram;

/// One slow handle, as the loop thread saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandleRun {
    /// How long the handle ran, in nanoseconds.
    pub elapsed_ns: u64,
    /// Its severity level (from its blocking calls' score; `Low` for CPU-bound slices).
    pub level: Level,
    /// Why it is reported.
    pub reason: Reason,
}

/// A call site's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteTotals {
    /// Blocking calls made there.
    pub count: u64,
    /// The summed durations of the handles they were made in (a handle counted once per site).
    pub total_ns: u64,
    /// Those handles' durations.
    pub histogram: Histogram,
}

impl SiteTotals {
    /// Adds `other`'s calls and handles.
    pub fn merge(&mut self, other: &SiteTotals) {
        self.count += other.count;
        self.total_ns = self.total_ns.saturating_add(other.total_ns);
        self.histogram.merge(&other.histogram);
    }
}

/// A row of a thread's table: totals, and the last handle counted in them (so that a handle
/// with two calls at one site counts its duration once).
#[derive(Debug, Default)]
pub(crate) struct Row {
    pub(crate) totals: SiteTotals,
    last_handle: u64,
}

impl Row {
    fn count(&mut self, handle: u64, elapsed_ns: u64) {
        self.totals.count += 1;
        if self.last_handle != handle {
            self.last_handle = handle;
            self.totals.total_ns = self.totals.total_ns.saturating_add(elapsed_ns);
            self.totals.histogram.add(elapsed_ns);
        }
    }
}

/// A site's row with what names it: the stack (kept alive, so its address stays its key) and
/// the audit event.
#[derive(Debug)]
pub(crate) struct Site {
    pub(crate) stack: Arc<Stack>,
    pub(crate) event: &'static str,
    pub(crate) row: Row,
}

/// Hashes the (stack address, event name address) keys: two words, one multiply each.
#[derive(Debug, Default)]
pub(crate) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_usize(usize::from(byte));
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Key = (usize, usize);

/// One thread's totals.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) sites: HashMap<Key, Site, BuildHasherDefault<AddressHasher>>,
    /// Calls at sites beyond the bound.
    pub(crate) other: Row,
    /// Slow handles by level (`Low`, `Medium`, `High`) and reason (`io`, `cpu`).
    pub(crate) slow_tasks: [[u64; 2]; 3],
    pub(crate) durations: Durations,
    /// Handles counted so far (numbers them for [`Row`]).
    handles: u64,
}

pub(crate) const fn level_index(level: Level) -> usize {
    match level {
        Level::Low => 0,
        Level::Medium => 1,
        Level::High => 2,
    }
}

pub(crate) const fn reason_index(reason: Reason) -> usize {
    match reason {
        Reason::IoBlocking => 0,
        Reason::CpuBlocking => 1,
    }
}

fn key(stack: &Arc<Stack>, event: &'static str) -> Key {
    (Arc::as_ptr(stack) as usize, event.as_ptr() as usize)
}

impl Table {
    /// Counts one slow handle and its blocking calls, keeping at most `max_sites` sites.
    pub(crate) fn record<'a>(
        &mut self,
        run: HandleRun,
        calls: impl IntoIterator<Item = (&'a Arc<Stack>, &'static str)>,
        max_sites: usize,
    ) {
        self.handles += 1;
        let handle = self.handles;
        self.slow_tasks[level_index(run.level)][reason_index(run.reason)] += 1;
        self.durations.add(run.elapsed_ns);
        for (stack, event) in calls {
            let key = key(stack, event);
            if self.sites.len() < max_sites && !self.sites.contains_key(&key) {
                self.sites.insert(
                    key,
                    Site {
                        stack: Arc::clone(stack),
                        event,
                        row: Row::default(),
                    },
                );
            }
            let row = match self.sites.get_mut(&key) {
                Some(site) => &mut site.row,
                None => &mut self.other,
            };
            row.count(handle, run.elapsed_ns);
        }
    }

    /// Moves everything `other` counted into this table (a thread that ended), keeping at most
    /// `max_sites` sites.
    pub(crate) fn absorb(&mut self, other: Table, max_sites: usize) {
        for (key, mut site) in other.sites {
            site.row.last_handle = 0; // numbered by the other table
            if let Some(mine) = self.sites.get_mut(&key) {
                mine.row.totals.merge(&site.row.totals);
            } else if self.sites.len() < max_sites {
                self.sites.insert(key, site);
            } else {
                self.other.totals.merge(&site.row.totals);
            }
        }
        self.other.totals.merge(&other.other.totals);
        for (mine, theirs) in self.slow_tasks.iter_mut().zip(other.slow_tasks) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
        self.durations.merge(&other.durations);
    }
}
