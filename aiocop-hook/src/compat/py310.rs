//! CPython 3.10.

use std::cell::RefCell;
use std::collections::HashMap;

use super::{Position, PythonVersion};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyModule, PyTuple, PyType};

/// CPython 3.10.
#[derive(Debug)]
pub struct Py310;

impl PythonVersion for Py310 {
    const MINOR_VERSION: u8 = 10;
    const NATIVE_TIME_SLEEP_EVENT: bool = false;
    const TASK_STEP_TYPE_NAME: &'static [u8] = b"TaskStepMethWrapper";

    unsafe fn frame_position(frame: *mut ffi::PyFrameObject) -> Position {
        // SAFETY: the caller holds the GIL and passes a valid frame. 3.10 keeps `f_lasti` in
        // code units inside a private struct, so the public line API is the one to use.
        Position::Line(unsafe { ffi::PyFrame_GetLineNumber(frame) })
    }

    /// 3.10 code objects have no `co_qualname`: the name is found in the module's map of its
    /// code objects to qualified names, made once per module (see [`module_qualnames`]).
    fn qualname(code: &Bound<'_, PyAny>, module: Option<&str>) -> Option<String> {
        let module = module?;
        QUALNAMES.with(|cache| {
            let mut cache = cache.borrow_mut();
            let key = code.as_ptr() as usize;
            let namespace = module_namespace(code.py(), module)?;
            if let Some(names) = cache.get(module) {
                if let Some(name) = names.names.get(&key) {
                    return Some(name.clone());
                }
                if names.namespace_len == namespace.len() {
                    return None;
                }
            }
            if cache.len() >= MODULES_CAP {
                cache.clear();
            }
            let names = module_qualnames(&namespace, module);
            let found = names.names.get(&key).cloned();
            cache.insert(module.to_owned(), names);
            found
        })
    }
}

/// At most this many modules' maps are kept (then all are dropped and made again on need).
const MODULES_CAP: usize = 256;
/// A module's map stops growing at this many code objects.
const CODES_PER_MODULE_CAP: usize = 20_000;
/// `CO_NEWLOCALS`: set on a function's code, not on a class body's.
const CO_NEWLOCALS: i64 = 0x0002;

/// A module's code objects and their qualified names. The code objects are kept alive, so an
/// address stands for its code object while the map exists.
struct ModuleQualnames {
    names: HashMap<usize, String>,
    _codes: Vec<Py<PyAny>>,
    /// How many names the module's namespace held when the map was made: a miss is looked
    /// for again only once the namespace has changed (a module still being imported).
    namespace_len: usize,
}

thread_local! {
    static QUALNAMES: RefCell<HashMap<String, ModuleQualnames>> = RefCell::new(HashMap::new());
}

/// The namespace of the module named `module`, from `sys.modules`.
fn module_namespace<'py>(py: Python<'py>, module: &str) -> Option<Bound<'py, pyo3::types::PyDict>> {
    let found = py
        .import("sys")
        .and_then(|sys| sys.getattr("modules"))
        .and_then(|modules| modules.get_item(module))
        .and_then(|m| m.cast_into::<PyModule>().map_err(PyErr::from))
        .map(|m| m.dict());
    PyErr::take(py);
    found.ok()
}

/// The map of a module's functions and classes (their methods, and the code nested in both)
/// to qualified names, as 3.11's `co_qualname` gives them: a function's own `__qualname__`,
/// `<locals>` for code nested in a function, `Class.name` for code in a class body.
fn module_qualnames(namespace: &Bound<'_, pyo3::types::PyDict>, module: &str) -> ModuleQualnames {
    let mut out = ModuleQualnames {
        names: HashMap::new(),
        _codes: Vec::new(),
        namespace_len: namespace.len(),
    };
    for (_, value) in namespace.iter() {
        add_object(&mut out, &value, module, 0);
    }
    PyErr::take(namespace.py());
    out
}

/// Adds a module-level or class-level object: a function, a method wrapper or a class (of
/// `module`, not one imported from elsewhere).
fn add_object(out: &mut ModuleQualnames, value: &Bound<'_, PyAny>, module: &str, depth: u8) {
    if depth > 8 || out.names.len() >= CODES_PER_MODULE_CAP {
        return;
    }
    let py = value.py();
    let of_module = value
        .getattr(pyo3::intern!(py, "__module__"))
        .and_then(|m| m.extract::<String>())
        .is_ok_and(|m| m == module);
    if let Ok(class) = value.cast::<PyType>() {
        if of_module {
            if let Ok(dict) = class
                .getattr(pyo3::intern!(py, "__dict__"))
                .and_then(|d| d.call_method0("items"))
            {
                if let Ok(items) = dict.try_iter() {
                    for item in items.flatten() {
                        if let Ok((_, member)) =
                            item.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>()
                        {
                            add_object(out, &member, module, depth + 1);
                        }
                    }
                }
            }
        }
        return;
    }
    // staticmethod / classmethod: the function they hold; property: its accessors.
    for attr in ["__func__", "fget", "fset", "fdel"] {
        if let Ok(inner) = value.getattr(attr) {
            if !inner.is_none() && !inner.is(value) {
                add_object(out, &inner, module, depth + 1);
            }
        }
    }
    if !of_module {
        return;
    }
    let (Ok(code), Ok(qualname)) = (
        value.getattr(pyo3::intern!(py, "__code__")),
        value
            .getattr(pyo3::intern!(py, "__qualname__"))
            .and_then(|q| q.extract::<String>()),
    ) else {
        return;
    };
    add_code(out, &code, qualname);
}

/// Adds `code` as `qualname`, and the code objects nested in it.
fn add_code(out: &mut ModuleQualnames, code: &Bound<'_, PyAny>, qualname: String) {
    if out.names.len() >= CODES_PER_MODULE_CAP {
        return;
    }
    let py = code.py();
    let key = code.as_ptr() as usize;
    if out.names.contains_key(&key) {
        return;
    }
    let is_function = code
        .getattr(pyo3::intern!(py, "co_flags"))
        .and_then(|f| f.extract::<i64>())
        .is_ok_and(|flags| flags & CO_NEWLOCALS != 0);
    out.names.insert(key, qualname.clone());
    out._codes.push(code.clone().unbind());
    let Ok(consts) = code
        .getattr(pyo3::intern!(py, "co_consts"))
        .and_then(|c| c.cast_into::<PyTuple>().map_err(PyErr::from))
    else {
        return;
    };
    let code_type = code.get_type();
    for nested in consts.iter().filter(|c| c.get_type().is(&code_type)) {
        let Ok(name) = nested
            .getattr(pyo3::intern!(py, "co_name"))
            .and_then(|n| n.extract::<String>())
        else {
            continue;
        };
        let child = if is_function {
            format!("{qualname}.<locals>.{name}")
        } else {
            format!("{qualname}.{name}")
        };
        add_code(out, &nested, child);
    }
}
