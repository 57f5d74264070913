//! Test-time enforcement read from the audit hook: raising at the blocking call
//! (`raise_on_violations(at_call=True)`), the raise/warn mode, scoped allow rules. Each setting
//! is a Python `ContextVar`, so it applies to the task (context) that set it only.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

pub use crate::mode::Mode;
use crate::rules::{PyAllowRule, RuleEntry};
use crate::{pylog, PendingRecord};

static DEFAULT_MODE: AtomicU8 = AtomicU8::new(0);
/// Whether any of the context variables below was ever set (by `enable_raise_on_violations`,
/// `raise_on_violations` or `allowing`): until then every one of them is unset everywhere, and
/// the hook need not read them.
static IN_USE: AtomicBool = AtomicBool::new(false);
/// The `ContextVar[bool]` of after-the-handle raising (aiocop 1.2.1's raise-on-violations).
static RAISE_VAR: AtomicPtr<ffi::PyObject> = AtomicPtr::new(std::ptr::null_mut());
static AT_CALL_VAR: AtomicPtr<ffi::PyObject> = AtomicPtr::new(std::ptr::null_mut());
static MODE_VAR: AtomicPtr<ffi::PyObject> = AtomicPtr::new(std::ptr::null_mut());
static SCOPED_RULES_VAR: AtomicPtr<ffi::PyObject> = AtomicPtr::new(std::ptr::null_mut());
static BLOCKING_CALL_ERROR: OnceLock<Py<PyAny>> = OnceLock::new();

/// Registers the context variables and the `BlockingCallError` class (once; kept alive).
pub fn set_python_objects(
    at_call_var: Py<PyAny>,
    mode_var: Py<PyAny>,
    scoped_rules_var: Py<PyAny>,
    blocking_call_error: Py<PyAny>,
) {
    for (slot, var) in [
        (&AT_CALL_VAR, at_call_var),
        (&MODE_VAR, mode_var),
        (&SCOPED_RULES_VAR, scoped_rules_var),
    ] {
        // The old value (if any) stays alive on purpose: a concurrent reader may hold it.
        slot.store(var.into_ptr(), Ordering::Release);
    }
    let _ = BLOCKING_CALL_ERROR.set(blocking_call_error);
}

/// What a baseline accepts at the call (the pytest plugin's `--aiocop-baseline`): every site
/// (while the baseline is being written), or the listed `(event name, site key)` pairs.
enum Accepted {
    All,
    Sites(std::collections::HashSet<(String, String)>),
}

/// Set by [`set_accepted_sites`]; `None`: nothing is accepted (read only where a call would be
/// raised at).
static ACCEPTED: std::sync::RwLock<Option<Accepted>> = std::sync::RwLock::new(None);

/// Blocking calls a baseline accepts are not raised at the call (they are recorded as usual,
/// and the end of their handle does not treat them as violations): `all` (a baseline being
/// written), else the `(event name, site key)` pairs listed; nothing when both are empty.
pub fn set_accepted_sites(all: bool, sites: Vec<(String, String)>) {
    let accepted = if all {
        Some(Accepted::All)
    } else if sites.is_empty() {
        None
    } else {
        Some(Accepted::Sites(sites.into_iter().collect()))
    };
    *ACCEPTED
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = accepted;
}

/// Whether a baseline accepts a call of `event` made at `stack` (see [`set_accepted_sites`]).
pub(crate) fn accepted_at_call(event: &str, stack: &aiocop_events::Stack) -> bool {
    let accepted = ACCEPTED
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match &*accepted {
        None => false,
        Some(Accepted::All) => true,
        Some(Accepted::Sites(sites)) => {
            let key = stack.site_key().unwrap_or("unknown");
            sites.contains(&(event.to_owned(), key.to_owned()))
        }
    }
}

/// Registers the context variable of after-the-handle raising (kept alive forever).
pub fn set_raise_var(var: Py<PyAny>) {
    // The old value (if any) stays alive on purpose: a concurrent reader may hold it.
    RAISE_VAR.store(var.into_ptr(), Ordering::Release);
}

/// Whether after-the-handle raising is enabled in the current context (its variable is True).
pub(crate) fn raise_enabled(py: Python<'_>) -> bool {
    get(py, &RAISE_VAR).is_some_and(|value| value.is(pyo3::types::PyBool::new(py, true)))
}

/// Sets the process-wide mode (`detect_slow_tasks(mode=...)`, `aiocop.set_mode`).
pub fn set_default_mode(mode: Mode) {
    DEFAULT_MODE.store(mode as u8, Ordering::Relaxed);
}

/// The process-wide mode.
pub fn default_mode() -> Mode {
    if DEFAULT_MODE.load(Ordering::Relaxed) == Mode::Warn as u8 {
        Mode::Warn
    } else {
        Mode::Raise
    }
}

/// Announces that the Python side is about to set one of the context variables (it must be
/// called before the first `set`).
pub fn mark_in_use() {
    IN_USE.store(true, Ordering::Release);
}

/// Whether enforcement has been used in this process (until then no context variable is read
/// and every blocking call is simply recorded).
#[inline]
pub(crate) fn in_use() -> bool {
    IN_USE.load(Ordering::Acquire)
}

/// The value of a registered context variable in the current context, if set and not None.
fn get<'py>(py: Python<'py>, slot: &AtomicPtr<ffi::PyObject>) -> Option<Bound<'py, PyAny>> {
    if !IN_USE.load(Ordering::Acquire) {
        return None;
    }
    let var = slot.load(Ordering::Acquire);
    if var.is_null() {
        return None;
    }
    let mut value: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: GIL held (`py`); `var` is a ContextVar kept alive forever; a new reference (or
    // NULL) is stored in `value`.
    let rc = unsafe { ffi::PyContextVar_Get(var, std::ptr::null_mut(), &mut value) };
    if rc != 0 {
        PyErr::take(py);
        return None;
    }
    // SAFETY: `value` is a new reference or NULL.
    let value = unsafe { Bound::from_owned_ptr_or_opt(py, value) }?;
    (!value.is_none()).then_some(value)
}

/// The mode in force in the current context.
pub fn mode(py: Python<'_>) -> Mode {
    get(py, &MODE_VAR)
        .and_then(|v| v.extract::<String>().ok())
        .and_then(|v| Mode::parse(&v))
        .unwrap_or_else(default_mode)
}

/// `Some(min_weight)` when blocking calls must be stopped at the call in this context.
pub(crate) fn at_call_min_weight(py: Python<'_>) -> Option<u32> {
    get(py, &AT_CALL_VAR).and_then(|v| v.extract::<u32>().ok())
}

/// The rules scoped to the current context (`aiocop.allowing`).
pub(crate) fn scoped_rules(py: Python<'_>) -> Vec<Arc<RuleEntry>> {
    let Some(value) = get(py, &SCOPED_RULES_VAR) else {
        return Vec::new();
    };
    let Ok(tuple) = value.cast::<PyTuple>() else {
        return Vec::new();
    };
    tuple
        .iter()
        .filter_map(|item| {
            item.cast::<PyAllowRule>()
                .ok()
                .map(|r| Arc::clone(r.get().entry()))
        })
        .collect()
}

/// A task's name and its coroutine's qualname (`str` objects, or `None` when not a `str`).
pub type TaskNames = (Option<Py<PyAny>>, Option<Py<PyAny>>);

/// The task running on this thread: `(name, coroutine qualname)`, if any.
pub(crate) fn current_task(py: Python<'_>) -> TaskNames {
    let task = py
        .import("asyncio")
        .and_then(|m| m.call_method0(pyo3::intern!(py, "current_task")))
        .ok()
        .filter(|t| !t.is_none());
    let names = task.as_ref().and_then(task_names);
    PyErr::take(py);
    names.unwrap_or((None, None))
}

/// `value` when it is a `str`, else `None`.
pub fn str_or_none(value: PyResult<Bound<'_, PyAny>>) -> Option<Py<PyAny>> {
    value
        .ok()
        .filter(|v| v.is_instance_of::<pyo3::types::PyString>())
        .map(Bound::unbind)
}

/// `(task.get_name(), task.get_coro().__qualname__)`; `None` when `task` has no `get_coro()`
/// (it is not a task). Leaves no exception set.
pub fn task_names(task: &Bound<'_, PyAny>) -> Option<TaskNames> {
    let py = task.py();
    let Ok(coro) = task.call_method0(pyo3::intern!(py, "get_coro")) else {
        PyErr::take(py);
        return None;
    };
    Some(names_of(task, &coro))
}

/// `(task.get_name(), coro.__qualname__)` for a task and the coroutine it runs. Leaves no
/// exception set.
pub(crate) fn names_of(task: &Bound<'_, PyAny>, coro: &Bound<'_, PyAny>) -> TaskNames {
    let py = task.py();
    let name = str_or_none(task.call_method0(pyo3::intern!(py, "get_name")));
    let qualname = str_or_none(coro.getattr(pyo3::intern!(py, "__qualname__")));
    PyErr::take(py);
    (name, qualname)
}

/// A blocking call as its messages show it.
struct Described {
    event: aiocop_events::BlockingEvent,
    suggested: Option<String>,
}

fn describe(py: Python<'_>, record: &PendingRecord) -> Described {
    let event = aiocop_events::format_record(&record.resolve(py));
    Described {
        suggested: event.suggested_rule(),
        event,
    }
}

/// The `BlockingCallError` for `record`, raised at the call.
pub fn blocking_call_error(py: Python<'_>, record: &PendingRecord) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let cls = BLOCKING_CALL_ERROR.get().ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err(
                "aiocop's BlockingCallError is not registered",
            )
        })?;
        let Described { event, suggested } = describe(py, record);
        let (task_name, coroutine) = current_task(py);
        let kwargs = PyDict::new(py);
        kwargs.set_item("event_name", record.spec.name)?;
        kwargs.set_item("event", &event.event)?;
        kwargs.set_item("severity", record.spec.weight)?;
        kwargs.set_item("trace", event.trace())?;
        kwargs.set_item("entry_point", event.entry_point())?;
        kwargs.set_item("task_name", task_name)?;
        kwargs.set_item("coroutine", coroutine)?;
        kwargs.set_item("suggested_rule", suggested)?;
        kwargs.set_item("site", event.site())?;
        kwargs.set_item("user_trace", event.user_trace())?;
        crate::attribution::add_attribution(py, &kwargs, &event)?;
        Ok(PyErr::from_value(cls.bind(py).call((), Some(&kwargs))?))
    };
    build().unwrap_or_else(|err| err)
}

/// Warn mode at the call: log once per call site.
pub(crate) fn warn_blocking_call(py: Python<'_>, record: &PendingRecord) {
    let Described { event, suggested } = describe(py, record);
    let key = format!("{}@{}", record.spec.name, event.site());
    let mut message = format!(
        "blocking call {} (weight {}) at {}\n  trace: {}",
        event.event,
        record.spec.weight,
        event.site(),
        event.user_trace()
    );
    if let Some(rule) = suggested {
        message.push_str(&format!("\n  allow it with: aiocop.allow({rule:?})"));
    }
    pylog::warning_once(py, &key, &message);
}
