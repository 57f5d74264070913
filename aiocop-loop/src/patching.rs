//! Patching a running loop: its scheduling methods are replaced (as instance attributes of an
//! asyncio loop, whose compact attribute layout they fit; as attributes of a class of its own
//! for any other loop, e.g. uvloop's, which would otherwise get an instance dict and lose
//! CPython's specialised method lookups) by the native replacements
//! ([`crate::scheduling`]), and its `close` delivers pending events first
//! ([`crate::loop_end`]). The callbacks a loop calls outside any scheduled handle are reached
//! too: an asyncio loop's class gets our `_add_reader` / `_add_writer` ([`crate::readers`]),
//! any other loop's class of its own our protocol-factory methods and `add_reader` /
//! `add_writer` ([`crate::loop_methods`]).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::loop_end::{wrap_class_close, ClosingMethod};
use crate::loop_patch::{loop_patch, LoopPatch};
use crate::readers::wrap_class_registering;

/// Patches `event_loop` (running on the current thread) unless it already is. Returns `true`
/// when it patched it now.
pub fn patch_loop(event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = event_loop.py();
    crate::monitored::init_types(py)?;
    if loop_patch(event_loop).is_some() {
        return Ok(false);
    }
    let asyncio = is_asyncio_loop(event_loop);
    let patch = Bound::new(py, LoopPatch::for_loop(event_loop, !asyncio)?)?;
    let mut methods = crate::scheduling::bound_replacements(&patch)?;
    methods.push((
        "call_exception_handler",
        patch.getattr("call_exception_handler")?,
    ));
    if !asyncio {
        // The protocol factories and reader callbacks the loop calls itself (uvloop's).
        methods.extend(crate::loop_methods::replacements(&patch, event_loop)?);
    }
    if asyncio || !patch_class(event_loop, &methods)? {
        // No attribute of our own beyond the five methods: an asyncio loop keeps its
        // attributes in the class's shared-key layout only while they fit (30 on 3.11; the
        // stock loop has 24), and a loop whose instance dict had to be materialised loses
        // CPython's specialised method lookups on every `self.method()` in asyncio's own code.
        // The patch is found through the replacement `call_soon` instead (`loop_patch`), and
        // `close` is wrapped on the class.
        for (name, method) in methods {
            event_loop.setattr(name, method)?;
        }
        wrap_class_close(&event_loop.get_type())?;
        if asyncio {
            // Its reader and writer handles (transports' reads and writes, `add_reader`).
            wrap_class_registering(&event_loop.get_type())?;
        }
    }
    Ok(true)
}

/// Whether `event_loop` is one of asyncio's own loops (a `BaseEventLoop`): those get the
/// five methods as instance attributes, which fit their compact attribute layout.
fn is_asyncio_loop(event_loop: &Bound<'_, PyAny>) -> bool {
    event_loop
        .py()
        .import("asyncio.base_events")
        .and_then(|m| m.getattr("BaseEventLoop"))
        .and_then(|base| event_loop.is_instance(&base))
        .unwrap_or(false)
}

/// Gives `event_loop` a class of its own: a subclass of its class, with the same name, module
/// and no slots of its own, holding the five `methods` and our `close`
/// ([`ClosingMethod`]). Returns `false` (and changes nothing)
/// where no subclass can be made or CPython refuses the class change.
///
/// Any other loop (uvloop's) gets no attribute dict this way: instance attributes would
/// create one (uvloop allocates its loops without the compact attribute values), and CPython
/// specialises `loop.method()` lookups (`LOAD_METHOD`) only for an instance without a dict,
/// so every lookup of any of the loop's methods, from asyncio's Python code and from
/// uvicorn's, would take the generic path.
fn patch_class(
    event_loop: &Bound<'_, PyAny>,
    methods: &[(&'static str, Bound<'_, PyAny>)],
) -> PyResult<bool> {
    let py = event_loop.py();
    let class = event_loop.get_type();
    let namespace = PyDict::new(py);
    for (name, method) in methods {
        namespace.set_item(*name, method)?;
    }
    namespace.set_item("close", ClosingMethod::for_class(&class)?)?;
    for name in ["__module__", "__qualname__", "__doc__"] {
        if let Ok(value) = class.getattr(name) {
            namespace.set_item(name, value)?;
        }
    }
    namespace.set_item("__slots__", PyTuple::empty(py))?;
    let Ok(subclass) = class
        .get_type()
        .call1((class.name()?, (&class,), namespace))
    else {
        return Ok(false);
    };
    match event_loop.setattr("__class__", subclass) {
        Ok(()) => Ok(true),
        Err(err) if err.is_instance_of::<pyo3::exceptions::PyTypeError>(py) => Ok(false),
        Err(err) => Err(err),
    }
}

/// The running loop of this thread, if any.
pub fn running_loop(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    py.import("asyncio")
        .and_then(|m| m.getattr("_get_running_loop"))
        .and_then(|f| f.call0())
        .ok()
        .filter(|l| !l.is_none())
}
