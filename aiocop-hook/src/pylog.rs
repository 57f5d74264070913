//! Logging through Python's `logging` (loggers under `aiocop`): the library never prints.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

mod forward;

pub use forward::{install as forward_rust_diagnostics, stop as stop_forwarding};

fn logger(py: Python<'_>) -> Option<&Bound<'_, PyAny>> {
    static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOGGER
        .get_or_try_init(py, || {
            py.import("logging")?
                .call_method1("getLogger", ("aiocop",))
                .map(Bound::unbind)
        })
        .ok()
        .map(|l| l.bind(py))
}

fn log(py: Python<'_>, level: &str, message: &str) {
    if let Some(logger) = logger(py) {
        if logger.call_method1(level, ("%s", message)).is_err() {
            // A broken logging setup must not break the user's loop.
            PyErr::take(py);
        }
    }
}

/// `logging.getLogger("aiocop").warning(message)`.
pub fn warning(py: Python<'_>, message: &str) {
    log(py, "warning", message);
}

/// `logging.getLogger("aiocop").error(message)`.
pub fn error(py: Python<'_>, message: &str) {
    log(py, "error", message);
}

/// Describes a callable for a log line: its `__qualname__`/`__name__`, else its `repr()`.
pub fn describe(obj: &Bound<'_, PyAny>) -> String {
    for attr in ["__qualname__", "__name__"] {
        if let Ok(name) = obj.getattr(attr).and_then(|n| n.extract::<String>()) {
            return name;
        }
    }
    obj.repr()
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "<callable>".to_owned())
}

/// Logs `message` at WARNING once per `key` (a call site) for the life of the process. The set
/// of keys is bounded: past the cap, every message is logged.
pub fn warning_once(py: Python<'_>, key: &str, message: &str) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    const CAP: usize = 10_000;
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let first = {
        let mut seen = SEEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seen = seen.get_or_insert_with(HashSet::new);
        if seen.len() >= CAP {
            true
        } else {
            seen.insert(key.to_owned())
        }
    };
    if first {
        warning(py, message);
    }
}
