//! CPU stack sampling: a watchdog thread that samples the stack of a loop thread whose handle
//! has been running longer than the arming delay, so `cpu_blocking` events say where the time
//! went. Works for loops on any thread.
//!
//! Hot path (every monitored handle, when sampling is started): one atomic store at the start,
//! one store and two loads at the end. The watchdog reads atomics, the loop thread's CPU clock
//! and `/proc` files (`thread_watch`); for a slice already older than the arming delay it reads
//! the thread's stack without the GIL ([`aiocop_hook::remote`]: so a C call holding the GIL, a
//! regex or `json`, is sampled every interval), and takes the GIL to capture it only where that
//! reader is off or the stack moved while it read (the thread was running Python code, so the
//! GIL comes free soon).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aiocop_events::{Frame, StuckFrame, StuckReport, StuckState};
use aiocop_hook::native::{NativeSampler, Target};
use aiocop_hook::remote::{Reader, RemoteFrame};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::config;
use crate::native_frames::Natives;
use crate::stuck::{self, Detection};
use crate::thread_watch::{Watch, Watched};
use crate::wake::NextWake;

/// Sampling parameters (`start_cpu_sampling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerConfig {
    /// Sampling interval while a slice is armed (older than the arming delay).
    pub interval_ns: u64,
    /// Age a slice must reach before it is sampled; `None` follows half the threshold.
    pub arm_after_ns: Option<u64>,
    /// Watchdog wake-up interval while nothing runs, and its longest sleep (with the sampling
    /// interval, if longer) while something runs but nothing is due sooner; `None` is derived.
    pub idle_interval_ns: Option<u64>,
    /// Samples kept per slice.
    pub max_samples_per_slice: usize,
    /// Frames per sample.
    pub trace_depth: usize,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            interval_ns: 10_000_000,
            arm_after_ns: None,
            idle_interval_ns: None,
            max_samples_per_slice: 32,
            trace_depth: 20,
        }
    }
}

impl SamplerConfig {
    /// The arming delay in force: the override, else max(1 ms, threshold / 2).
    pub(crate) fn effective_arm_after_ns(&self, threshold_ns: u64) -> u64 {
        self.arm_after_ns
            .unwrap_or_else(|| (threshold_ns / 2).max(1_000_000))
    }

    /// The idle wake-up interval in force: the override, else min(50 ms, max(arm, interval)).
    pub(crate) fn effective_idle_ns(&self, threshold_ns: u64) -> u64 {
        self.idle_interval_ns.unwrap_or_else(|| {
            self.effective_arm_after_ns(threshold_ns)
                .max(self.interval_ns)
                .min(50_000_000)
        })
    }
}

/// One thread's current slice, as the watchdog sees it.
#[derive(Debug)]
struct Slot {
    /// Start of the running slice (monotonic ns), 0 when idle.
    start_ns: AtomicU64,
    /// The thread's `PyThreadState`.
    tstate: AtomicPtr<ffi::PyThreadState>,
    /// The thread's `threading.get_ident()` (its `pthread_self()`).
    ident: u64,
    has_samples: AtomicBool,
    /// (slice start, samples): the watchdog pushes, the loop thread takes them at the slice's
    /// end.
    samples: Mutex<(u64, Vec<Vec<Frame>>)>,
    /// The thread's CPU time, waits and state, read by the watchdog (`thread_watch`).
    watch: Watch,
    /// The thread, for its native frames (`aiocop_hook::native`).
    native: Target,
}

struct Sampler {
    config: SamplerConfig,
    slots: Mutex<Vec<Weak<Slot>>>,
}

/// CPU sampling was started (`start_cpu_sampling`, `detect_slow_tasks`): the watchdog takes
/// stack samples. Without it the watchdog may still run, for stuck-loop detection alone.
static STARTED: AtomicBool = AtomicBool::new(false);
/// Replaced after a fork, and when sampling starts after stuck-loop detection started the
/// watchdog (the old one leaked), never freed.
static SAMPLER: AtomicPtr<Sampler> = AtomicPtr::new(std::ptr::null_mut());
/// Held while a watchdog is spawned.
static SPAWNING: Mutex<()> = Mutex::new(());
/// Frames read for a stuck-loop report.
const STUCK_DEPTH: usize = 64;

thread_local! {
    static SLOT: RefCell<Option<(usize, Arc<Slot>)>> = const { RefCell::new(None) };
}

fn sampler() -> Option<&'static Sampler> {
    let ptr = SAMPLER.load(Ordering::Acquire);
    // SAFETY: samplers are leaked, never freed: a non-null pointer stays valid.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

/// Whether sampling was started in this process.
pub fn is_started() -> bool {
    STARTED.load(Ordering::Acquire)
}

/// Starts the watchdog, sampling. `false` when sampling was already started. A watchdog
/// started for stuck-loop detection alone is replaced by one with `config`.
pub fn start(config: SamplerConfig) -> bool {
    let _spawning = SPAWNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if STARTED.swap(true, Ordering::AcqRel) {
        return false;
    }
    spawn(config);
    true
}

/// Starts the watchdog, not sampling, unless one runs (for stuck-loop detection).
pub fn ensure_watchdog() {
    let _spawning = SPAWNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if sampler().is_none() {
        spawn(SamplerConfig::default());
    }
}

fn spawn(config: SamplerConfig) {
    let sampler: &'static Sampler = Box::leak(Box::new(Sampler {
        config,
        slots: Mutex::new(Vec::new()),
    }));
    SAMPLER.store(std::ptr::from_ref(sampler).cast_mut(), Ordering::Release);
    let spawned = std::thread::Builder::new()
        .name("aiocop-cpu-sampler".into())
        .spawn(move || watchdog(sampler));
    if let Err(err) = spawned {
        tracing::error!("aiocop could not start its CPU sampler: {err}");
    }
}

/// In a child process after `fork()`: restart the watchdog (threads do not survive a fork).
pub fn after_fork_child() {
    SLOT.with(|slot| slot.borrow_mut().take());
    aiocop_hook::native::after_fork_child();
    if let Some(old) = sampler() {
        spawn(old.config);
    }
}

/// Marks the start of a slice (begun at `started_ns`, on [`aiocop_clock::now_ns`]'s clock) on this
/// thread. Returns the token for [`slice_end`], or `None` when sampling is off.
#[inline(always)]
pub(crate) fn slice_start(started_ns: u64) -> Option<u64> {
    let sampler = sampler()?;
    let slot = current_slot(sampler);
    // SAFETY: `slot` points into the `Arc` this thread's `SLOT` holds, which only this
    // thread replaces (in `current_slot`, not running now): valid for this statement.
    unsafe { (*slot).start_ns.store(started_ns, Ordering::Release) };
    Some(started_ns)
}

/// This thread's slot for `sampler` (made and registered the first time): a pointer into the
/// `Arc` the thread-local keeps. The closure is kept tiny so that the thread-local access is
/// inlined into the per-handle code.
#[inline(always)]
fn current_slot(sampler: &Sampler) -> *const Slot {
    let generation = std::ptr::from_ref(sampler) as usize;
    SLOT.with(|cell| match &*cell.borrow() {
        Some((g, slot)) if *g == generation => Some(Arc::as_ptr(slot)),
        _ => None,
    })
    .unwrap_or_else(|| install_slot(sampler, generation))
}

/// Makes and installs this thread's slot for `sampler` (once per thread and sampler).
#[cold]
#[inline(never)]
fn install_slot(sampler: &Sampler, generation: usize) -> *const Slot {
    let slot = new_slot(sampler);
    let ptr = Arc::as_ptr(&slot);
    SLOT.with(|cell| *cell.borrow_mut() = Some((generation, slot)));
    ptr
}

/// The slot this thread's `SLOT` holds, if any.
#[inline(always)]
fn installed_slot() -> Option<*const Slot> {
    SLOT.with(|cell| cell.borrow().as_ref().map(|(_, slot)| Arc::as_ptr(slot)))
}

/// This thread's slot, registered with the watchdog (once per thread and sampler).
#[cold]
#[inline(never)]
fn new_slot(sampler: &Sampler) -> Arc<Slot> {
    let slot = Arc::new(Slot {
        start_ns: AtomicU64::new(0),
        // SAFETY: called with the GIL held (from the loop wrapper), so this thread has a
        // current thread state.
        tstate: AtomicPtr::new(unsafe { ffi::PyThreadState_Get() }),
        // SAFETY: `pthread_self` has no preconditions.
        ident: unsafe { libc::pthread_self() } as u64,
        has_samples: AtomicBool::new(false),
        samples: Mutex::new((0, Vec::new())),
        watch: Watch::current_thread(),
        native: Target::current(),
    });
    sampler
        .slots
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Arc::downgrade(&slot));
    slot
}

/// Ends the slice started at `token`; returns its samples, if the watchdog took any, and what
/// else it saw of the thread during the slice.
#[inline(always)]
pub(crate) fn slice_end(token: Option<u64>) -> (Option<Vec<Vec<Frame>>>, Option<Watched>) {
    let Some(start) = token else {
        return (None, None);
    };
    let Some(slot) = installed_slot() else {
        return (None, None);
    };
    // SAFETY: `slot` points into the `Arc` this thread's `SLOT` holds, which only this
    // thread replaces (in `current_slot`, not running now): valid for this function.
    let slot = unsafe { &*slot };
    slot.start_ns.store(0, Ordering::Release);
    let watched = slot.watch.take(start);
    if !slot.has_samples.load(Ordering::Acquire) {
        return (None, watched);
    }
    (take_samples(slot, start), watched)
}

/// The samples the watchdog took of the slice started at `start` (rare: a long slice).
#[cold]
#[inline(never)]
fn take_samples(slot: &Slot, start: u64) -> Option<Vec<Vec<Frame>>> {
    if !slot.has_samples.swap(false, Ordering::AcqRel) {
        return None;
    }
    let mut guard = slot
        .samples
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (owner, samples) = &mut *guard;
    if *owner != start {
        samples.clear();
        return None;
    }
    Some(std::mem::take(samples))
}

fn watchdog(sampler: &'static Sampler) {
    let config = sampler.config;
    // The GIL-free reader and its cache of code objects, this thread's alone; made once
    // `aiocop_hook::remote::settle` turned GIL-free sampling on.
    let mut reader: Option<Reader> = None;
    // Per loop thread (its slot's address), the schedule of its stuck-loop reports.
    let mut stuck_states: HashMap<usize, StuckState> = HashMap::new();
    // Native frames under the GIL-free samples, once decided.
    let mut natives = Natives::default();
    loop {
        if !std::ptr::eq(SAMPLER.load(Ordering::Acquire), sampler) {
            return; // replaced (after a fork in a child that kept this thread? never) — stop.
        }
        aiocop_clock::recalibrate();
        natives.poll();
        let threshold = config::threshold_ns();
        let arm = config.effective_arm_after_ns(threshold);
        let slots: Vec<Arc<Slot>> = {
            let mut slots = sampler
                .slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slots.retain(|s| s.strong_count() > 0);
            slots.iter().filter_map(Weak::upgrade).collect()
        };
        let now = aiocop_clock::now_ns();
        let sampling = STARTED.load(Ordering::Acquire);
        let detection = stuck::current();
        if detection.is_none() {
            stuck_states.clear();
        }
        let mut next = NextWake::new();
        for slot in &slots {
            let start = slot.start_ns.load(Ordering::Acquire);
            if start == 0 {
                continue;
            }
            if sampling {
                slot.watch.running(start, &slot.start_ns);
            }
            if let Some(detection) = &detection {
                let key = Arc::as_ptr(slot) as usize;
                let state = stuck_states
                    .entry(key)
                    .or_insert_with(|| StuckState::new(detection.after_ns()));
                if state.after_ns() != detection.after_ns().max(1) {
                    *state = StuckState::new(detection.after_ns());
                }
                if let Some(number) = state.due(start, now) {
                    let readers = (&mut reader, &mut natives);
                    report_stuck(slot, start, number, detection, readers);
                }
                next.due_at(state.next_due_ns(start));
            }
            if sampling {
                if now.saturating_sub(start) >= arm {
                    let on_cpu = slot.watch.armed(start, &slot.start_ns);
                    sample(slot, start, config, on_cpu, (&mut reader, &mut natives));
                }
                next.sampled_handle(start, now, arm, config.interval_ns);
            }
        }
        if detection.is_some() {
            stuck_states.retain(|key, _| slots.iter().any(|s| Arc::as_ptr(s) as usize == *key));
        }
        // Until the next thing due, measured after the work done in this pass (reading native
        // frames takes some): samples of an armed handle stay one interval apart.
        let idle = config.effective_idle_ns(threshold);
        let sleep = next.sleep_ns(aiocop_clock::now_ns(), idle, config.interval_ns);
        std::thread::sleep(Duration::from_nanos(sleep));
    }
}

/// Takes a stack sample of the slice started at `start`, without the GIL where `reader` can;
/// `on_cpu` is the thread's state when the watchdog decided to (before it asked for the GIL).
fn sample(
    slot: &Slot,
    start: u64,
    config: SamplerConfig,
    on_cpu: Option<bool>,
    (reader, natives): (&mut Option<Reader>, &mut Natives),
) {
    {
        let guard = slot
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.0 == start && guard.1.len() >= config.max_samples_per_slice {
            return;
        }
    }
    let alive = aiocop_hook::compat::interpreter_alive();
    if !alive || crate::config::is_shutting_down() {
        return;
    }
    if reader.is_none() {
        *reader = aiocop_hook::remote::reader();
    }
    if let Some(gil_free) = reader.as_mut() {
        // Native frames only for a thread on CPU: one waiting in a system call is not signalled.
        let native = match on_cpu {
            Some(true) => natives.sampler(),
            _ => None,
        };
        let capture = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            capture_without_gil(gil_free, slot, start, config, native)
        }));
        match capture {
            Ok(Capture::Frames(frames)) => return store(slot, start, frames, config, on_cpu),
            Ok(Capture::SliceOver) => return,
            Ok(Capture::UnderTheGil) => {}
            Err(_) => {
                tracing::error!("panic in the aiocop GIL-free stack reader; it is off from now on");
                aiocop_hook::remote::give_up();
                *reader = None;
                return;
            }
        }
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Python::attach(|py| {
            // Under the GIL the loop thread cannot end its slice: if the start is unchanged
            // the thread is still inside the same handle, alive, and its frames are stable.
            if slot.start_ns.load(Ordering::Acquire) != start {
                return;
            }
            let tstate = slot.tstate.load(Ordering::Acquire);
            if aiocop_hook::remote::gil_free_sampling().is_none() {
                // SAFETY: GIL held; `tstate`'s thread is inside a monitored handle, hence
                // alive, and stopped while we hold the GIL.
                unsafe { aiocop_hook::remote::settle(py, tstate) };
            }
            let depth = config.trace_depth;
            // SAFETY: GIL held; `tstate`'s thread is inside a monitored handle, hence alive.
            let captured = unsafe { aiocop_hook::stack::capture_thread(py, tstate, depth) };
            if captured.is_empty() {
                return;
            }
            let frames = aiocop_hook::stack::resolve_frames(py, &captured, false);
            drop(captured);
            store(slot, start, frames, config, on_cpu);
        });
    }));
    if result.is_err() {
        tracing::error!("panic in the aiocop CPU sampler; sample dropped");
    }
}

/// Reports the slice started at `start` as stuck (report `number`), without the GIL: its stack
/// read by `reader` (else the last sample taken of it), the thread's state now. No report when
/// the slice ended meanwhile.
fn report_stuck(
    slot: &Slot,
    start: u64,
    number: u32,
    detection: &Detection,
    (reader, natives): (&mut Option<Reader>, &mut Natives),
) {
    let (on_cpu, blocked_in) = slot.watch.now();
    // A thread on CPU is asked for its native frames too (one waiting is not signalled).
    let native = if on_cpu == Some(true) {
        natives.sampler()
    } else {
        None
    };
    let stack = stuck_stack(slot, start, reader, native);
    if slot.start_ns.load(Ordering::Acquire) != start {
        return;
    }
    let report = StuckReport {
        thread_id: slot.ident,
        task_name: None,
        coroutine: aiocop_events::coroutine_of(&stack).map(str::to_owned),
        stuck_ns: aiocop_clock::now_ns().saturating_sub(start),
        stack,
        on_cpu,
        blocked_in,
        detected_at: stuck::monotonic_s(),
        report_number: number,
    };
    slot.watch.stuck_reported(start, number);
    detection.report(report);
}

/// The stack of `slot`'s thread for a stuck-loop report: read without the GIL (a few tries,
/// while it moves), with the native frames under it where `native` is given and the Python
/// stack did not move while they were taken; else the last sample the sampler took of the
/// slice started at `start`; else empty.
fn stuck_stack(
    slot: &Slot,
    start: u64,
    reader: &mut Option<Reader>,
    mut native: Option<&mut NativeSampler>,
) -> Vec<StuckFrame> {
    if reader.is_none() {
        *reader = aiocop_hook::remote::reader();
    }
    if let Some(gil_free) = reader.as_mut() {
        let tstate = slot.tstate.load(Ordering::Acquire) as usize;
        for _ in 0..3 {
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                gil_free.sample(tstate, STUCK_DEPTH)
            }));
            match read {
                Ok(Ok(frames)) if !frames.is_empty() => {
                    let natives = native.take().and_then(|native| {
                        crate::native_frames::under(native, slot.native, || {
                            slot.start_ns.load(Ordering::Acquire) == start
                                && gil_free.sample(tstate, STUCK_DEPTH).as_ref() == Ok(&frames)
                        })
                    });
                    let natives = natives.into_iter().flatten().map(|frame| StuckFrame {
                        file: frame.filename,
                        line: frame.line,
                        qualname: Arc::clone(&frame.function),
                        function: frame.function,
                        native: true,
                    });
                    let python = frames.iter().map(|frame| StuckFrame {
                        file: Arc::clone(&frame.filename),
                        line: frame.line,
                        function: Arc::clone(&frame.name),
                        qualname: Arc::clone(&frame.qualname),
                        native: false,
                    });
                    return natives.chain(python).collect();
                }
                Ok(_) => {}
                Err(_) => {
                    tracing::error!(
                        "panic in the aiocop GIL-free stack reader; it is off from now on"
                    );
                    aiocop_hook::remote::give_up();
                    *reader = None;
                    break;
                }
            }
        }
    }
    let guard = slot
        .samples
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match (guard.0 == start).then(|| guard.1.last()).flatten() {
        Some(frames) => frames
            .iter()
            .map(|frame| StuckFrame {
                file: Arc::clone(&frame.filename),
                line: frame.line,
                function: Arc::clone(&frame.function),
                qualname: frame.qualname().into(),
                native: false,
            })
            .collect(),
        None => Vec::new(),
    }
}

/// What reading a slice's stack without the GIL gave.
enum Capture {
    /// The stack, as a capture under the GIL would give it.
    Frames(Vec<Frame>),
    /// The slice ended while the stack was read: nothing to sample.
    SliceOver,
    /// No sample (the stack moved while read, a read failed): take the GIL to sample.
    UnderTheGil,
}

/// Reads the stack of `slot`'s thread without the GIL, with its native frames under it when
/// `native` is given; a sample counts only if the slice started at `start` was still running
/// once it was read.
fn capture_without_gil(
    reader: &mut Reader,
    slot: &Slot,
    start: u64,
    config: SamplerConfig,
    native: Option<&mut NativeSampler>,
) -> Capture {
    let tstate = slot.tstate.load(Ordering::Acquire) as usize;
    let read = reader.sample(tstate, config.trace_depth);
    if slot.start_ns.load(Ordering::Acquire) != start {
        return Capture::SliceOver;
    }
    match read {
        Ok(frames) if !frames.is_empty() => {
            let natives = native.and_then(|native| {
                crate::native_frames::under(native, slot.native, || {
                    slot.start_ns.load(Ordering::Acquire) == start
                        && reader.sample(tstate, config.trace_depth).as_ref() == Ok(&frames)
                })
            });
            let python = frames.iter().map(RemoteFrame::to_frame);
            Capture::Frames(natives.into_iter().flatten().chain(python).collect())
        }
        _ => Capture::UnderTheGil,
    }
}

/// Keeps `frames` as a sample of the slice started at `start` (up to the configured number).
fn store(slot: &Slot, start: u64, frames: Vec<Frame>, config: SamplerConfig, on_cpu: Option<bool>) {
    let mut guard = slot
        .samples
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if guard.0 != start {
        guard.0 = start;
        guard.1.clear();
    }
    if guard.1.len() < config.max_samples_per_slice {
        guard.1.push(frames);
        slot.watch.sampled(start, on_cpu);
    }
    slot.has_samples.store(true, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_arm_and_idle_follow_the_threshold() {
        let c = SamplerConfig::default();
        assert_eq!(c.effective_arm_after_ns(30_000_000), 15_000_000);
        assert_eq!(c.effective_arm_after_ns(1_000_000), 1_000_000);
        assert_eq!(c.effective_idle_ns(30_000_000), 15_000_000);
        assert_eq!(c.effective_idle_ns(1_000_000_000), 50_000_000);
        let explicit = SamplerConfig {
            arm_after_ns: Some(0),
            ..c
        };
        assert_eq!(explicit.effective_arm_after_ns(30_000_000), 0);
        assert_eq!(explicit.effective_idle_ns(30_000_000), 10_000_000);
    }
}
