//! Protocol callbacks on a loop that calls them itself (uvloop: libuv calls the transports,
//! which call `connection_made`, `data_received`, `eof_received`, `get_buffer` /
//! `buffer_updated`, `datagram_received`, `connection_lost`, ... from C, through no handle
//! a scheduling method made).
//!
//! The protocol factory given to the loop (`create_server`, `create_connection`, ...: see
//! [`crate::loop_methods`]) is wrapped in a [`ProtocolFactory`], which calls it and then
//! [`instrument`]s the protocol it returns, before the loop makes its transport: each callback
//! method the protocol's class defines (not asyncio's no-op defaults) gets an instance attribute
//! of the same name, a `MonitoredCallback` of the bound method, which the transport then finds
//! (uvloop keeps `protocol.data_received` from that moment, and looks the others up when it
//! calls them). The protocol stays the same object — its class, `isinstance`, its attributes,
//! `transport.get_protocol()` — with a few entries more in its `__dict__` while it is
//! connected: its `connection_lost` (always one of ours once any method is) removes them
//! again after running, so that no reference cycle (protocol → its dict → the bound method →
//! the protocol) outlives the connection. A protocol without an instance dict (`__slots__`)
//! is left as it is, unmonitored.
//!
//! asyncio's selector loop needs none of this: its transports read and write in reader and
//! writer handles ([`crate::readers`]), and schedule `connection_made` / `connection_lost` with
//! `call_soon`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::handle::run_monitored;
use crate::loop_patch::LoopPatch;
use crate::monitored::{monitored_type, new_monitored};

/// The callback methods of asyncio's protocol classes that a loop calls, but
/// `connection_lost` (see [`ConnectionLost`]).
const CALLBACKS: [&str; 12] = [
    "connection_made",
    "data_received",
    "eof_received",
    "get_buffer",
    "buffer_updated",
    "datagram_received",
    "error_received",
    "pause_writing",
    "resume_writing",
    "pipe_data_received",
    "pipe_connection_lost",
    "process_exited",
];

const CONNECTION_LOST: &str = "connection_lost";

/// A protocol factory handed to a monitored loop: calls the user's factory, then instruments
/// the protocol it returns (see the module's documentation).
#[pyclass(frozen, module = "aiocop._aiocop", name = "_ProtocolFactory")]
#[derive(Debug)]
pub struct ProtocolFactory {
    factory: Py<PyAny>,
    patch: Py<LoopPatch>,
}

impl ProtocolFactory {
    /// `factory` wrapped for `patch`'s loop.
    pub(crate) fn new(factory: Py<PyAny>, patch: Py<LoopPatch>) -> Self {
        Self { factory, patch }
    }
}

#[pymethods]
impl ProtocolFactory {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        aiocop_hook::heaptype::guard_py(py, "protocol factory call", || {
            let protocol = self.factory.bind(py).call(args, kwargs)?;
            if let Err(err) = instrument(self.patch.bind(py), &protocol) {
                // The protocol works as it is; it is only not monitored.
                tracing::debug!("aiocop could not monitor a protocol's callbacks: {err}");
            }
            Ok(protocol)
        })
    }

    /// The user's factory.
    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.factory.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let inner = self
            .factory
            .bind(py)
            .repr()
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "<factory>".to_owned());
        format!("<aiocop monitored protocol factory {inner}>")
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.factory)?;
        visit.call(&self.patch)
    }
}

/// `connection_lost` of an instrumented protocol: runs the bound method as a monitored
/// handle, then removes the protocol's instance attributes of ours.
#[pyclass(frozen, module = "aiocop._aiocop", name = "_ConnectionLost")]
#[derive(Debug)]
pub struct ConnectionLost {
    /// `protocol.connection_lost`, bound.
    bound: Py<PyAny>,
    patch: Py<LoopPatch>,
}

#[pymethods]
impl ConnectionLost {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        aiocop_hook::heaptype::guard_py(py, "connection_lost call", || {
            let bound = self.bound.bind(py);
            let invoke = || bound.call(args, kwargs).map(Bound::unbind);
            let result = run_monitored(py, bound, invoke, self.patch.get().shared());
            if let Ok(protocol) = bound.getattr(pyo3::intern!(py, "__self__")) {
                uninstall(&protocol);
            }
            PyErr::take(py);
            result
        })
    }

    /// The bound `connection_lost`.
    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.bound.clone_ref(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.bound)?;
        visit.call(&self.patch)
    }
}

/// Gives `protocol` monitored callback methods for `patch`'s loop (see the module's
/// documentation). Nothing for a protocol without an instance dict, and nothing for a method
/// its dict already holds (set by the user, or by an earlier call for the same protocol).
pub(crate) fn instrument(
    patch: &Bound<'_, LoopPatch>,
    protocol: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let py = protocol.py();
    let Ok(dict) = protocol.getattr(pyo3::intern!(py, "__dict__")) else {
        PyErr::take(py);
        return Ok(());
    };
    let Ok(dict) = dict.cast_into::<PyDict>() else {
        return Ok(());
    };
    let class = protocol.get_type();
    let defaults = base_defaults(py)?;
    let defined = |name: &str| -> Option<Bound<'_, PyAny>> {
        let attr = class.getattr(name).ok()?;
        let default = defaults.iter().any(|d| d.bind(py).is(&attr));
        (!default).then_some(attr)
    };
    let mut installed = 0usize;
    for name in CALLBACKS {
        if dict.contains(name)? || defined(name).is_none() {
            continue;
        }
        let bound = protocol.getattr(name)?;
        // SAFETY: GIL held; `bound` and `patch` (which owns the shared state passed with it)
        // are valid objects.
        let wrapped = unsafe {
            new_monitored(
                py,
                bound.as_ptr(),
                &[],
                patch.as_ptr(),
                patch.get().shared(),
            )?
        };
        // SAFETY: GIL held; `new_monitored` returns a new reference.
        let wrapped = unsafe { Bound::from_owned_ptr(py, wrapped) };
        dict.set_item(name, wrapped)?;
        installed += 1;
    }
    let lost_defined = defined(CONNECTION_LOST).is_some();
    if (installed > 0 || lost_defined)
        && !dict.contains(CONNECTION_LOST)?
        && class.getattr(CONNECTION_LOST).is_ok()
    {
        let lost = ConnectionLost {
            bound: protocol.getattr(CONNECTION_LOST)?.unbind(),
            patch: patch.clone().unbind(),
        };
        dict.set_item(CONNECTION_LOST, Bound::new(py, lost)?)?;
    }
    Ok(())
}

/// Removes the instance attributes [`instrument`] gave `protocol` (those still ours).
fn uninstall(protocol: &Bound<'_, PyAny>) {
    let py = protocol.py();
    let Some(dict) = protocol
        .getattr(pyo3::intern!(py, "__dict__"))
        .ok()
        .and_then(|d| d.cast_into::<PyDict>().ok())
    else {
        PyErr::take(py);
        return;
    };
    for name in CALLBACKS.iter().copied().chain([CONNECTION_LOST]) {
        let ours = match dict.get_item(name) {
            Ok(Some(value)) => {
                value.get_type().as_type_ptr() == monitored_type()
                    || value.is_instance_of::<ConnectionLost>()
            }
            _ => false,
        };
        if ours && dict.del_item(name).is_err() {
            PyErr::take(py);
        }
    }
}

/// The callback methods of asyncio's own protocol classes (`BaseProtocol`, `Protocol`,
/// `BufferedProtocol`, `DatagramProtocol`, `SubprocessProtocol`): no-ops, or `get_buffer`'s
/// `NotImplementedError`. A protocol that does not override one needs no monitoring of it.
fn base_defaults(py: Python<'_>) -> PyResult<&'static [Py<PyAny>]> {
    static DEFAULTS: PyOnceLock<Vec<Py<PyAny>>> = PyOnceLock::new();
    DEFAULTS
        .get_or_try_init(py, || {
            let module = py.import("asyncio.protocols")?;
            let mut defaults = Vec::new();
            for class in [
                "BaseProtocol",
                "Protocol",
                "BufferedProtocol",
                "DatagramProtocol",
                "SubprocessProtocol",
            ] {
                let class = module.getattr(class)?;
                for name in CALLBACKS.iter().copied().chain([CONNECTION_LOST]) {
                    if let Ok(method) = class.getattr(name) {
                        if !defaults.iter().any(|d: &Py<PyAny>| d.bind(py).is(&method)) {
                            defaults.push(method.unbind());
                        }
                    }
                }
            }
            Ok(defaults)
        })
        .map(Vec::as_slice)
}
