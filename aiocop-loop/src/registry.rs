//! The user's slow-task callbacks and context providers, and the Python exception class a
//! violation raises.
//!
//! The lists are only locked to copy them out (never while Python code runs), so a callback may
//! register or unregister callbacks without deadlocking.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping};

use crate::pylog;

static CALLBACKS: Mutex<Vec<Py<PyAny>>> = Mutex::new(Vec::new());
static PROVIDERS: Mutex<Vec<Py<PyAny>>> = Mutex::new(Vec::new());
static HAS_PROVIDERS: AtomicBool = AtomicBool::new(false);
/// Bumped after every change of the callback list.
static CALLBACKS_GENERATION: AtomicU64 = AtomicU64::new(0);
/// Whether the callback list is not empty (read at the end of every slow handle).
static HAS_CALLBACKS: AtomicBool = AtomicBool::new(false);

/// After a change of the callback list: a new generation, and whether any is left.
fn callbacks_changed() {
    HAS_CALLBACKS.store(!lock(&CALLBACKS).is_empty(), Ordering::Release);
    CALLBACKS_GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Whether any slow-task callback is registered (one atomic load). Without one, a slow handle
/// only counts in the per-call-site totals: no event is built.
#[inline]
pub(crate) fn has_callbacks() -> bool {
    HAS_CALLBACKS.load(Ordering::Acquire)
}

/// Python classes the Rust side raises (set once by the Python package).
#[derive(Debug)]
pub struct PythonTypes {
    /// `aiocop.exceptions.HighSeverityBlockingIoException`.
    pub high_severity_exception: Py<PyAny>,
}

static TYPES: OnceLock<PythonTypes> = OnceLock::new();

/// Sets the Python classes. Later calls are ignored.
pub fn set_python_types(types: PythonTypes) {
    let _ = TYPES.set(types);
}

/// The Python classes, once set.
pub(crate) fn python_types() -> Option<&'static PythonTypes> {
    TYPES.get()
}

fn lock(list: &Mutex<Vec<Py<PyAny>>>) -> MutexGuard<'_, Vec<Py<PyAny>>> {
    list.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn contains(py: Python<'_>, list: &[Py<PyAny>], item: &Bound<'_, PyAny>) -> bool {
    list.iter()
        .any(|existing| existing.bind(py).is(item) || existing.bind(py).eq(item).unwrap_or(false))
}

fn add(py: Python<'_>, list: &Mutex<Vec<Py<PyAny>>>, item: &Bound<'_, PyAny>) {
    let snapshot = snapshot(py, list);
    if contains(py, &snapshot, item) {
        return;
    }
    lock(list).push(item.clone().unbind());
}

fn remove(py: Python<'_>, list: &Mutex<Vec<Py<PyAny>>>, item: &Bound<'_, PyAny>) {
    let snapshot = snapshot(py, list);
    let Some(index) = snapshot.iter().position(|existing| {
        existing.bind(py).is(item) || existing.bind(py).eq(item).unwrap_or(false)
    }) else {
        return;
    };
    let target = snapshot[index].as_ptr();
    let removed = {
        let mut guard = lock(list);
        guard
            .iter()
            .position(|existing| existing.as_ptr() == target)
            .map(|i| guard.remove(i))
    };
    drop(removed);
}

fn snapshot(py: Python<'_>, list: &Mutex<Vec<Py<PyAny>>>) -> Vec<Py<PyAny>> {
    lock(list).iter().map(|item| item.clone_ref(py)).collect()
}

/// Adds a slow-task callback (a second registration of an equal callable is a no-op).
pub fn register_callback(py: Python<'_>, callback: &Bound<'_, PyAny>) {
    add(py, &CALLBACKS, callback);
    callbacks_changed();
}

/// Removes a slow-task callback, if registered.
pub fn unregister_callback(py: Python<'_>, callback: &Bound<'_, PyAny>) {
    remove(py, &CALLBACKS, callback);
    callbacks_changed();
}

/// Removes every slow-task callback.
pub fn clear_callbacks() {
    let removed = std::mem::take(&mut *lock(&CALLBACKS));
    callbacks_changed();
    drop(removed);
}

/// The registered callbacks, in registration order.
pub fn callbacks(py: Python<'_>) -> Vec<Py<PyAny>> {
    snapshot(py, &CALLBACKS)
}

/// A copy of the callbacks for a run of deliveries, copied again only when the list changed
/// (one atomic load per event instead of a lock and a copy): a callback registered by another
/// callback still receives the next event.
#[derive(Debug)]
pub(crate) struct CallbackSnapshot {
    generation: u64,
    list: Vec<Py<PyAny>>,
}

impl Default for CallbackSnapshot {
    fn default() -> Self {
        Self {
            generation: u64::MAX,
            list: Vec::new(),
        }
    }
}

impl CallbackSnapshot {
    /// The callbacks as they are now.
    pub(crate) fn current(&mut self, py: Python<'_>) -> &[Py<PyAny>] {
        let generation = CALLBACKS_GENERATION.load(Ordering::Acquire);
        if generation != self.generation {
            self.list = callbacks(py);
            self.generation = generation;
        }
        &self.list
    }
}

/// Adds a context provider.
pub fn register_provider(py: Python<'_>, provider: &Bound<'_, PyAny>) {
    add(py, &PROVIDERS, provider);
    HAS_PROVIDERS.store(true, Ordering::Release);
}

/// Removes a context provider, if registered.
pub fn unregister_provider(py: Python<'_>, provider: &Bound<'_, PyAny>) {
    remove(py, &PROVIDERS, provider);
    HAS_PROVIDERS.store(!lock(&PROVIDERS).is_empty(), Ordering::Release);
}

/// Removes every context provider.
pub fn clear_providers() {
    let removed = std::mem::take(&mut *lock(&PROVIDERS));
    HAS_PROVIDERS.store(false, Ordering::Release);
    drop(removed);
}

/// Whether any context provider is registered (one atomic load: checked on the hot path).
#[inline]
pub(crate) fn has_providers() -> bool {
    HAS_PROVIDERS.load(Ordering::Acquire)
}

/// Calls every provider (in the caller's contextvars context) and merges their dicts. `None`
/// when no provider is registered. A provider that raises, or returns something that is not a
/// mapping, is logged and skipped.
pub fn capture_context(py: Python<'_>) -> Option<Py<PyDict>> {
    if !has_providers() {
        return None;
    }
    let context = PyDict::new(py);
    for provider in snapshot(py, &PROVIDERS) {
        let provider = provider.bind(py);
        match provider.call0() {
            Ok(value) if value.is_none() => {}
            Ok(value) => {
                let merged = match value.cast::<PyMapping>() {
                    Ok(mapping) => context.update(mapping),
                    Err(err) => Err(PyErr::from(err)),
                };
                if let Err(err) = merged {
                    pylog::warning(
                        py,
                        &format!(
                            "Error in context provider {}: {err}",
                            pylog::describe(provider)
                        ),
                    );
                }
            }
            Err(err) => pylog::warning(
                py,
                &format!(
                    "Error in context provider {}: {err}",
                    pylog::describe(provider)
                ),
            ),
        }
    }
    Some(context.unbind())
}
