//! Turning an audit event's argument tuple into text (on the slow path, at the end of a handle).

use aiocop_events::RawArgs;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// `str()` of each argument; an `(args_tuple, kwargs_dict)` pair (what `sys.audit(name, args,
/// kwargs)` from a wrapper produces) becomes [`RawArgs::Call`] with the tuple's items.
pub fn resolve_args(args: &Bound<'_, PyAny>) -> RawArgs {
    let Ok(tuple) = args.cast::<PyTuple>() else {
        return match args.str() {
            Ok(s) => RawArgs::Values(vec![s.to_string_lossy().into_owned()]),
            Err(_) => RawArgs::Unformattable,
        };
    };
    if tuple.len() == 2 {
        if let (Ok(first), Ok(second)) = (tuple.get_item(0), tuple.get_item(1)) {
            if let (Ok(inner), true) = (first.cast::<PyTuple>(), second.is_instance_of::<PyDict>())
            {
                return match strs(inner) {
                    Some(values) => RawArgs::Call(values),
                    None => RawArgs::Unformattable,
                };
            }
        }
    }
    match strs(tuple) {
        Some(values) => RawArgs::Values(values),
        None => RawArgs::Unformattable,
    }
}

fn strs(tuple: &Bound<'_, PyTuple>) -> Option<Vec<String>> {
    tuple
        .iter()
        .map(|item| item.str().ok().map(|s| s.to_string_lossy().into_owned()))
        .collect()
}
