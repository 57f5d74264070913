//! Reader and writer callbacks: what a loop calls when a file descriptor is ready
//! (`loop.add_reader(fd, callback, *args)`, and on asyncio's selector loops every transport's
//! read and write — `Protocol.data_received`, `eof_received`, `BufferedProtocol.get_buffer` /
//! `buffer_updated`, `DatagramProtocol.datagram_received` run inside them) is monitored like a
//! scheduled callback: wrapped in a `MonitoredCallback` when it is registered.
//!
//! asyncio's selector loop builds these handles itself (`events.Handle(...)` in `_add_reader`
//! and `_add_writer`, which `add_reader` / `add_writer` and the transports call), without
//! `call_soon`: its class's `_add_reader` and `_add_writer` get a [`RegisteringMethod`] of ours
//! (once, on the class, as `close` does: two instance attributes more would cost the loop its
//! compact attribute layout), which wraps the callback for a monitored loop and only forwards
//! for any other. Any other loop (uvloop's) gets `add_reader` / `add_writer` replacements on its
//! class of its own ([`crate::loop_methods`]), which use [`monitored_reader`] too.

use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::loop_patch::{loop_patch, LoopPatch};
use crate::monitored::{monitored_type, new_monitored};

/// The methods of an asyncio selector loop's class that register a reader or writer handle.
const REGISTERING: [&str; 2] = ["_add_reader", "_add_writer"];

/// `_add_reader` / `_add_writer` of an asyncio selector loop's class: for a monitored loop, the
/// callback (with its arguments) is wrapped in a `MonitoredCallback` before the class's own
/// method builds the handle.
#[pyclass(frozen, module = "aiocop._aiocop", name = "_RegisteringMethod")]
#[derive(Debug)]
pub struct RegisteringMethod {
    /// The class's own method (a function, called with the loop).
    original: Py<PyAny>,
}

#[pymethods]
impl RegisteringMethod {
    #[pyo3(signature = (event_loop, fd, callback, *args))]
    fn __call__(
        &self,
        event_loop: &Bound<'_, PyAny>,
        fd: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<PyAny>> {
        aiocop_hook::heaptype::guard_py(event_loop.py(), "reader registration", || {
            let original = self.original.bind(event_loop.py());
            let called = match loop_patch(event_loop) {
                Some(patch) => {
                    let wrapped = monitored_reader(&patch, callback, args)?;
                    original.call1((event_loop, fd, wrapped))
                }
                None => {
                    let mut all = vec![event_loop.clone(), fd.clone(), callback.clone()];
                    all.extend(args.iter());
                    original.call1(PyTuple::new(event_loop.py(), all)?)
                }
            };
            called.map(Bound::unbind)
        })
    }

    /// Binds like a function: `loop._add_reader` is a method of the loop.
    fn __get__<'py>(
        slf: &Bound<'py, Self>,
        instance: Option<&Bound<'py, PyAny>>,
        _owner: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::binding::bind_as_method(slf.as_any(), instance)
    }

    /// The class's own method.
    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.original.clone_ref(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.original)
    }
}

/// Gives `class` (an asyncio loop's) our `_add_reader` and `_add_writer`, where it has them
/// (a selector loop) and they are not ours already. A class that refuses new attributes keeps
/// its own: its reader callbacks stay unmonitored (logged at debug level through `tracing`).
pub(crate) fn wrap_class_registering(class: &Bound<'_, PyType>) -> PyResult<()> {
    for name in REGISTERING {
        let Ok(original) = class.getattr(name) else {
            continue;
        };
        if original.is_instance_of::<RegisteringMethod>() {
            continue;
        }
        let ours = Bound::new(
            class.py(),
            RegisteringMethod {
                original: original.unbind(),
            },
        )?;
        if let Err(err) = class.setattr(name, ours) {
            tracing::debug!("aiocop could not wrap {name} of a loop class: {err}");
        }
    }
    Ok(())
}

/// `callback(*args)` as a monitored callback of `patch`'s loop: a `MonitoredCallback` (a
/// callback that already is one, without arguments, as it is).
pub(crate) fn monitored_reader<'py>(
    patch: &Bound<'py, LoopPatch>,
    callback: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = patch.py();
    if args.is_empty() && callback.get_type().as_type_ptr() == monitored_type() {
        return Ok(callback.clone());
    }
    let args: Vec<*mut pyo3::ffi::PyObject> = args.iter().map(|a| a.as_ptr()).collect();
    // SAFETY: GIL held; `callback`, the items of `args` (held by the tuple for the call) and
    // `patch` (which owns the shared state passed with it) are valid objects.
    let wrapped = unsafe {
        new_monitored(
            py,
            callback.as_ptr(),
            &args,
            patch.as_ptr(),
            patch.get().shared(),
        )?
    };
    // SAFETY: GIL held; `new_monitored` returns a new reference.
    Ok(unsafe { Bound::from_owned_ptr(py, wrapped) })
}
