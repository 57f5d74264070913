//! Monitoring a trio run: `_TrioSteps`, the native base of `aiocop.trio.AiocopInstrument`.
//! Trio calls an instrument's `before_task_step(task)` and `after_task_step(task)` around every
//! step of every task; each step is one monitored handle, begun and ended by the same
//! [`begin_handle`] / [`end_handle`] pair an asyncio handle runs between, so a step's events,
//! severity, allow rules and raise-at-call are an asyncio handle's. Events are delivered on the
//! run's thread through its token's `run_sync_soon` (or inline, as the dispatch mode says), and
//! what is still pending when the run ends by `after_run`.
//!
//! An instrument that raises is removed by trio (with a logged error): no method here raises.
//! A `HighSeverityBlockingIoException` decided at the end of a step (raise-on-violations without
//! `at_call`) cannot reach the task, whose step is over: it is logged at WARNING instead; raising
//! at the call itself works as on asyncio.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::dispatch;
use crate::event::Identity;
use crate::handle::{begin_handle, end_handle, HandleBegun};
use crate::loop_state::LoopShared;
use crate::registry;

/// The per-step hooks of a trio instrument (subclassed in Python by `AiocopInstrument`, which
/// adds trio's `Instrument` base). Made on any thread, used on the thread of the run it is
/// added to.
#[pyclass(subclass, module = "aiocop._aiocop", name = "_TrioSteps")]
pub struct TrioSteps {
    /// The run's delivery state, once bound to a run.
    target: Option<Arc<LoopShared>>,
}

/// A step begun on this thread and not ended yet, with the instrument that began it (its
/// address): a handle begins and ends on one thread, and one thread is in at most one handle.
struct Step {
    owner: usize,
    begun: HandleBegun,
}

thread_local! {
    static STEP: std::cell::RefCell<Option<Step>> = const { std::cell::RefCell::new(None) };
}

impl std::fmt::Debug for TrioSteps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrioSteps")
            .field("bound", &self.target.is_some())
            .finish()
    }
}

#[pymethods]
impl TrioSteps {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(
        _args: &Bound<'_, pyo3::types::PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> Self {
        Self { target: None }
    }

    /// Binds the instrument to the trio run of `token` (`trio.lowlevel.TrioToken`): its events
    /// are delivered there. A token of another run starts a new delivery state.
    fn _bind(&mut self, py: Python<'_>, token: &Bound<'_, PyAny>) -> PyResult<()> {
        aiocop_hook::heaptype::guard_py(py, "trio instrument bind", || {
            self.finish_step(py, None);
            self.target = Some(LoopShared::for_trio(token)?);
            Ok(())
        })
    }

    /// Whether the instrument is bound to a run.
    #[getter]
    fn _bound(&self) -> bool {
        self.target.is_some()
    }

    /// Trio: the run starts. Binds the instrument to it.
    fn before_run(&mut self, py: Python<'_>) {
        aiocop_hook::heaptype::guard(
            "trio before_run",
            || (),
            || {
                let token = py
                    .import("trio.lowlevel")
                    .and_then(|m| m.call_method0("current_trio_token"));
                match token {
                    Ok(token) => {
                        self.finish_step(py, None);
                        match LoopShared::for_trio(&token) {
                            Ok(target) => self.target = Some(target),
                            Err(err) => log_error(py, "could not follow this trio run", &err),
                        }
                    }
                    Err(err) => log_error(py, "could not follow this trio run", &err),
                }
            },
        )
    }

    /// Trio: a task step starts (one monitored handle).
    fn before_task_step(&mut self, py: Python<'_>, task: &Bound<'_, PyAny>) {
        aiocop_hook::heaptype::guard(
            "trio before_task_step",
            || (),
            || {
                if self.target.is_none() {
                    return;
                }
                // A step of ours whose end we never saw: close it first (the thread must not
                // stay marked as inside a handle).
                self.finish_step(py, None);
                let begun = if registry::has_providers() {
                    in_task_context(task, || begin_handle(py))
                } else {
                    begin_handle(py)
                };
                if let Some(begun) = begun {
                    let owner = self.owner();
                    STEP.with(|step| *step.borrow_mut() = Some(Step { owner, begun }));
                }
            },
        )
    }

    /// Trio: the task step ends.
    fn after_task_step(&mut self, py: Python<'_>, task: &Bound<'_, PyAny>) {
        aiocop_hook::heaptype::guard(
            "trio after_task_step",
            || (),
            || {
                if registry::has_providers() {
                    in_task_context(task, || self.finish_step(py, Some(task)));
                } else {
                    self.finish_step(py, Some(task));
                }
            },
        )
    }

    /// Trio: the run ends. Delivers what is still pending for it, here.
    fn after_run(&mut self, py: Python<'_>) {
        aiocop_hook::heaptype::guard(
            "trio after_run",
            || (),
            || {
                self.finish_step(py, None);
                if let Some(target) = &self.target {
                    dispatch::flush(py, Some(target));
                    target.mark_run_over();
                }
            },
        )
    }

    fn __repr__(&self) -> &'static str {
        if self.target.is_some() {
            "<aiocop trio instrument (bound to a run)>"
        } else {
            "<aiocop trio instrument>"
        }
    }
}

impl TrioSteps {
    /// This instrument's identity for [`STEP`].
    fn owner(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Ends the step in progress, if any (`task` is the task it ran, when known).
    fn finish_step(&mut self, py: Python<'_>, task: Option<&Bound<'_, PyAny>>) {
        // A step begins only on a bound instrument, which stays bound.
        let Some(target) = self.target.as_ref() else {
            return;
        };
        let owner = self.owner();
        let Some(begun) = STEP.with(|step| {
            let mut step = step.borrow_mut();
            match step.take() {
                Some(mine) if mine.owner == owner => Some(mine.begun),
                other => {
                    *step = other; // another instrument's step (or none)
                    None
                }
            }
        }) else {
            return;
        };
        let outcome = end_handle(begun, target, Ok(()), py, || identity(py, task));
        if let Err(err) = outcome {
            // The step is over: nothing can raise into the task any more.
            crate::pylog::warning(
                py,
                &format!(
                    "aiocop: a trio task step broke raise-on-violations; use \
                     raise_on_violations(at_call=True) to raise inside the task: {}",
                    err.value(py)
                ),
            );
        }
    }
}

/// Runs `f` inside `task.context`, the task's `contextvars` context, as trio runs the step
/// itself (and as an asyncio handle's end runs inside its handle's context): context providers
/// read the task's variables. Trio enters that context only after `before_task_step` and leaves
/// it before `after_task_step`, so it is free to enter here; `f` runs anyway if it cannot be.
fn in_task_context<R>(task: &Bound<'_, PyAny>, f: impl FnOnce() -> R) -> R {
    let py = task.py();
    let Ok(context) = task.getattr(pyo3::intern!(py, "context")) else {
        PyErr::take(py);
        return f();
    };
    // SAFETY: GIL held; `context` is a valid object.
    let is_context = unsafe { pyo3::ffi::PyContext_CheckExact(context.as_ptr()) } != 0;
    if !is_context {
        return f();
    }
    // SAFETY: GIL held; `context` is a `contextvars.Context` (checked above).
    if unsafe { pyo3::ffi::PyContext_Enter(context.as_ptr()) } != 0 {
        PyErr::take(py); // entered already: run outside it
        return f();
    }
    // Left on the way out, also if `f` panics (trio enters this context right after).
    let _entered = Entered(context);
    f()
}

/// A context this thread entered, exited on drop.
struct Entered<'py>(Bound<'py, PyAny>);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        // SAFETY: GIL held (the `Bound`); the context this thread entered in
        // `in_task_context`, still current: what ran since leaves the stack as it found it.
        if unsafe { pyo3::ffi::PyContext_Exit(self.0.as_ptr()) } != 0 {
            PyErr::take(self.0.py());
        }
    }
}

/// The task's name and its coroutine's qualified name (slow path only).
fn identity(py: Python<'_>, task: Option<&Bound<'_, PyAny>>) -> Identity {
    use aiocop_hook::enforce::str_or_none;
    let Some(task) = task else {
        return Identity::default();
    };
    let name = str_or_none(task.getattr(pyo3::intern!(py, "name")));
    let qualname = task
        .getattr(pyo3::intern!(py, "coro"))
        .and_then(|coro| coro.getattr(pyo3::intern!(py, "__qualname__")));
    let qualname = str_or_none(qualname);
    PyErr::take(py);
    Identity::Names(name, qualname)
}

fn log_error(py: Python<'_>, what: &str, err: &PyErr) {
    crate::pylog::warning(py, &format!("aiocop {what}: {}", err.value(py)));
}
