//! Where the tables live: one per thread that recorded (registered on its first record, its
//! totals moved into the retired table when the thread ends), read and reset by any thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aiocop_events::Stack;

use crate::table::{HandleRun, Table};

/// The default bound on the sites kept per thread and reported.
pub const DEFAULT_MAX_SITES: usize = 500;

static MAX_SITES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_SITES);

/// The tables of the threads that recorded and still run.
static LIVE: Mutex<Vec<Arc<Mutex<Table>>>> = Mutex::new(Vec::new());
/// The totals of the threads that ended.
static RETIRED: Mutex<Option<Table>> = Mutex::new(None);

/// Locks `mutex`, whatever a panicking holder left (the totals stay usable).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's table, registered in [`LIVE`]; retired when the thread ends.
struct Local(Arc<Mutex<Table>>);

impl Local {
    fn register() -> Self {
        let table = Arc::new(Mutex::new(Table::default()));
        lock(&LIVE).push(Arc::clone(&table));
        Local(table)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Under the live list's lock, which a reader holds for its whole merge: it sees these
        // totals either here or retired, never in both and never in neither.
        let mut live = lock(&LIVE);
        live.retain(|t| !Arc::ptr_eq(t, &self.0));
        let table = std::mem::take(&mut *lock(&self.0));
        lock(&RETIRED)
            .get_or_insert_with(Table::default)
            .absorb(table, max_sites());
    }
}

thread_local! {
    static LOCAL: Local = Local::register();
}

/// The bound on the sites kept per thread and reported; calls at further sites count in the
/// "other" row.
pub fn max_sites() -> usize {
    MAX_SITES.load(Ordering::Relaxed)
}

/// Sets [`max_sites`] (at least 1); sites kept already stay.
pub fn set_max_sites(max: usize) {
    MAX_SITES.store(max.max(1), Ordering::Relaxed);
}

/// Counts one slow handle of the calling thread and its blocking calls (stack and audit event
/// of each, in call order): under the thread's own lock, which only a reader ever contends.
///
/// ```
/// use aiocop_aggregate::{record, snapshot, HandleRun};
/// use aiocop_events::{Frame, Reason, Stack};
/// use aiocop_severity::Level;
///
/// let stack = Stack::shared(vec![Frame::new("/srv/app/db.py", 12, "load")]);
/// let run = HandleRun { elapsed_ns: 5_000_000, level: Level::High, reason: Reason::IoBlocking };
/// record(run, [(&stack, "open"), (&stack, "open")]);
/// let report = snapshot();
/// let site = report.sites.iter().find(|s| s.site == "/srv/app/db.py:12:load").expect("counted");
/// assert_eq!((site.event.as_str(), site.totals.count), ("open", 2));
/// assert_eq!(site.totals.total_ns, 5_000_000); // one handle
/// ```
pub fn record<'a>(run: HandleRun, calls: impl IntoIterator<Item = (&'a Arc<Stack>, &'static str)>) {
    let max = max_sites();
    let mut calls = Some(calls);
    let recorded = LOCAL.try_with(|local| {
        if let Some(calls) = calls.take() {
            lock(&local.0).record(run, calls, max);
        }
    });
    if recorded.is_err() {
        // The thread is ending: straight into the retired totals.
        if let Some(calls) = calls.take() {
            lock(&RETIRED)
                .get_or_insert_with(Table::default)
                .record(run, calls, max);
        }
    }
}

/// Runs `f` on every table: the live threads' and the retired one, holding the live list's
/// lock throughout (so no thread's totals move to the retired table meanwhile). Lock order:
/// the live list, a thread's table, the retired table.
pub(crate) fn for_each_table(mut f: impl FnMut(&mut Table)) {
    let live = lock(&LIVE);
    for table in live.iter() {
        f(&mut lock(table));
    }
    if let Some(retired) = lock(&RETIRED).as_mut() {
        f(retired);
    }
}

/// Forgets every total, of every thread.
pub fn reset() {
    for_each_table(|table| *table = Table::default());
}
