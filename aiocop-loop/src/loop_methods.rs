//! The methods of a loop that is not one of asyncio's (uvloop's) through which it gets
//! callbacks it calls itself, outside any scheduled handle: the protocol factories of
//! `create_server`, `create_connection`, ... (their protocols are instrumented:
//! [`crate::protocols`]) and the callbacks of `add_reader` / `add_writer` (wrapped in a
//! `MonitoredCallback`: [`crate::readers`]). Each replacement is a [`LoopMethod`] bound to the
//! loop's original method and its patch, held by the loop's class of its own
//! ([`crate::patching`]). Not a hot path: these run once per server, connection or
//! registration, never per handle.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::loop_patch::LoopPatch;
use crate::protocols::ProtocolFactory;
use crate::readers::monitored_reader;

/// What a replaced method gets that the loop calls later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A protocol factory: the first positional, or the `protocol_factory` keyword.
    Factory,
    /// `(fd, callback, *args)`.
    Reader,
}

/// The replaced methods.
const METHODS: [(&str, Kind); 12] = [
    ("create_server", Kind::Factory),
    ("create_connection", Kind::Factory),
    ("create_unix_server", Kind::Factory),
    ("create_unix_connection", Kind::Factory),
    ("create_datagram_endpoint", Kind::Factory),
    ("connect_accepted_socket", Kind::Factory),
    ("subprocess_exec", Kind::Factory),
    ("subprocess_shell", Kind::Factory),
    ("connect_read_pipe", Kind::Factory),
    ("connect_write_pipe", Kind::Factory),
    ("add_reader", Kind::Reader),
    ("add_writer", Kind::Reader),
];

/// One replaced method of a monitored loop: wraps what the loop will call, then calls the
/// loop's own method.
#[pyclass(frozen, module = "aiocop._aiocop", name = "_LoopMethod")]
#[derive(Debug)]
pub struct LoopMethod {
    kind: Kind,
    /// The loop's own method, bound to the loop.
    original: Py<PyAny>,
    patch: Py<LoopPatch>,
}

#[pymethods]
impl LoopMethod {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        aiocop_hook::heaptype::guard_py(py, "loop method call", || {
            let original = self.original.bind(py);
            let patch = self.patch.bind(py);
            match self.kind {
                Kind::Factory => {
                    let wrap = |factory: Bound<'py, PyAny>| {
                        Bound::new(py, ProtocolFactory::new(factory.unbind()))
                    };
                    if let Ok(factory) = args.get_item(0) {
                        let mut all = vec![wrap(factory)?.into_any()];
                        all.extend(args.iter().skip(1));
                        original.call(PyTuple::new(py, all)?, kwargs)
                    } else if let Some(factory) = kwargs
                        .map(|kw| kw.get_item("protocol_factory"))
                        .transpose()?
                        .flatten()
                    {
                        let kwargs = kwargs.map(|kw| kw.copy()).transpose()?;
                        let kwargs = kwargs.unwrap_or_else(|| PyDict::new(py));
                        kwargs.set_item("protocol_factory", wrap(factory)?)?;
                        original.call(args, Some(&kwargs))
                    } else {
                        original.call(args, kwargs)
                    }
                }
                Kind::Reader => match (args.get_item(0), args.get_item(1)) {
                    (Ok(fd), Ok(callback)) if kwargs.is_none_or(|kw| kw.is_empty()) => {
                        let rest = args.get_slice(2, args.len());
                        let wrapped = monitored_reader(patch, &callback, &rest)?;
                        original.call1((fd, wrapped))
                    }
                    // Not a valid call: the loop's own method says why.
                    _ => original.call(args, kwargs),
                },
            }
        })
    }

    /// The loop's own method.
    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.original.clone_ref(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.original)?;
        visit.call(&self.patch)
    }
}

/// The replacements for `event_loop` (those of [`METHODS`] it has), bound to its patch, as
/// `(name, replacement)` pairs for its class of its own.
pub(crate) fn replacements<'py>(
    patch: &Bound<'py, LoopPatch>,
    event_loop: &Bound<'py, PyAny>,
) -> PyResult<Vec<(&'static str, Bound<'py, PyAny>)>> {
    let py = patch.py();
    let mut out = Vec::with_capacity(METHODS.len());
    for (name, kind) in METHODS {
        let Ok(original) = event_loop.getattr(name) else {
            PyErr::take(py);
            continue;
        };
        let method = LoopMethod {
            kind,
            original: original.unbind(),
            patch: patch.clone().unbind(),
        };
        out.push((name, Bound::new(py, method)?.into_any()));
    }
    Ok(out)
}
