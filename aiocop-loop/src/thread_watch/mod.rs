//! What the CPU sampler's watchdog sees of a loop thread while a handle runs, for the slow-task
//! event's `cpu_ms`, `wait_ms` and `blocked_in` and each CPU sample's `on_cpu` — read from the
//! watchdog thread, without the GIL, so that the loop thread's per-handle path gains nothing
//! but one atomic load at the end of a handle ([`Watch::take`]).
//!
//! - **CPU time.** The first time the watchdog sees a handle running (any age: it wakes when a
//!   running handle arms, every sampling interval while one is armed, and at least every idle
//!   interval; [`crate::wake`]) it reads the loop thread's CPU clock
//!   (`pthread_getcpuclockid`); at the end of a slow handle that it saw, and only then, the
//!   loop thread reads its own (`CLOCK_THREAD_CPUTIME_ID`, a system call on the slow path). The
//!   part of the handle before the first sight is given the on-CPU ratio of the part after
//!   ([`aiocop_events::estimate_cpu_ns`]): the error is at most that head, which is under the
//!   watchdog's longest sleep (the idle interval, or the sampling interval if longer). A handle
//!   that ended before the watchdog saw it has no CPU time (`None`).
//! - **Where it waits.** While a handle is older than the arming delay, at each wake-up, before
//!   it takes a stack sample, the watchdog reads `/proc/self/task/<tid>/syscall`: a thread off
//!   CPU inside a system call is counted under that call's number; the most counted one is
//!   named ([`syscalls`]). `running` and `-1` (off CPU outside a system call) count nothing.
//! - **On CPU per sample.** At the same moment it reads `/proc/self/task/<tid>/stat`: state
//!   `R` (on a CPU or waiting for one) is `on_cpu`. Read before the watchdog asks for the GIL
//!   to take the stack (once it holds the GIL, a busy loop thread is waiting for it).
//!
//! Off Linux (x86-64, aarch64) nothing is read and every one of these is `None`.

mod proc;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod syscalls;

/// No system calls are read elsewhere: nothing to name.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod syscalls {
    pub(crate) fn name(number: i64) -> std::borrow::Cow<'static, str> {
        format!("syscall_{number}").into()
    }
}

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use aiocop_events::{estimate_cpu_ns, ThreadTime};

use proc::{own_cpu_ns, Syscall, Thread};

/// Distinct system calls counted per handle (more are not counted).
const MAX_SYSCALLS: usize = 16;

/// One loop thread, watched by the watchdog (part of the sampler's slot for that thread).
#[derive(Debug)]
pub(crate) struct Watch {
    /// `None` where threads cannot be read (off Linux).
    thread: Option<Thread>,
    /// The start stamp of the last handle the watchdog read the CPU clock for (its thread only).
    first_read: AtomicU64,
    /// The watchdog left something in `seen` since the loop thread last took it.
    fresh: AtomicBool,
    seen: Mutex<Seen>,
}

/// The first sight of a handle: the watchdog's clock and the thread's CPU time then.
#[derive(Debug, Clone, Copy)]
struct FirstSight {
    wall_ns: u64,
    cpu_ns: u64,
}

/// What the watchdog saw of the handle started at `owner`.
#[derive(Debug, Default)]
struct Seen {
    /// The handle's start stamp (0: none).
    owner: u64,
    first: Option<FirstSight>,
    /// (system call number, times seen waiting in it), the first `kinds` entries.
    waits: [(i64, u32); MAX_SYSCALLS],
    kinds: usize,
    /// Per stack sample of the handle, in order: on CPU then.
    on_cpu: Vec<Option<bool>>,
    /// Times the handle was reported as stuck.
    stuck_reports: u32,
}

impl Seen {
    fn reset(&mut self, owner: u64) {
        self.owner = owner;
        self.first = None;
        self.kinds = 0;
        self.on_cpu.clear();
        self.stuck_reports = 0;
    }

    fn count_wait(&mut self, number: i64) {
        let kinds = self.kinds;
        if let Some(entry) = self.waits[..kinds].iter_mut().find(|(n, _)| *n == number) {
            entry.1 = entry.1.saturating_add(1);
        } else if kinds < MAX_SYSCALLS {
            self.waits[kinds] = (number, 1);
            self.kinds = kinds + 1;
        }
    }

    /// The call seen most often (the first seen among equals).
    fn most_waited(&self) -> Option<i64> {
        let mut best: Option<(i64, u32)> = None;
        for &(number, count) in &self.waits[..self.kinds] {
            if best.is_none_or(|(_, most)| count > most) {
                best = Some((number, count));
            }
        }
        best.map(|(number, _)| number)
    }
}

/// What the watchdog saw of one handle, taken by the loop thread when the handle ends.
#[derive(Debug)]
pub(crate) struct Watched {
    first: Option<FirstSight>,
    blocked_in: Option<i64>,
    /// Per stack sample of the handle, in order: whether the thread was on CPU then.
    pub(crate) on_cpu: Vec<Option<bool>>,
    /// Times the handle was reported as stuck while it ran.
    stuck_reports: u32,
}

fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watch {
    /// The calling thread (a loop thread, when it first runs a handle with sampling on).
    pub(crate) fn current_thread() -> Self {
        Self {
            thread: Thread::current(),
            first_read: AtomicU64::new(0),
            fresh: AtomicBool::new(false),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Watchdog, at each wake-up, for the handle started at `start` that is running: reads the
    /// thread's CPU clock the first time, kept if the handle is still running after (`start_ns`
    /// still `start`).
    pub(crate) fn running(&self, start: u64, start_ns: &AtomicU64) {
        let Some(thread) = &self.thread else {
            return;
        };
        if self.first_read.swap(start, Ordering::Relaxed) == start {
            return;
        }
        let Some(cpu_ns) = thread.cpu_ns() else {
            return;
        };
        let wall_ns = aiocop_clock::now_ns();
        if start_ns.load(Ordering::Acquire) != start {
            return;
        }
        self.update(start, |seen| {
            seen.first = Some(FirstSight { wall_ns, cpu_ns })
        });
    }

    /// Watchdog, for the handle started at `start`, older than the arming delay, before it
    /// samples the stack: counts the system call the thread waits in, and answers whether it is
    /// on CPU (for the sample).
    pub(crate) fn armed(&self, start: u64, start_ns: &AtomicU64) -> Option<bool> {
        let thread = self.thread.as_ref()?;
        let syscall = thread.syscall();
        let on_cpu = thread.on_cpu();
        if start_ns.load(Ordering::Acquire) != start {
            return None;
        }
        if let Some(Syscall::In(number)) = syscall {
            self.update(start, |seen| seen.count_wait(number));
        }
        on_cpu
    }

    /// Watchdog, holding the GIL, right after it kept a stack sample of the handle started at
    /// `start`: the sample's state, in the samples' order.
    pub(crate) fn sampled(&self, start: u64, on_cpu: Option<bool>) {
        if self.thread.is_some() {
            self.update(start, |seen| seen.on_cpu.push(on_cpu));
        }
    }

    /// Watchdog, for a stuck-loop report: whether the thread is on CPU now, and the system
    /// call it waits in (named), if off CPU inside one.
    pub(crate) fn now(&self) -> (Option<bool>, Option<std::borrow::Cow<'static, str>>) {
        let Some(thread) = &self.thread else {
            return (None, None);
        };
        let blocked_in = match thread.syscall() {
            Some(Syscall::In(number)) => Some(syscalls::name(number)),
            _ => None,
        };
        (thread.on_cpu(), blocked_in)
    }

    /// Watchdog: the handle started at `start` was reported as stuck, `reports` times so far
    /// (the slow-task event at its end says so).
    pub(crate) fn stuck_reported(&self, start: u64, reports: u32) {
        self.update(start, |seen| seen.stuck_reports = reports);
    }

    fn update(&self, start: u64, write: impl FnOnce(&mut Seen)) {
        let mut seen = lock(&self.seen);
        if seen.owner != start {
            seen.reset(start);
        }
        write(&mut seen);
        drop(seen);
        self.fresh.store(true, Ordering::Release);
    }

    /// Loop thread, at the end of the handle started at `start`: what the watchdog saw of it.
    /// One atomic load when it saw nothing new.
    #[inline(always)]
    pub(crate) fn take(&self, start: u64) -> Option<Watched> {
        if !self.fresh.load(Ordering::Acquire) {
            return None;
        }
        self.take_seen(start)
    }

    #[cold]
    #[inline(never)]
    fn take_seen(&self, start: u64) -> Option<Watched> {
        if !self.fresh.swap(false, Ordering::AcqRel) {
            return None;
        }
        let mut seen = lock(&self.seen);
        if seen.owner != start {
            return None; // about an earlier handle: reset by the next update
        }
        let watched = Watched {
            first: seen.first,
            blocked_in: seen.most_waited(),
            on_cpu: std::mem::take(&mut seen.on_cpu),
            stuck_reports: seen.stuck_reports,
        };
        seen.reset(0);
        Some(watched)
    }
}

impl Watched {
    /// On the slow path, on the loop thread, right after the handle that started at
    /// `started_ns` and ran `elapsed_ns`: its CPU time (reading this thread's CPU clock, when
    /// the watchdog saw the handle run) and the system call it waited in most. `gc_ns` is left
    /// to the caller.
    pub(crate) fn thread_time(&self, started_ns: u64, elapsed_ns: u64) -> ThreadTime {
        let cpu_ns = self.first.and_then(|first| {
            let end_cpu = own_cpu_ns()?;
            let head = first.wall_ns.saturating_sub(started_ns).min(elapsed_ns);
            let window = elapsed_ns - head;
            estimate_cpu_ns(head, window, end_cpu.saturating_sub(first.cpu_ns))
                .map(|cpu| cpu.min(elapsed_ns))
        });
        ThreadTime {
            cpu_ns,
            blocked_in: self.blocked_in.map(syscalls::name),
            gc_ns: None,
            stuck_reports: self.stuck_reports,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_waited_counts_and_keeps_the_first_among_equals() {
        let mut seen = Seen::default();
        assert_eq!(seen.most_waited(), None);
        for number in [7, 202, 202, 7, 230] {
            seen.count_wait(number);
        }
        assert_eq!(seen.most_waited(), Some(7));
        seen.count_wait(202);
        assert_eq!(seen.most_waited(), Some(202));
        for number in 1000..1100 {
            seen.count_wait(number); // bounded: the table keeps what it has
        }
        assert_eq!(seen.kinds, MAX_SYSCALLS);
        assert_eq!(seen.most_waited(), Some(202));
        seen.reset(5);
        assert_eq!((seen.owner, seen.most_waited()), (5, None));
    }

    #[test]
    fn the_loop_thread_takes_only_its_own_handle() {
        let watch = Watch::current_thread();
        assert!(watch.take(10).is_none(), "nothing seen yet");
        watch.update(10, |seen| seen.count_wait(202));
        assert!(watch.take(11).is_none(), "about an earlier handle");
        assert!(watch.take(10).is_none(), "taken (and dropped) once");
        watch.update(12, |seen| seen.count_wait(202));
        watch.update(12, |seen| seen.on_cpu.push(Some(false)));
        watch.stuck_reported(12, 2);
        let watched = watch.take(12).expect("the handle's observations");
        assert_eq!(watched.blocked_in, Some(202));
        assert_eq!(watched.on_cpu, [Some(false)]);
        assert_eq!(watched.stuck_reports, 2);
        assert!(watch.take(12).is_none());
    }

    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    #[test]
    fn a_busy_handle_is_on_cpu_for_most_of_its_time() {
        let watch = Watch::current_thread();
        let cpu_before = own_cpu_ns().expect("a CPU clock");
        let start_ns = AtomicU64::new(aiocop_clock::now_ns());
        let started = start_ns.load(Ordering::Relaxed);
        watch.running(started, &start_ns);
        let spin_until = started + 50_000_000;
        let mut n = 0u64;
        while aiocop_clock::now_ns() < spin_until {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        let elapsed = aiocop_clock::now_ns() - started;
        let watched = watch.take(started).expect("seen at the start");
        let time = watched.thread_time(started, elapsed);
        let truth = own_cpu_ns().expect("a CPU clock") - cpu_before;
        let cpu = time.cpu_ns.expect("a CPU time");
        assert!(cpu <= elapsed);
        // Seen at once, so no head to guess: the estimate is the thread's own clock (however
        // much of the 50 ms the machine gave it), within the few microseconds between readings.
        assert!(cpu.abs_diff(truth) < 2_000_000, "{cpu} vs {truth}");
        assert_eq!(time.blocked_in, None);
    }
}
