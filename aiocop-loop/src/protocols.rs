//! Protocol callbacks on a loop that calls them itself (uvloop: libuv calls the transports,
//! which call `connection_made`, `data_received`, `eof_received`, `get_buffer` /
//! `buffer_updated`, `datagram_received`, `connection_lost`, ... from C, through no handle
//! a scheduling method made).
//!
//! The protocol factory given to the loop (`create_server`, `create_connection`, ...: see
//! [`crate::loop_methods`]) is wrapped in a [`ProtocolFactory`], which calls it and then
//! [`instrument`]s the class of the protocol it returns, once per class, before the loop makes
//! its transport: each callback method the class has beyond asyncio's no-op defaults becomes a
//! [`MonitoredMethod`] on the class itself, a descriptor that binds the method as before and,
//! looked up on a thread whose running loop is a monitored loop of this kind, wraps the bound
//! method in a `MonitoredCallback` of that loop, which the transport then finds (uvloop keeps
//! `protocol.data_received` from that moment, and looks the others up when it calls them).
//! The protocol stays the same object — its class, `isinstance`, its attributes, its
//! `__dict__`, `transport.get_protocol()` — and its instance attributes keep CPython's
//! compact layout and specialised lookups (per-instance entries would not fit uvicorn's
//! protocol, whose 28 attributes nearly fill the 30 a class's instances share). Looked up on
//! any other thread, or while monitoring is off, the method is the plain bound method. A class
//! CPython does not let us change (a C type) stays unmonitored.
//!
//! asyncio's selector loop needs none of this: its transports read and write in reader and
//! writer handles ([`crate::readers`]), and schedule `connection_made` / `connection_lost` with
//! `call_soon`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::loop_patch::{loop_patch, LoopPatch};
use crate::monitored::new_monitored;

/// The callback methods of asyncio's protocol classes that a loop calls.
const CALLBACKS: [&str; 13] = [
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
    "connection_lost",
];

/// A protocol factory handed to a monitored loop: calls the user's factory, then instruments
/// the class of the protocol it returns (see the module's documentation).
#[pyclass(frozen, module = "aiocop._aiocop", name = "_ProtocolFactory")]
#[derive(Debug)]
pub struct ProtocolFactory {
    factory: Py<PyAny>,
}

impl ProtocolFactory {
    /// `factory` wrapped for a monitored loop.
    pub(crate) fn new(factory: Py<PyAny>) -> Self {
        Self { factory }
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
            if let Err(err) = instrument(&protocol.get_type()) {
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
        visit.call(&self.factory)
    }
}

/// A protocol class's callback method, monitored: a descriptor on the class in place of the
/// method it holds (see the module's documentation).
#[pyclass(frozen, module = "aiocop._aiocop", name = "_MonitoredMethod")]
#[derive(Debug)]
pub struct MonitoredMethod {
    /// The class attribute it replaced (the method's function).
    function: Py<PyAny>,
}

#[pymethods]
impl MonitoredMethod {
    fn __get__<'py>(
        &self,
        py: Python<'py>,
        instance: Bound<'py, PyAny>,
        owner: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let function = self.function.bind(py);
        let bound = match function.getattr(pyo3::intern!(py, "__get__")) {
            Ok(get) => get.call1((&instance, owner))?,
            Err(_) => function.clone(),
        };
        if instance.is_none() {
            return Ok(bound);
        }
        let Some(patch) = protocols_loop(py) else {
            return Ok(bound);
        };
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
        Ok(unsafe { Bound::from_owned_ptr(py, wrapped) })
    }

    /// The method it monitors.
    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.function.clone_ref(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.function)
    }
}

/// The patch of this thread's running loop, if it is a monitored loop that calls its
/// protocols itself.
fn protocols_loop(py: Python<'_>) -> Option<Bound<'_, LoopPatch>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get = GET_RUNNING_LOOP
        .get_or_try_init(py, || {
            py.import("asyncio.events")?
                .getattr("_get_running_loop")
                .map(Bound::unbind)
        })
        .ok()?;
    let running = get.bind(py).call0().ok()?;
    if running.is_none() {
        return None;
    }
    loop_patch(&running).filter(|patch| patch.get().calls_protocols())
}

/// Makes the callback methods of `class` monitored (see the module's documentation), once per
/// class: each one its class's lookup finds, but asyncio's no-op defaults and those already
/// ours.
pub(crate) fn instrument(class: &Bound<'_, pyo3::types::PyType>) -> PyResult<()> {
    let py = class.py();
    let done = instrumented(py)?;
    if done.contains(class)? {
        return Ok(());
    }
    // Tried once per class: one CPython does not let us change stays as it is.
    done.call_method1(pyo3::intern!(py, "add"), (class,))?;
    let defaults = base_defaults(py)?;
    let mro = class.mro();
    for name in CALLBACKS {
        let Some(attr) = lookup(&mro, name)? else {
            continue;
        };
        if attr.is_instance_of::<MonitoredMethod>() || defaults.iter().any(|d| d.bind(py).is(&attr))
        {
            continue;
        }
        let method = MonitoredMethod {
            function: attr.unbind(),
        };
        class.setattr(name, Bound::new(py, method)?)?;
    }
    Ok(())
}

/// `name` as the class with method resolution order `mro` has it, without binding it.
fn lookup<'py>(mro: &Bound<'py, PyTuple>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = mro.py();
    for base in mro.iter() {
        let namespace = base.getattr(pyo3::intern!(py, "__dict__"))?;
        if let Some(attr) = namespace
            .call_method1(pyo3::intern!(py, "get"), (name,))
            .ok()
            .filter(|attr| !attr.is_none())
        {
            return Ok(Some(attr));
        }
    }
    Ok(None)
}

/// The protocol classes already instrumented (a `weakref.WeakSet`: a class may go away).
fn instrumented(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static DONE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    DONE.get_or_try_init(py, || {
        py.import("weakref")?
            .getattr("WeakSet")?
            .call0()
            .map(Bound::unbind)
    })
    .map(|done| done.bind(py))
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
                for name in CALLBACKS {
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
