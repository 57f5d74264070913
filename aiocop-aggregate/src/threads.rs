//! Where the tables live: one per thread that recorded (registered on its first record, its
//! totals moved into the retired table when the thread ends), read and reset by any thread.
//!
//! Readers merge without the GIL, so a `fork()` may come while one holds a lock: a child
//! process gets tables of its own ([`after_fork_child`]) and never takes a lock of its
//! parent's. Its totals start empty: they are the child's calls.

use std::cell::RefCell;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aiocop_events::Stack;

use crate::table::{HandleRun, Table};

/// The default bound on the sites kept per thread and reported.
pub const DEFAULT_MAX_SITES: usize = 500;

static MAX_SITES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_SITES);

/// Every table of a process.
#[derive(Debug)]
struct Tables {
    /// The tables of the threads that recorded and still run.
    live: Mutex<Vec<Arc<Mutex<Table>>>>,
    /// The totals of the threads that ended.
    retired: Mutex<Option<Table>>,
}

impl Tables {
    const fn new() -> Self {
        Self {
            live: Mutex::new(Vec::new()),
            retired: Mutex::new(None),
        }
    }
}

/// The first process's tables.
static FIRST: Tables = Tables::new();
/// A child's tables after `fork()` (leaked, never freed); null until a fork.
static FORKED: AtomicPtr<Tables> = AtomicPtr::new(std::ptr::null_mut());

/// This process's tables.
fn tables() -> &'static Tables {
    let forked = FORKED.load(Ordering::Acquire);
    if forked.is_null() {
        return &FIRST;
    }
    // SAFETY: a non-null `FORKED` comes from `Box::leak` in `after_fork_child` and is never
    // freed: valid for `'static`.
    unsafe { &*forked }
}

/// In a child process after `fork()`: tables of its own, empty. The parent's are left as they
/// are (a reader of the parent's may have held their locks at the fork): never locked, never
/// freed.
pub fn after_fork_child() {
    let fresh: &'static Tables = Box::leak(Box::new(Tables::new()));
    FORKED.store(std::ptr::from_ref(fresh).cast_mut(), Ordering::Release);
}

/// Locks `mutex`, whatever a panicking holder left (the totals stay usable).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's table, registered in the live list of `tables`; retired there when the
/// thread ends.
struct Local {
    tables: &'static Tables,
    table: Arc<Mutex<Table>>,
}

impl Local {
    fn register(tables: &'static Tables) -> Self {
        let table = Arc::new(Mutex::new(Table::default()));
        lock(&tables.live).push(Arc::clone(&table));
        Local { tables, table }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Under the live list's lock, which a reader holds for its whole merge: it sees these
        // totals either here or retired, never in both and never in neither.
        let mut live = lock(&self.tables.live);
        live.retain(|t| !Arc::ptr_eq(t, &self.table));
        let table = std::mem::take(&mut *lock(&self.table));
        lock(&self.tables.retired)
            .get_or_insert_with(Table::default)
            .absorb(table, max_sites());
    }
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
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
    let tables = tables();
    let mut calls = Some(calls);
    let recorded = LOCAL.try_with(|cell| {
        let mut local = cell.borrow_mut();
        let local = match &mut *local {
            Some(mine) if std::ptr::eq(mine.tables, tables) => mine,
            other => {
                // The thread's first record, or its first in a child after a fork: the
                // parent's table (a reader of the parent's may hold its lock) is forgotten,
                // never locked.
                std::mem::forget(other.take());
                other.insert(Local::register(tables))
            }
        };
        if let Some(calls) = calls.take() {
            lock(&local.table).record(run, calls, max);
        }
    });
    if recorded.is_err() {
        // The thread is ending: straight into the retired totals.
        if let Some(calls) = calls.take() {
            lock(&tables.retired)
                .get_or_insert_with(Table::default)
                .record(run, calls, max);
        }
    }
}

/// Runs `f` on every table: the live threads' and the retired one, holding the live list's
/// lock throughout (so no thread's totals move to the retired table meanwhile). Lock order:
/// the live list, a thread's table, the retired table.
pub(crate) fn for_each_table(mut f: impl FnMut(&mut Table)) {
    let tables = tables();
    let live = lock(&tables.live);
    for table in live.iter() {
        f(&mut lock(table));
    }
    if let Some(retired) = lock(&tables.retired).as_mut() {
        f(retired);
    }
}

/// Forgets every total, of every thread.
pub fn reset() {
    for_each_table(|table| *table = Table::default());
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use aiocop_events::{Frame, Reason};
    use aiocop_severity::Level;

    use super::*;

    const RUN: HandleRun = HandleRun {
        elapsed_ns: 1_000_000,
        level: Level::Low,
        reason: Reason::IoBlocking,
    };

    /// The exit code of child `pid`, or `None` when it did not finish in 20 s (then killed).
    fn exit_code(pid: libc::pid_t) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut status = 0;
        loop {
            // SAFETY: `pid` is this process's child; `status` is writable.
            if unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) } == pid {
                return Some(libc::WEXITSTATUS(status));
            }
            if Instant::now() > deadline {
                // SAFETY: `pid` is this process's child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &raw mut status, 0);
                }
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_child_forked_while_a_reader_held_the_locks_keeps_totals_of_its_own() {
        let parent = Stack::shared(vec![Frame::new("/srv/app/fork.py", 1, "parent")]);
        record(RUN, [(&parent, "open")]); // this thread's table, in the parent's tables
        let (held, is_held) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            // A reader in the middle of its merge: the live list's lock and a table's held.
            let mut first = true;
            for_each_table(|_| {
                if std::mem::take(&mut first) {
                    held.send(()).ok();
                    released.recv().ok();
                }
            });
        });
        is_held.recv().expect("the reader holds the locks");
        // SAFETY: the child runs only the code under test and leaves by `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            after_fork_child();
            let child = Stack::shared(vec![Frame::new("/srv/app/fork.py", 2, "child")]);
            record(RUN, [(&child, "open")]);
            let mut sites = Vec::new();
            for_each_table(|table| {
                for site in table.sites.values() {
                    sites.push((site.stack.entry_point().to_owned(), site.row.totals.count));
                }
            });
            let ok = sites == [("/srv/app/fork.py:2:child".to_owned(), 1)];
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(i32::from(!ok)) };
        }
        release.send(()).expect("the reader waits");
        reader.join().expect("the reader ends");
        assert!(pid > 0, "fork failed");
        assert_eq!(
            exit_code(pid),
            Some(0),
            "the child hung, or saw other totals"
        );
    }
}
