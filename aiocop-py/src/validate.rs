//! Argument checks: a `TypeError` or `ValueError` naming the argument, never a crash.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

fn number(value: &Bound<'_, PyAny>, name: &str) -> PyResult<f64> {
    if value.is_instance_of::<PyBool>()
        || !(value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number (int or float), got {}",
            type_name(value)
        )));
    }
    let number: f64 = value.extract()?;
    if !number.is_finite() {
        return Err(PyValueError::new_err(format!(
            "{name} must be finite, got {number}"
        )));
    }
    Ok(number)
}

/// The name of `value`'s type, for messages.
pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

fn ms_to_ns(ms: f64) -> u64 {
    (ms * 1e6).round().min(u64::MAX as f64) as u64
}

/// Milliseconds >= 0, as nanoseconds.
pub(crate) fn non_negative_ms(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    let ms = number(value, name)?;
    if ms < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be >= 0, got {ms}"
        )));
    }
    Ok(ms_to_ns(ms))
}

/// Milliseconds > 0, as nanoseconds.
pub(crate) fn positive_ms(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    let ms = number(value, name)?;
    if ms <= 0.0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be > 0, got {ms}"
        )));
    }
    Ok(ms_to_ns(ms))
}

/// `None` or milliseconds (>= 0 when `zero_ok`, else > 0), as nanoseconds.
pub(crate) fn optional_ms(
    value: &Bound<'_, PyAny>,
    name: &str,
    zero_ok: bool,
) -> PyResult<Option<u64>> {
    if value.is_none() {
        Ok(None)
    } else if zero_ok {
        non_negative_ms(value, name).map(Some)
    } else {
        positive_ms(value, name).map(Some)
    }
}

/// An int >= 1.
pub(crate) fn positive_int(value: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an int, got {}",
            type_name(value)
        )));
    }
    let n: i64 = value
        .extract()
        .map_err(|_| PyValueError::new_err(format!("{name} is out of range")))?;
    if n < 1 {
        return Err(PyValueError::new_err(format!(
            "{name} must be >= 1, got {n}"
        )));
    }
    usize::try_from(n).map_err(|_| PyValueError::new_err(format!("{name} is out of range")))
}

/// A callable.
pub(crate) fn callable<'a, 'py>(
    value: &'a Bound<'py, PyAny>,
    name: &str,
) -> PyResult<&'a Bound<'py, PyAny>> {
    if !value.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be callable, got {}",
            type_name(value)
        )));
    }
    Ok(value)
}

/// A `bool` (not any truthy value: `"no"` is not `False`).
pub(crate) fn boolean(value: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    if !value.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be True or False, got {}",
            type_name(value)
        )));
    }
    value.is_truthy()
}

/// An on/off environment variable: `None` when unset or empty, else its value read as
/// `1/on/true/yes` or `0/off/false/no` (any case); anything else is a `ValueError` naming
/// the variable and the accepted values.
pub(crate) fn switch_env(name: &str) -> PyResult<Option<bool>> {
    let Ok(value) = std::env::var(name) else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "1" | "on" | "true" | "yes" => Ok(Some(true)),
        "0" | "off" | "false" | "no" => Ok(Some(false)),
        _ => Err(PyValueError::new_err(format!(
            "{name}={value:?} is not a switch: use 1/on/true/yes or 0/off/false/no"
        ))),
    }
}
