//! `aiocop.SlowTaskEvent`: the object every slow-task callback receives.
//!
//! aiocop 1.2.1's `SlowTaskEvent` is a frozen dataclass, and users treat ours as one:
//! `dataclasses.fields/asdict/replace`, `==`, `repr`, `vars`, pickling, pattern matching,
//! building one by hand in a test. Ours is a native class with the same constructor and fields;
//! the Python package gives it the dataclass's own metadata and generated `__repr__`, `__eq__`
//! and `__hash__` (`aiocop/types/events.py`), so those behave exactly as the dataclass's do.
//!
//! What it adds: an event built by the monitor keeps the assembled [`SlowTask`] and turns a
//! field into a Python object only when it is first read (then keeps it, so a field reads as
//! the same object every time and a mutated list stays mutated). A callback that looks at
//! `exceeded_threshold` or `severity_level` and returns — the usual production callback — never
//! pays for the blocking-event dicts, the trace strings or the sample list.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use aiocop_events::{BlockingEvent, CpuSample, FastBuildHasher, SlowTask, Stack};
use aiocop_hook::enforce::TaskNames;
use aiocop_hook::DeferredArgs;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

/// The fields, in aiocop 1.2.1's order, ours (the task identity, where the time went) last.
const FIELD_NAMES: [&str; FIELDS] = [
    "elapsed_ms",
    "threshold_ms",
    "exceeded_threshold",
    "severity_score",
    "severity_level",
    "reason",
    "blocking_events",
    "context",
    "cpu_stack_samples",
    "task_name",
    "coroutine",
    "cpu_ms",
    "wait_ms",
    "blocked_in",
    "gc_ms",
    "stuck_reports",
];
const FIELDS: usize = 16;
/// The first seven have no default.
const REQUIRED: usize = 7;

const ELAPSED_MS: usize = 0;
const THRESHOLD_MS: usize = 1;
const EXCEEDED_THRESHOLD: usize = 2;
const SEVERITY_SCORE: usize = 3;
const SEVERITY_LEVEL: usize = 4;
const REASON: usize = 5;
const BLOCKING_EVENTS: usize = 6;
const CONTEXT: usize = 7;
const CPU_STACK_SAMPLES: usize = 8;
const TASK_NAME: usize = 9;
const COROUTINE: usize = 10;
const CPU_MS: usize = 11;
const WAIT_MS: usize = 12;
const BLOCKED_IN: usize = 13;
const GC_MS: usize = 14;
const STUCK_REPORTS: usize = 15;

/// Who a slice ran for, kept as the objects the names are read from. Reading a task's name
/// formats it (`Task-12`) and, with the coroutine's `__qualname__`, costs more than the rest of
/// a delivered event, so the names are read only when the event's `task_name`, `coroutine` or
/// `blocking_events` is, or when the event outlives its delivery.
#[derive(Debug)]
pub(crate) enum Identity {
    /// The handle's callback, not looked into yet: a task's step (whose `__self__` is the task)
    /// or any other callable. Looking into it at the end of every slow handle (an attribute
    /// read and a method call) cost more than the rest of the slow path on some programs
    /// (their attribute lookups also evict hot entries from CPython's type cache), so it waits
    /// until a name is wanted. A task whose step was scheduled did not complete eagerly, so
    /// its `get_coro()` still answers then.
    Callback(Py<PyAny>),
    /// The names themselves (`str`, or `None`).
    Names(Option<Py<PyAny>>, Option<Py<PyAny>>),
}

impl Default for Identity {
    fn default() -> Self {
        Identity::Names(None, None)
    }
}

impl Identity {
    /// Who `callback` runs for, read later ([`Identity::names`]).
    pub(crate) fn of_callback(callback: &Bound<'_, PyAny>) -> Self {
        Identity::Callback(callback.clone().unbind())
    }

    /// `(task name, qualname)`: `str` objects, or `None`. For a task's step, the task's name
    /// and its coroutine's qualname; for a plain callback, its `__qualname__` (the function's,
    /// for a `functools.partial`). Leaves no exception set.
    pub(crate) fn names(&self, py: Python<'_>) -> TaskNames {
        use aiocop_hook::enforce::{str_or_none, task_names};
        let names = match self {
            Identity::Callback(callback) => {
                let callback = callback.bind(py);
                let of_task = callback
                    .getattr(pyo3::intern!(py, "__self__"))
                    .ok()
                    .and_then(|owner| task_names(&owner));
                PyErr::take(py);
                of_task.unwrap_or_else(|| {
                    let target = callback
                        .getattr(pyo3::intern!(py, "func")) // functools.partial
                        .unwrap_or_else(|_| callback.clone());
                    PyErr::take(py);
                    (
                        None,
                        str_or_none(target.getattr(pyo3::intern!(py, "__qualname__"))),
                    )
                })
            }
            Identity::Names(name, qualname) => (
                name.as_ref().map(|n| n.clone_ref(py)),
                qualname.as_ref().map(|q| q.clone_ref(py)),
            ),
        };
        PyErr::take(py);
        names
    }

    fn clone_ref(&self, py: Python<'_>) -> Self {
        match self {
            Identity::Callback(callback) => Identity::Callback(callback.clone_ref(py)),
            Identity::Names(name, qualname) => Identity::Names(
                name.as_ref().map(|n| n.clone_ref(py)),
                qualname.as_ref().map(|q| q.clone_ref(py)),
            ),
        }
    }

    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Identity::Callback(callback) => visit.call(callback),
            Identity::Names(name, qualname) => {
                visit.call(name)?;
                visit.call(qualname)
            }
        }
    }
}

/// The Python objects that travel with a slice, untouched, from the end of its handle to the
/// event: the user's context and who the slice ran for.
#[derive(Debug, Default)]
pub(crate) struct SliceObjects {
    /// The merged context-provider dict, if any.
    pub(crate) context: Option<Py<PyAny>>,
    /// The task or callback the handle ran.
    pub(crate) identity: Identity,
    /// Per blocking event, in order: what its text is made from when it was deferred.
    pub(crate) args: Vec<DeferredArgs>,
}

/// A handle that blocked the loop: it made blocking calls, or ran past the threshold.
#[derive(Debug)]
#[pyclass(
    module = "aiocop.types.events",
    name = "SlowTaskEvent",
    subclass,
    weakref
)]
pub struct SlowTaskEvent {
    /// A field's object, once given (constructor) or built (first read).
    values: [Option<Py<PyAny>>; FIELDS],
    /// What the fields not built yet are built from (events made by the monitor).
    source: Option<SlowTask>,
    /// Who the slice ran for, until the names are read (events made by the monitor).
    identity: Option<Identity>,
    /// What the deferred text of each blocking event is made from, until it is.
    args: Vec<DeferredArgs>,
}

impl SlowTaskEvent {
    /// The event for an assembled slice; its fields are built when first read.
    pub(crate) fn delivered(task: SlowTask, objects: SliceObjects) -> Self {
        let mut values: [Option<Py<PyAny>>; FIELDS] = Default::default();
        values[CONTEXT] = objects.context;
        Self {
            values,
            source: Some(task),
            identity: Some(objects.identity),
            args: objects.args,
        }
    }

    /// Reads the task identity and the calls' arguments now: the event outlives its delivery,
    /// so what it shows should be what they were then, and it should not keep the task or the
    /// arguments alive.
    pub(crate) fn settle(slf: &Bound<'_, Self>) {
        // Errors were cleared by `Identity::names`; a failed borrow leaves the fields unread.
        let _ = Self::field(slf, TASK_NAME);
        let _ = Self::field(slf, BLOCKING_EVENTS);
    }

    /// Field `index`, built and kept on first read. No borrow of the event is held while
    /// Python code may run (building objects can run a finalizer that reads this event).
    fn field(slf: &Bound<'_, Self>, index: usize) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if let Some(value) = &slf.try_borrow()?.values[index] {
            return Ok(value.clone_ref(py));
        }
        if index == TASK_NAME || index == COROUTINE {
            return Self::identity_field(slf, index);
        }
        let built = Self::build(slf, index)?;
        let stored = slf.try_borrow_mut()?.values[index]
            .get_or_insert_with(|| built.clone_ref(py))
            .clone_ref(py);
        drop(built);
        Ok(stored)
    }

    fn identity_field(slf: &Bound<'_, Self>, index: usize) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let identity = slf
            .try_borrow()?
            .identity
            .as_ref()
            .map(|identity| identity.clone_ref(py));
        let (name, qualname) = identity.map(|i| i.names(py)).unwrap_or_default();
        let none = || py.None();
        let (stored, released) = {
            let mut this = slf.try_borrow_mut()?;
            this.values[TASK_NAME].get_or_insert_with(|| name.unwrap_or_else(none));
            this.values[COROUTINE].get_or_insert_with(|| qualname.unwrap_or_else(none));
            (
                this.values[index]
                    .as_ref()
                    .map_or_else(none, |v| v.clone_ref(py)),
                this.identity.take(),
            )
        };
        drop(released);
        Ok(stored)
    }

    fn build(slf: &Bound<'_, Self>, index: usize) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        match index {
            // New containers (allocations that may run the cycle collector, hence finalizers):
            // built from a copy, with no borrow held.
            CONTEXT => return Ok(PyDict::new(py).into_any().unbind()),
            BLOCKING_EVENTS => return Self::build_blocking_events(slf),
            CPU_STACK_SAMPLES => {
                let samples = slf
                    .try_borrow()?
                    .source
                    .as_ref()
                    .map(|task| task.cpu_stack_samples.clone())
                    .unwrap_or_default();
                return Ok(cpu_samples(py, &samples)?.into_any().unbind());
            }
            _ => {}
        }
        // Scalars: floats, cached ints and bools, interned strings; nothing here runs Python code.
        let this = slf.try_borrow()?;
        let Some(task) = &this.source else {
            // Every field of a constructed event is given; `__clear__` may have emptied them.
            return Ok(py.None());
        };
        let value = match index {
            ELAPSED_MS => task.elapsed_ms.into_pyobject(py)?.into_any(),
            THRESHOLD_MS => task.threshold_ms.into_pyobject(py)?.into_any(),
            EXCEEDED_THRESHOLD => task
                .exceeded_threshold
                .into_pyobject(py)?
                .to_owned()
                .into_any(),
            SEVERITY_SCORE => task.severity_score.into_pyobject(py)?.into_any(),
            SEVERITY_LEVEL => PyString::intern(py, task.severity_level.as_str()).into_any(),
            REASON => PyString::intern(py, task.reason.as_str()).into_any(),
            CPU_MS => task.cpu_ms.into_pyobject(py)?.into_any(),
            WAIT_MS => task.wait_ms.into_pyobject(py)?.into_any(),
            GC_MS => task.gc_ms.into_pyobject(py)?.into_any(),
            STUCK_REPORTS => task.stuck_reports.into_pyobject(py)?.into_any(),
            BLOCKED_IN => match &task.blocked_in {
                Some(name) => PyString::intern(py, name).into_any(),
                None => py.None().into_bound(py),
            },
            _ => py.None().into_bound(py),
        };
        Ok(value.unbind())
    }

    /// The `blocking_events` list; the calls' deferred argument text is made now (`str()` of
    /// each argument), then the argument objects are let go.
    fn build_blocking_events(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let task_name = Self::field(slf, TASK_NAME)?;
        let coroutine = Self::field(slf, COROUTINE)?;
        let (events, args) = {
            let this = slf.try_borrow()?;
            let events = this
                .source
                .as_ref()
                .map(|task| task.blocking_events.clone())
                .unwrap_or_default();
            let args: Vec<DeferredArgs> = this
                .args
                .iter()
                .map(|a| DeferredArgs {
                    name: a.name,
                    args: a.args.clone_ref(py),
                    call: a.call,
                })
                .collect();
            (events, args)
        };
        let list = blocking_events(py, &events, &args, task_name.bind(py), coroutine.bind(py))?;
        let released = std::mem::take(&mut slf.try_borrow_mut()?.args);
        drop(released);
        Ok(list.into_any().unbind())
    }

    fn all_fields(slf: &Bound<'_, Self>) -> PyResult<Vec<Py<PyAny>>> {
        (0..FIELDS).map(|index| Self::field(slf, index)).collect()
    }
}

fn frozen_error(py: Python<'_>, message: String) -> PyErr {
    static FROZEN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    match FROZEN.get_or_try_init(py, || {
        py.import("dataclasses")?
            .getattr("FrozenInstanceError")
            .map(Bound::unbind)
    }) {
        Ok(cls) => match cls.bind(py).call1((message,)) {
            Ok(exc) => PyErr::from_value(exc),
            Err(err) => err,
        },
        Err(err) => err,
    }
}

/// The dataclass's `__init__` error for a call that binds arguments wrongly.
fn init_error(message: &str) -> PyErr {
    PyTypeError::new_err(format!("SlowTaskEvent.__init__() {message}"))
}

fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
        [] => String::new(),
    }
}

#[pymethods]
impl SlowTaskEvent {
    /// `SlowTaskEvent(elapsed_ms, threshold_ms, exceeded_threshold, severity_score,
    /// severity_level, reason, blocking_events, context={}, cpu_stack_samples=[],
    /// task_name=None, coroutine=None, cpu_ms=None, wait_ms=None, blocked_in=None,
    /// gc_ms=None, stuck_reports=0)`, bound as the dataclass's `__init__` binds them.
    #[new]
    #[pyo3(signature = (*args, **kwargs))]
    fn new(
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let mut values: [Option<Py<PyAny>>; FIELDS] = Default::default();
        if args.len() > FIELDS {
            return Err(init_error(&format!(
                "takes from {} to {} positional arguments but {} were given",
                REQUIRED + 1,
                FIELDS + 1,
                args.len() + 1
            )));
        }
        for (slot, value) in values.iter_mut().zip(args.iter()) {
            *slot = Some(value.unbind());
        }
        if let Some(kwargs) = kwargs {
            for (key, value) in kwargs.iter() {
                let name: String = key.extract()?;
                let Some(index) = FIELD_NAMES.iter().position(|f| *f == name) else {
                    return Err(init_error(&format!(
                        "got an unexpected keyword argument '{name}'"
                    )));
                };
                if values[index].is_some() {
                    return Err(init_error(&format!(
                        "got multiple values for argument '{name}'"
                    )));
                }
                values[index] = Some(value.unbind());
            }
        }
        let missing: Vec<&str> = (0..REQUIRED)
            .filter(|&i| values[i].is_none())
            .map(|i| FIELD_NAMES[i])
            .collect();
        if !missing.is_empty() {
            let plural = if missing.len() == 1 { "" } else { "s" };
            return Err(init_error(&format!(
                "missing {} required positional argument{plural}: {}",
                missing.len(),
                quoted_list(&missing)
            )));
        }
        values[CONTEXT].get_or_insert_with(|| PyDict::new(py).into_any().unbind());
        values[CPU_STACK_SAMPLES].get_or_insert_with(|| PyList::empty(py).into_any().unbind());
        values[STUCK_REPORTS].get_or_insert_with(|| {
            0u32.into_pyobject(py)
                .map_or_else(|_| py.None(), |zero| zero.into_any().unbind())
        });
        for optional in &mut values[TASK_NAME..] {
            optional.get_or_insert_with(|| py.None());
        }
        Ok(Self {
            values,
            source: None,
            identity: None,
            args: Vec::new(),
        })
    }

    /// How long the handle ran, in milliseconds.
    #[getter]
    fn elapsed_ms(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, ELAPSED_MS)
    }

    /// The threshold in force, in milliseconds.
    #[getter]
    fn threshold_ms(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, THRESHOLD_MS)
    }

    /// `elapsed_ms >= threshold_ms`.
    #[getter]
    fn exceeded_threshold(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, EXCEEDED_THRESHOLD)
    }

    /// Sum of the blocking events' weights (0 for `cpu_blocking`).
    #[getter]
    fn severity_score(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, SEVERITY_SCORE)
    }

    /// `"high"`, `"medium"` or `"low"`.
    #[getter]
    fn severity_level(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, SEVERITY_LEVEL)
    }

    /// `"io_blocking"` or `"cpu_blocking"`.
    #[getter]
    fn reason(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, REASON)
    }

    /// The blocking calls, in call order (a list of `BlockingEventInfo` dicts).
    #[getter]
    fn blocking_events(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, BLOCKING_EVENTS)
    }

    /// What the context providers returned, merged (`{}` without providers).
    #[getter]
    fn context(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, CONTEXT)
    }

    /// The CPU sampler's stacks for the handle, most frequent first.
    #[getter]
    fn cpu_stack_samples(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, CPU_STACK_SAMPLES)
    }

    /// The name of the asyncio task the handle stepped, or None for a plain callback.
    #[getter]
    fn task_name(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, TASK_NAME)
    }

    /// The qualified name of the task's coroutine, or of the plain callback.
    #[getter]
    fn coroutine(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, COROUTINE)
    }

    /// The loop thread's CPU time during the handle, in milliseconds (None: not measured).
    #[getter]
    fn cpu_ms(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, CPU_MS)
    }

    /// `elapsed_ms - cpu_ms`, never negative: the time the thread waited (None: not measured).
    #[getter]
    fn wait_ms(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, WAIT_MS)
    }

    /// The system call the thread was seen waiting in most (`"futex"`, `"read"`, ...), or None.
    #[getter]
    fn blocked_in(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, BLOCKED_IN)
    }

    /// Time in the garbage collector during the handle, in milliseconds (None: not measured).
    #[getter]
    fn gc_ms(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, GC_MS)
    }

    /// Times the handle was reported as stuck while it still ran (`detect_stuck_loops`).
    #[getter]
    fn stuck_reports(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::field(slf, STUCK_REPORTS)
    }

    /// The fields as a new dict, as a dataclass instance's `__dict__` holds them (`vars()`).
    #[getter(__dict__)]
    fn fields_dict<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(slf.py());
        for (name, value) in FIELD_NAMES.iter().zip(Self::all_fields(slf)?) {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    /// Pickling and `copy`: rebuilt from its fields.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, pyo3::types::PyType>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let fields = Self::all_fields(slf)?;
        Ok((slf.get_type(), PyTuple::new(py, fields)?))
    }

    /// Frozen, as the dataclass: every assignment raises `dataclasses.FrozenInstanceError`
    /// (a subclass may set its own attributes).
    fn __setattr__(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyString>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let text = name.to_cow()?;
        if slf.get_type().is(py.get_type::<Self>()) || FIELD_NAMES.contains(&text.as_ref()) {
            return Err(frozen_error(py, format!("cannot assign to field '{text}'")));
        }
        // SAFETY: GIL held; all three are valid objects (the subclass has an instance dict).
        if unsafe { ffi::PyObject_GenericSetAttr(slf.as_ptr(), name.as_ptr(), value.as_ptr()) } != 0
        {
            return Err(PyErr::fetch(py));
        }
        Ok(())
    }

    fn __delattr__(slf: &Bound<'_, Self>, name: &Bound<'_, PyString>) -> PyResult<()> {
        let py = slf.py();
        let text = name.to_cow()?;
        if slf.get_type().is(py.get_type::<Self>()) || FIELD_NAMES.contains(&text.as_ref()) {
            return Err(frozen_error(py, format!("cannot delete field '{text}'")));
        }
        // SAFETY: GIL held; a NULL value deletes the attribute.
        if unsafe {
            ffi::PyObject_GenericSetAttr(slf.as_ptr(), name.as_ptr(), std::ptr::null_mut())
        } != 0
        {
            return Err(PyErr::fetch(py));
        }
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for value in self.values.iter().flatten() {
            visit.call(value)?;
        }
        for deferred in &self.args {
            visit.call(&deferred.args)?;
        }
        match &self.identity {
            Some(identity) => identity.visit(&visit),
            None => Ok(()),
        }
    }

    fn __clear__(&mut self) {
        self.values = Default::default();
        self.source = None;
        self.identity = None;
        self.args = Vec::new();
    }
}

/// A shared stack's texts as Python strings (see [`StackTexts`]); the entry keeps the stack
/// alive, so the address it is keyed by cannot be reused while it exists.
struct StackStrings {
    _stack: Arc<Stack>,
    texts: [Py<PyString>; 4],
}

/// The texts of a stack a blocking-event dict shows: `trace`, `entry_point`, `site`,
/// `user_trace`.
struct StackTexts<'py> {
    trace: Bound<'py, PyString>,
    entry_point: Bound<'py, PyString>,
    site: Bound<'py, PyString>,
    user_trace: Bound<'py, PyString>,
}

/// Per-thread (events are read on the loop's thread, mostly): a call site's strings are built
/// once. Bounded: cleared when it grows past the cap.
const STACK_STRINGS_CAP: usize = 2048;

thread_local! {
    static STACK_STRINGS: RefCell<HashMap<usize, StackStrings, FastBuildHasher>> =
        RefCell::new(HashMap::default());
}

/// The texts of `stack` as Python strings, from the per-thread cache.
fn stack_strings<'py>(py: Python<'py>, stack: &Arc<Stack>) -> StackTexts<'py> {
    let key = Arc::as_ptr(stack) as usize;
    let [trace, entry_point, site, user_trace] = STACK_STRINGS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(hit) = cache.get(&key) {
            return hit.texts.each_ref().map(|text| text.bind(py).clone());
        }
        let texts = [
            stack.trace(),
            stack.entry_point(),
            stack.site(),
            stack.user_trace(),
        ]
        .map(|text| PyString::new(py, text));
        if cache.len() >= STACK_STRINGS_CAP {
            cache.clear();
        }
        cache.insert(
            key,
            StackStrings {
                _stack: Arc::clone(stack),
                texts: texts.each_ref().map(|text| text.clone().unbind()),
            },
        );
        texts
    });
    StackTexts {
        trace,
        entry_point,
        site,
        user_trace,
    }
}

/// The `blocking_events` list: one `BlockingEventInfo` dict per record. An event whose text
/// was deferred gets it from `args` (same order). Besides aiocop 1.2.1's four keys (`event`,
/// `trace`, `entry_point`, `severity`) and the task's identity, each dict has the event's
/// `event_name`, the user's call `site`, the `user_trace` (cut after the user's outermost
/// frame), the `suggested_rule` that would allow the call (`None` without frames), its
/// attribution — `origin`, `distribution`, `distribution_version` — and its `site_key` (the
/// fields of `aiocop_events::BLOCKING_EVENT_FIELDS`).
pub(crate) fn blocking_events<'py>(
    py: Python<'py>,
    events: &[BlockingEvent],
    args: &[DeferredArgs],
    task_name: &Bound<'py, PyAny>,
    coroutine: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for (index, event) in events.iter().enumerate() {
        let texts = stack_strings(py, &event.stack);
        let dict = PyDict::new(py);
        match args.get(index) {
            Some(deferred) if event.event.is_empty() => {
                dict.set_item(pyo3::intern!(py, "event"), deferred.event_text(py))?;
            }
            _ => dict.set_item(pyo3::intern!(py, "event"), &event.event)?,
        }
        dict.set_item(pyo3::intern!(py, "trace"), texts.trace)?;
        dict.set_item(pyo3::intern!(py, "entry_point"), texts.entry_point)?;
        dict.set_item(pyo3::intern!(py, "severity"), event.severity)?;
        dict.set_item(pyo3::intern!(py, "task_name"), task_name)?;
        dict.set_item(pyo3::intern!(py, "coroutine"), coroutine)?;
        dict.set_item(pyo3::intern!(py, "event_name"), &*event.name)?;
        dict.set_item(pyo3::intern!(py, "site"), texts.site)?;
        dict.set_item(pyo3::intern!(py, "user_trace"), texts.user_trace)?;
        dict.set_item(pyo3::intern!(py, "suggested_rule"), event.suggested_rule())?;
        aiocop_hook::attribution::add_attribution(py, &dict, event)?;
        list.append(dict)?;
    }
    Ok(list)
}

fn cpu_samples<'py>(py: Python<'py>, samples: &[CpuSample]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for sample in samples {
        let dict = PyDict::new(py);
        dict.set_item(pyo3::intern!(py, "trace"), &sample.trace)?;
        dict.set_item(pyo3::intern!(py, "entry_point"), &sample.entry_point)?;
        dict.set_item(pyo3::intern!(py, "count"), sample.count)?;
        dict.set_item(pyo3::intern!(py, "on_cpu"), sample.on_cpu)?;
        dict.set_item(pyo3::intern!(py, "native_frames"), &sample.native_frames)?;
        list.append(dict)?;
    }
    Ok(list)
}
