//! The loop wrapper: `call_soon`, `call_later`, `call_at` and `call_soon_threadsafe` of a loop
//! are replaced (as instance attributes of an asyncio loop, as attributes of a class of its own
//! for any other loop: both are what the C Task and uvloop look up) by native
//! methods (`crate::native`) that wrap the callback in a `MonitoredCallback`. Running it
//! ([`run_monitored`]) times the handle, marks the thread as "inside a monitored handle" for the
//! audit hook, and on the slow path only builds the slice and hands it over.

use std::sync::Arc;

use aiocop_events::{assemble, Slice, SlowTask};
use aiocop_hook::DeferredArgs;
use aiocop_severity::THRESHOLD_HIGH;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::config::{self, Dispatch};
use crate::deliver::{deliver, high_severity_error};
use crate::dispatch::{self, LoopShared};
use crate::event::{Identity, SliceObjects};
use crate::{registry, sampler};

/// Runs one monitored handle: `invoke()` (the call of `callback` with its arguments), timed,
/// with the thread marked as inside a monitored handle for the audit hook. The fast path
/// (nothing recorded, under the threshold) allocates nothing and touches no other thread.
pub(crate) fn run_monitored(
    py: Python<'_>,
    callback: &Bound<'_, PyAny>,
    invoke: impl FnOnce() -> PyResult<Py<PyAny>>,
    target: &Arc<LoopShared>,
) -> PyResult<Py<PyAny>> {
    if !config::is_active() {
        return invoke();
    }
    // Context providers run before the handle is entered, so their own IO is not recorded; a
    // nested run (already inside a handle) is left to the outer one.
    let pre_context = if registry::has_providers() {
        if aiocop_hook::in_handle() {
            return invoke();
        }
        capture_context(py)
    } else {
        None
    };
    let Some(token) = aiocop_hook::enter_handle() else {
        return invoke();
    };
    let started_ns = aiocop_clock::now_ns();
    let sampling = sampler::slice_start(started_ns);
    let result = invoke();
    let elapsed_ns = aiocop_clock::now_ns().saturating_sub(started_ns);
    let samples = sampler::slice_end(sampling);
    let recorded = aiocop_hook::exit_handle(token);

    let threshold_ns = config::threshold_ns();
    if recorded.is_none() && elapsed_ns < threshold_ns {
        if target.has_ready() {
            pick_up(target);
        }
        return result; // the fast path
    }
    after_slow_handle(
        callback,
        target,
        elapsed_ns,
        threshold_ns,
        recorded,
        samples,
        pre_context,
        result,
    )
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

/// The end of a handle that recorded a blocking call or ran over the threshold.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn after_slow_handle(
    callback: &Bound<'_, PyAny>,
    target: &Arc<LoopShared>,
    elapsed_ns: u64,
    threshold_ns: u64,
    recorded: Option<aiocop_hook::Recorded>,
    samples: Option<Vec<Vec<aiocop_events::Frame>>>,
    pre_context: Option<Py<PyDict>>,
    result: PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let identity = Identity::of_callback(callback);
    // Now and then: refine the clock's rate (the background threads do it too, when awake).
    aiocop_clock::recalibrate();
    // The caller's token, not a real attach (`PyGILState_Ensure` and its release, on every
    // event): the slow path moves the Python objects it holds into the event (released on
    // delivery, under pyo3's own count) and, in the usual case, drops none here. One that it
    // does drop (context providers' dicts merged, an error's value) waits in pyo3's pool until
    // the next call into the module.
    let py = callback.py();
    if target.has_ready() {
        target.pick_up(py);
    }
    slow_path(
        py,
        target,
        elapsed_ns,
        threshold_ns,
        recorded.unwrap_or_default(),
        samples.unwrap_or_default(),
        pre_context,
        identity,
        result,
    )
}

#[allow(clippy::too_many_arguments)]
fn slow_path(
    py: Python<'_>,
    target: &Arc<LoopShared>,
    elapsed_ns: u64,
    threshold_ns: u64,
    recorded: aiocop_hook::Recorded,
    cpu_samples: Vec<Vec<aiocop_events::Frame>>,
    pre_context: Option<Py<PyDict>>,
    identity: Identity,
    result: PyResult<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
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
        dropped_records: recorded.dropped,
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
                dispatch::send(slice, objects, target);
            }
        }
    }
    match error {
        Some(err) => Err(err),
        None => result,
    }
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

/// The state installed on a monitored loop: the original scheduling methods (which the native
/// replacements in [`crate::native`] forward to) and the loop's shared state.
#[pyclass(frozen, module = "aiocop._aiocop", name = "LoopPatch")]
#[derive(Debug)]
pub struct LoopPatch {
    shared: Arc<LoopShared>,
    /// `call_soon`, `call_later`, `call_at`, `call_soon_threadsafe`, as bound before patching.
    originals: [Py<PyAny>; 4],
    call_exception_handler_orig: Py<PyAny>,
    /// Set for a stock asyncio loop: `call_soon` does the stock steps itself.
    direct: Option<crate::native::DirectCallSoon>,
}

impl LoopPatch {
    /// The loop state shared with the background thread.
    pub fn shared(&self) -> &Arc<LoopShared> {
        &self.shared
    }

    /// An original scheduling method, by index (see `originals`).
    pub(crate) fn original(&self, index: usize) -> &Py<PyAny> {
        &self.originals[index.min(3)]
    }

    /// What the `call_soon` replacement needs to do a stock asyncio `call_soon` itself.
    pub(crate) fn direct(&self) -> Option<&crate::native::DirectCallSoon> {
        self.direct.as_ref()
    }
}

#[pymethods]
impl LoopPatch {
    /// Lets `HighSeverityBlockingIoException` propagate out of the loop run; everything else
    /// goes to the loop's own handler.
    fn call_exception_handler<'py>(
        &self,
        py: Python<'py>,
        context: Bound<'py, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        if let Some(types) = registry::python_types() {
            if let Ok(exc) = context.get_item("exception") {
                if exc.is_instance(types.high_severity_exception.bind(py))? {
                    return Err(PyErr::from_value(exc));
                }
            }
        }
        self.call_exception_handler_orig
            .bind(py)
            .call1((context,))
            .map(Bound::unbind)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for original in &self.originals {
            visit.call(original)?;
        }
        visit.call(&self.call_exception_handler_orig)?;
        if let Some(direct) = &self.direct {
            direct.traverse(&visit)?;
        }
        Ok(())
    }
}

/// Patches `event_loop` (running on the current thread) unless it already is. Returns `true`
/// when it patched it now.
pub fn patch_loop(event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = event_loop.py();
    crate::native::init_types(py)?;
    if loop_patch(event_loop).is_some() {
        return Ok(false);
    }
    let original = |name: &str| event_loop.getattr(name).map(Bound::unbind);
    let patch = Bound::new(
        py,
        LoopPatch {
            shared: LoopShared::new(event_loop)?,
            originals: [
                original("call_soon")?,
                original("call_later")?,
                original("call_at")?,
                original("call_soon_threadsafe")?,
            ],
            call_exception_handler_orig: original("call_exception_handler")?,
            direct: crate::native::DirectCallSoon::for_loop(event_loop),
        },
    )?;
    let mut methods = crate::native::bound_replacements(&patch)?;
    methods.push((
        "call_exception_handler",
        patch.getattr("call_exception_handler")?,
    ));
    if is_asyncio_loop(event_loop) || !patch_class(event_loop, &methods)? {
        // No attribute of our own beyond the five methods: an asyncio loop keeps its
        // attributes in the class's shared-key layout only while they fit (30 on 3.11; the
        // stock loop has 24), and a loop whose instance dict had to be materialised loses
        // CPython's specialised method lookups on every `self.method()` in asyncio's own code.
        // The patch is found through the replacement `call_soon` instead (`loop_patch`), and
        // `close` is wrapped on the class.
        for (name, method) in methods {
            event_loop.setattr(name, method)?;
        }
        crate::loop_end::wrap_class_close(&event_loop.get_type())?;
    }
    Ok(true)
}

/// Whether `event_loop` is one of asyncio's own loops (a `BaseEventLoop`): those get the
/// five methods as instance attributes, which fit their compact attribute layout.
fn is_asyncio_loop(event_loop: &Bound<'_, PyAny>) -> bool {
    event_loop
        .py()
        .import("asyncio.base_events")
        .and_then(|m| m.getattr("BaseEventLoop"))
        .and_then(|base| event_loop.is_instance(&base))
        .unwrap_or(false)
}

/// Gives `event_loop` a class of its own: a subclass of its class, with the same name, module
/// and no slots of its own, holding the five `methods` and our `close`
/// ([`crate::loop_end::ClosingMethod`]). Returns `false` (and changes nothing)
/// where no subclass can be made or CPython refuses the class change.
///
/// Any other loop (uvloop's) gets no attribute dict this way: instance attributes would
/// create one (uvloop allocates its loops without the compact attribute values), and CPython
/// specialises `loop.method()` lookups (`LOAD_METHOD`) only for an instance without a dict,
/// so every lookup of any of the loop's methods, from asyncio's Python code and from
/// uvicorn's, would take the generic path.
fn patch_class(
    event_loop: &Bound<'_, PyAny>,
    methods: &[(&'static str, Bound<'_, PyAny>)],
) -> PyResult<bool> {
    let py = event_loop.py();
    let class = event_loop.get_type();
    let namespace = PyDict::new(py);
    for (name, method) in methods {
        namespace.set_item(*name, method)?;
    }
    namespace.set_item("close", crate::loop_end::ClosingMethod::for_class(&class)?)?;
    for name in ["__module__", "__qualname__", "__doc__"] {
        if let Ok(value) = class.getattr(name) {
            namespace.set_item(name, value)?;
        }
    }
    namespace.set_item("__slots__", PyTuple::empty(py))?;
    let Ok(subclass) = class
        .get_type()
        .call1((class.name()?, (&class,), namespace))
    else {
        return Ok(false);
    };
    match event_loop.setattr("__class__", subclass) {
        Ok(()) => Ok(true),
        Err(err) if err.is_instance_of::<pyo3::exceptions::PyTypeError>(py) => Ok(false),
        Err(err) => Err(err),
    }
}

/// The patch of `event_loop`, if it is patched: the object our `call_soon` replacement is
/// bound to.
pub fn loop_patch<'py>(event_loop: &Bound<'py, PyAny>) -> Option<Bound<'py, LoopPatch>> {
    let py = event_loop.py();
    let call_soon = event_loop.getattr(pyo3::intern!(py, "call_soon")).ok()?;
    // SAFETY: GIL held; `call_soon` is a valid object.
    if unsafe { pyo3::ffi::PyCFunction_Check(call_soon.as_ptr()) } == 0 {
        return None;
    }
    // SAFETY: a builtin function or method; `PyCFunction_GetSelf` returns a borrowed
    // reference (or NULL for a module-less plain function).
    let owner = unsafe { pyo3::ffi::PyCFunction_GetSelf(call_soon.as_ptr()) };
    if owner.is_null() {
        return None;
    }
    // SAFETY: a valid borrowed reference; we take our own.
    let owner = unsafe { Bound::from_borrowed_ptr(py, owner) };
    owner.cast_into::<LoopPatch>().ok()
}

/// The running loop of this thread, if any.
pub fn running_loop(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    py.import("asyncio")
        .and_then(|m| m.getattr("_get_running_loop"))
        .and_then(|f| f.call0())
        .ok()
        .filter(|l| !l.is_none())
}
