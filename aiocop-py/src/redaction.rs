//! Which redaction shown arguments get: the built-in one (`aiocop-events`, on unless
//! `AIOCOP_REDACT=0`) or the user's redactor (`set_redactor`), which replaces it.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

/// Whether the built-in redaction is wanted (`AIOCOP_REDACT`), when no redactor is set.
static BUILTIN: AtomicBool = AtomicBool::new(true);

fn apply() {
    aiocop_events::set_redaction(
        BUILTIN.load(Ordering::Relaxed) && !aiocop_hook::redactor::is_set(),
    );
}

/// Sets whether the built-in redaction applies when no redactor is set.
pub(crate) fn set_builtin(on: bool) {
    BUILTIN.store(on, Ordering::Relaxed);
    apply();
}

/// Replaces the built-in redaction of shown arguments with `redactor(text) -> str`, called on
/// each argument's text wherever arguments are shown (events, exceptions, log lines, the
/// pytest report); `None` restores the built-in one.
#[pyfunction]
pub(crate) fn set_redactor(redactor: &Bound<'_, PyAny>) -> PyResult<()> {
    let redactor = if redactor.is_none() {
        None
    } else if redactor.is_callable() {
        Some(redactor.clone().unbind())
    } else {
        return Err(PyTypeError::new_err(format!(
            "redactor must be a callable taking and returning a str, or None, got {}",
            redactor.get_type().name()?
        )));
    };
    aiocop_hook::redactor::set_redactor(redactor);
    apply();
    Ok(())
}
