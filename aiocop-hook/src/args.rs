//! Turning an audit event's argument tuple into text (on the slow path, at the end of a handle).

use aiocop_events::RawArgs;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::redactor;

/// `str()` of each argument (through the user's redactor, if one is set); an `(args_tuple, kwargs_dict)` pair (what `sys.audit(name, args,
/// kwargs)` from a wrapper produces) becomes [`RawArgs::Call`] with the tuple's items.
pub fn resolve_args(args: &Bound<'_, PyAny>) -> RawArgs {
    let Ok(tuple) = args.cast::<PyTuple>() else {
        return match args.str() {
            Ok(s) => RawArgs::Values(vec![redactor::apply(
                args.py(),
                s.to_string_lossy().into_owned(),
            )]),
            Err(_) => RawArgs::Unformattable,
        };
    };
    if let Some(inner) = call_tuple(args) {
        return call_args(&inner);
    }
    match strs(tuple) {
        Some(values) => RawArgs::Values(values),
        None => RawArgs::Unformattable,
    }
}

/// The inner tuple of an `(args_tuple, kwargs_dict)` pair.
pub(crate) fn call_tuple<'py>(args: &Bound<'py, PyAny>) -> Option<Bound<'py, PyTuple>> {
    let tuple = args.cast::<PyTuple>().ok()?;
    if tuple.len() != 2 {
        return None;
    }
    let (first, second) = (tuple.get_item(0).ok()?, tuple.get_item(1).ok()?);
    if !second.is_instance_of::<PyDict>() {
        return None;
    }
    first.cast_into::<PyTuple>().ok()
}

/// [`RawArgs::Call`] of a pair's inner tuple.
pub fn call_args(inner: &Bound<'_, PyTuple>) -> RawArgs {
    match strs(inner) {
        Some(values) => RawArgs::Call(values),
        None => RawArgs::Unformattable,
    }
}

fn strs(tuple: &Bound<'_, PyTuple>) -> Option<Vec<String>> {
    let py = tuple.py();
    tuple
        .iter()
        .map(|item| {
            let text = item.str().ok()?.to_string_lossy().into_owned();
            Some(redactor::apply(py, text))
        })
        .collect()
}
