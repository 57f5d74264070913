//! The user's redactor (`aiocop.set_redactor(fn)`): a Python callable that replaces the
//! built-in redaction of shown arguments, applied to each argument's text as it is made (on the
//! slow path, with the GIL). A redactor that raises or returns something other than a `str`
//! shows the argument as `***` (never as it was) and is reported once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyString;

/// What an argument shows when the redactor fails on it.
const MASK: &str = "***";

static REDACTOR: Mutex<Option<Py<PyAny>>> = Mutex::new(None);
/// Whether a redactor is set (read before taking the lock).
static SET: AtomicBool = AtomicBool::new(false);

fn slot() -> std::sync::MutexGuard<'static, Option<Py<PyAny>>> {
    REDACTOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sets the redactor (`None`: none, the built-in redaction applies again). Returns whether one
/// is set now.
pub fn set_redactor(redactor: Option<Py<PyAny>>) -> bool {
    let is_set = redactor.is_some();
    let previous = std::mem::replace(&mut *slot(), redactor);
    SET.store(is_set, Ordering::Release);
    drop(previous);
    is_set
}

/// Whether a redactor is set.
pub fn is_set() -> bool {
    SET.load(Ordering::Acquire)
}

/// `text` through the redactor, if one is set.
pub(crate) fn apply(py: Python<'_>, text: String) -> String {
    if !is_set() {
        return text;
    }
    let Some(redactor) = slot().as_ref().map(|r| r.clone_ref(py)) else {
        return text;
    };
    match redactor.bind(py).call1((text,)) {
        Ok(out) => match out.cast::<PyString>() {
            Ok(s) => s.to_string_lossy().into_owned(),
            Err(_) => {
                failed(py, &format!("returned {}, not a str", type_name(&out)));
                MASK.to_owned()
            }
        },
        Err(err) => {
            failed(py, &format!("raised {err}"));
            MASK.to_owned()
        }
    }
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

fn failed(py: Python<'_>, what: &str) {
    crate::pylog::warning_once(
        py,
        "redactor-failed",
        &format!("aiocop's redactor {what}; the argument is shown as {MASK}"),
    );
}
