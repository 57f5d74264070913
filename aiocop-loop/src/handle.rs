//! One monitored handle: [`begin_handle`] and [`end_handle`] (the pair [`run_monitored`] runs
//! an asyncio or uvloop handle between, and `trio_steps` a trio task step) time it, mark the
//! thread as "inside a monitored handle" for the audit hook, and on the fast path (nothing
//! recorded, under the threshold) are done; on the slow path it builds the event (in place for call sites formatted before) or
//! the slice for the background thread, and decides raise/warn at the end of the handle.

use std::sync::Arc;

use aiocop_aggregate::HandleRun;
use aiocop_events::{assemble, Reason, Slice, SlowTask, ThreadTime};
use aiocop_hook::DeferredArgs;
use aiocop_severity::{level_from_score, Level, THRESHOLD_HIGH};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::{self, Dispatch};
use crate::deliver::{deliver, high_severity_error};
use crate::dispatch;
use crate::event::{Identity, SliceObjects};
use crate::loop_state::LoopShared;
use crate::thread_watch::Watched;
use crate::{gc_time, registry, sampler};

/// Runs one monitored handle: `invoke()` (the call of `callback` with its arguments), timed,
/// with the thread marked as inside a monitored handle for the audit hook. The fast path
/// (nothing recorded, under the threshold) allocates nothing and touches no other thread.
pub(crate) fn run_monitored(
    py: Python<'_>,
    callback: &Bound<'_, PyAny>,
    invoke: impl FnOnce() -> PyResult<Py<PyAny>>,
    target: &Arc<LoopShared>,
) -> PyResult<Py<PyAny>> {
    let Some(begun) = begin_handle(py) else {
        return invoke();
    };
    let result = invoke();
    end_handle(begun, target, result, py, || {
        Identity::of_callback(callback)
    })
}

/// A handle begun ([`begin_handle`]) and not ended yet: what its end needs. Not `Send`: a
/// handle begins and ends on one thread.
pub(crate) struct HandleBegun {
    token: aiocop_hook::HandleToken,
    started_ns: u64,
    sampling: Option<u64>,
    /// The context providers' dict at the start of the handle.
    pre_context: Option<Py<PyDict>>,
}

/// The start of a monitored handle (an asyncio or uvloop handle, a trio task step): the thread
/// marked as inside a handle for the audit hook, the clock read, the sampler told. `None` when
/// the handle is not to be monitored: monitoring is off, or (with context providers) the
/// thread is inside a handle already.
#[inline(always)]
pub(crate) fn begin_handle(py: Python<'_>) -> Option<HandleBegun> {
    if !config::is_active() {
        return None;
    }
    // Context providers run before the handle is entered, so their own IO is not recorded; a
    // nested run (already inside a handle) is left to the outer one.
    let pre_context = if registry::has_providers() {
        if aiocop_hook::in_handle() {
            return None;
        }
        capture_context(py)
    } else {
        None
    };
    let token = aiocop_hook::enter_handle()?;
    let started_ns = aiocop_clock::now_ns();
    let sampling = sampler::slice_start(started_ns);
    Some(HandleBegun {
        token,
        started_ns,
        sampling,
        pre_context,
    })
}

/// The end of a handle begun with [`begin_handle`], whose own outcome is `result`: the fast
/// path (nothing recorded, under the threshold) returns it as it is; the slow path counts the
/// handle, makes its event for `target`'s delivery, and may replace `result` by the
/// `HighSeverityBlockingIoException` of raise-on-violations. `identity` (who the handle ran
/// for) is asked for only when an event is made.
#[inline(always)]
pub(crate) fn end_handle<T>(
    begun: HandleBegun,
    target: &Arc<LoopShared>,
    result: PyResult<T>,
    py: Python<'_>,
    identity: impl FnOnce() -> Identity,
) -> PyResult<T> {
    let HandleBegun {
        token,
        started_ns,
        sampling,
        pre_context,
    } = begun;
    let elapsed_ns = aiocop_clock::now_ns().saturating_sub(started_ns);
    let (samples, watched) = sampler::slice_end(sampling);
    let recorded = aiocop_hook::exit_handle(token);

    let threshold_ns = config::threshold_ns();
    if recorded.is_none() && elapsed_ns < threshold_ns {
        if target.has_ready() {
            pick_up(target);
        }
        return result; // the fast path
    }
    let end = HandleEnd {
        started_ns,
        elapsed_ns,
        threshold_ns,
        recorded: recorded.unwrap_or_default(),
        cpu_samples: samples.unwrap_or_default(),
        watched,
        pre_context,
    };
    after_slow_handle(py, identity, target, end, result)
}

/// What a handle that recorded a blocking call or ran over the threshold leaves for the slow
/// path.
struct HandleEnd {
    started_ns: u64,
    elapsed_ns: u64,
    threshold_ns: u64,
    recorded: aiocop_hook::Recorded,
    cpu_samples: Vec<Vec<aiocop_events::Frame>>,
    /// What the sampler's watchdog saw of the thread while the handle ran.
    watched: Option<Watched>,
    /// The context providers' dict at the start of the handle.
    pre_context: Option<Py<PyDict>>,
}

impl HandleEnd {
    /// Lets go of the Python objects the handle left, with the caller's GIL token (released at
    /// once, not through pyo3's pool of deferred releases).
    fn release(self, py: Python<'_>) {
        for record in self.recorded.records {
            record.release(py);
        }
        if let Some(context) = self.recorded.first_context {
            drop(context.into_bound(py));
        }
        if let Some(context) = self.pre_context {
            drop(context.into_bound(py));
        }
    }

    /// Counts the handle and its blocking calls in the per-call-site totals, if it makes a
    /// slow-task event (a blocking call, or over the threshold).
    fn count_in_totals(&self) {
        let records = &self.recorded.records;
        let (level, reason) = if records.is_empty() {
            if self.elapsed_ns < self.threshold_ns {
                return;
            }
            (Level::Low, Reason::CpuBlocking)
        } else {
            let score = aiocop_severity::score(records.iter().map(|r| Some(r.spec.weight)));
            (level_from_score(i64::from(score)), Reason::IoBlocking)
        };
        let run = HandleRun {
            elapsed_ns: self.elapsed_ns,
            level,
            reason,
        };
        aiocop_aggregate::record(run, records.iter().map(|r| (&r.stack, r.spec.name)));
    }
}

/// The context providers' dict at the start of a handle (only with providers registered).
#[cold]
#[inline(never)]
fn capture_context(py: Python<'_>) -> Option<Py<PyDict>> {
    registry::capture_context(py)
}

/// Schedules the delivery of pending events (now and then, not per handle): kept out of the
/// per-handle code so that what runs for every handle stays small and together.
#[cold]
#[inline(never)]
fn pick_up(target: &Arc<LoopShared>) {
    Python::attach(|py| target.pick_up(py));
}

/// The end of a handle that recorded a blocking call or ran over the threshold: counted in the
/// per-call-site totals; made into a slow-task event only for the callbacks or enforcement.
#[cold]
#[inline(never)]
fn after_slow_handle<T>(
    py: Python<'_>,
    identity: impl FnOnce() -> Identity,
    target: &Arc<LoopShared>,
    end: HandleEnd,
    result: PyResult<T>,
) -> PyResult<T> {
    end.count_in_totals();
    // Now and then: refine the clock's rate (the background threads do it too, when awake).
    aiocop_clock::recalibrate();
    // The caller's token, not a real attach (`PyGILState_Ensure` and its release, on every
    // event): the slow path moves the Python objects it holds into the event (released on
    // delivery, under pyo3's own count) and, in the usual case, drops none here. One that it
    // does drop (context providers' dicts merged, an error's value) waits in pyo3's pool until
    // the next call into the module.
    if target.has_ready() {
        target.pick_up(py);
    }
    if !registry::has_callbacks() && end.recorded.violation_mode.is_none() {
        // Nobody to deliver an event to, nothing to enforce: the totals suffice.
        end.release(py);
        return result;
    }
    slow_path(py, target, end, identity(), result)
}

fn slow_path<T>(
    py: Python<'_>,
    target: &Arc<LoopShared>,
    end: HandleEnd,
    identity: Identity,
    result: PyResult<T>,
) -> PyResult<T> {
    let HandleEnd {
        started_ns,
        elapsed_ns,
        threshold_ns,
        recorded,
        cpu_samples,
        watched,
        pre_context,
    } = end;
    // First, while the thread's CPU clock is closest to the handle's end.
    let (thread_time, cpu_sample_on_cpu) = thread_time(started_ns, elapsed_ns, watched);
    let post_context = if registry::has_providers() {
        capture_context(py)
    } else {
        None
    };
    let has_records = !recorded.records.is_empty();
    let context: Option<Py<PyAny>> = if has_records {
        recorded
            .first_context
            .or_else(|| merge(py, pre_context, post_context))
    } else {
        merge(py, pre_context, post_context)
    };
    if has_records
        && recorded.violation_mode.is_none()
        && cpu_samples.is_empty()
        && config::dispatch() == Dispatch::Background
        && target.can_queue_here()
        && recorded.records.iter().all(|r| r.stack.is_formatted())
    {
        // The usual event (blocking calls from call sites seen before, no samples, nothing to
        // enforce): made here in one pass over the records, without a slice.
        let (task, args) = io_event(
            py,
            elapsed_ns,
            threshold_ns,
            recorded.records,
            recorded.dropped,
        );
        let task = task.with_thread_time(elapsed_ns, &thread_time);
        let objects = SliceObjects {
            context,
            identity,
            args,
        };
        target.queue_here(py, task, objects);
        return result;
    }
    // The calls' argument text is made when the event's blocking_events is read (most
    // callbacks never do), from the argument tuples the event keeps.
    let mut records = Vec::with_capacity(recorded.records.len());
    let mut args = Vec::with_capacity(recorded.records.len());
    for record in recorded.records {
        let (record, deferred) = record.into_deferred(py);
        records.push(record);
        args.push(deferred);
    }
    let mut slice = Slice {
        elapsed_ns,
        threshold_ns,
        records,
        cpu_samples,
        cpu_sample_on_cpu,
        dropped_records: recorded.dropped,
        thread_time,
    };
    let violation = result.is_ok()
        && recorded.violation_mode.is_some()
        && has_records
        && slice.exceeded_threshold()
        && slice.score() >= THRESHOLD_HIGH;
    let objects = SliceObjects {
        context,
        identity,
        args,
    };
    let error = if violation {
        violation_error(py, &mut slice, &objects, recorded.violation_mode)
    } else {
        None
    };
    match config::dispatch() {
        Dispatch::Inline => deliver_inline(py, &slice, objects),
        // A slice with nothing left to format is assembled here: cheaper than the hand-off.
        Dispatch::Background if slice.is_reportable() && target.can_assemble_here(&slice) => {
            if let Some(task) = assemble(&slice) {
                target.queue_here(py, task, objects);
            }
        }
        Dispatch::Background => {
            if slice.is_reportable() {
                dispatch::send(py, slice, objects, target);
            }
        }
    }
    match error {
        Some(err) => Err(err),
        None => result,
    }
}

/// Where the handle's time went (see `thread_watch` and `gc_time`), and each CPU sample's
/// state: read on the slow path only (the thread's CPU clock, when the watchdog saw the handle).
fn thread_time(
    started_ns: u64,
    elapsed_ns: u64,
    watched: Option<Watched>,
) -> (ThreadTime, Vec<Option<bool>>) {
    let (mut time, on_cpu) = match watched {
        Some(watched) => (watched.thread_time(started_ns, elapsed_ns), watched.on_cpu),
        None => (ThreadTime::default(), Vec::new()),
    };
    time.gc_ns = gc_time::handle_gc_ns();
    (time, on_cpu)
}

/// The `io_blocking` event of a handle's records, their text deferred (see [`slow_path`]).
fn io_event(
    py: Python<'_>,
    elapsed_ns: u64,
    threshold_ns: u64,
    records: Vec<aiocop_hook::PendingRecord>,
    dropped: u32,
) -> (SlowTask, Vec<DeferredArgs>) {
    let mut events = Vec::with_capacity(records.len());
    let mut args = Vec::with_capacity(records.len());
    for record in records {
        let (event, deferred) = record.into_event(py);
        events.push(event);
        args.push(deferred);
    }
    let task = SlowTask::io_blocking(elapsed_ns, threshold_ns, events, dropped);
    (task, args)
}

/// A handle that broke raise/warn mode: the `HighSeverityBlockingIoException` to raise, or
/// `None` after logging the warning. The calls' text is made now (the message shows them).
#[cold]
#[inline(never)]
fn violation_error(
    py: Python<'_>,
    slice: &mut Slice,
    objects: &SliceObjects,
    mode: Option<aiocop_hook::enforce::Mode>,
) -> Option<PyErr> {
    for (record, args) in slice.records.iter_mut().zip(&objects.args) {
        record.args = args.resolve(py);
    }
    match mode.unwrap_or_else(|| aiocop_hook::enforce::mode(py)) {
        aiocop_hook::enforce::Mode::Raise => {
            assemble(slice).map(|task| high_severity_error(py, &task, objects))
        }
        aiocop_hook::enforce::Mode::Warn => {
            if let Some(task) = assemble(slice) {
                warn_violation(py, &task);
            }
            None
        }
    }
}

/// `dispatch="inline"`: assemble and deliver right after the handle.
#[cold]
#[inline(never)]
fn deliver_inline(py: Python<'_>, slice: &Slice, objects: SliceObjects) {
    if let Some(task) = assemble(slice) {
        deliver(py, task, objects, &registry::callbacks(py));
    }
}

/// Warn mode at the end of a handle: log once per call site (the first blocking call's event
/// name and site), with a rule that would allow it.
fn warn_violation(py: Python<'_>, task: &aiocop_events::SlowTask) {
    let Some(first) = task.blocking_events.first() else {
        return;
    };
    let key = format!("handle:{}@{}", first.name, first.site());
    let calls: Vec<String> = task
        .blocking_events
        .iter()
        .map(|e| format!("{} at {}", e.event, e.user_trace()))
        .collect();
    let mut message = format!(
        "high severity blocking IO (score {}) in a {:.2} ms handle (threshold {:.2} ms): {}",
        task.severity_score,
        task.elapsed_ms,
        task.threshold_ms,
        calls.join("; ")
    );
    if let Some(rule) = first.suggested_rule() {
        message.push_str(&format!("; allow it with aiocop.allow({rule:?})"));
    }
    aiocop_hook::pylog::warning_once(py, &key, &message);
}

/// Start values, overridden by the end values that are not `None`.
fn merge(py: Python<'_>, pre: Option<Py<PyDict>>, post: Option<Py<PyDict>>) -> Option<Py<PyAny>> {
    match (pre, post) {
        (None, None) => None,
        (Some(pre), None) => Some(pre.into_any()),
        (None, Some(post)) => Some(post.into_any()),
        (Some(pre), Some(post)) => Some(merge_dicts(py, pre, post)),
    }
}

/// `pre` updated with the values of `post` that are not `None` (context providers at both
/// ends of the handle: rare, so out of line).
#[cold]
#[inline(never)]
fn merge_dicts(py: Python<'_>, pre: Py<PyDict>, post: Py<PyDict>) -> Py<PyAny> {
    let pre = pre.bind(py);
    for (key, value) in post.bind(py).iter() {
        if !value.is_none() && pre.set_item(key, value).is_err() {
            PyErr::take(py);
        }
    }
    pre.clone().into_any().unbind()
}
