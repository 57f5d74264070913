//! Our callables installed on a loop's class (`close`, `_add_reader`, ...) bind like functions:
//! looked up on an instance they become a bound method of it.

use pyo3::prelude::*;

/// `__get__` of such a callable `slf`: a bound method of `instance`, or `slf` itself when
/// looked up on the class.
pub(crate) fn bind_as_method<'py>(
    slf: &Bound<'py, PyAny>,
    instance: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    match instance {
        Some(instance) if !instance.is_none() => slf
            .py()
            .import(pyo3::intern!(slf.py(), "types"))?
            .getattr(pyo3::intern!(slf.py(), "MethodType"))?
            .call1((slf, instance)),
        _ => Ok(slf.clone()),
    }
}
