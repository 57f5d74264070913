//! CPython 3.10.

use std::cell::RefCell;
use std::collections::HashMap;

use std::ffi::{c_char, c_int, c_void};
use std::mem::offset_of;

use super::{
    CodeFields, FrameFields, FramePosition, LineTableFormat, Position, PythonVersion, RemoteLayout,
};
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
    const REMOTE_LAYOUT: Option<RemoteLayout> = Some(REMOTE_LAYOUT);

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

// The prefixes of CPython 3.10's structs that the GIL-free frame reader (`crate::remote`) reads,
// field for field from `Include/cpython/pystate.h`, `Include/cpython/frameobject.h`,
// `Include/cpython/code.h` and `Include/cpython/unicodeobject.h` (3.10.x share them); offsets
// checked against a C compiler's `offsetof` on the 3.10.13 headers.

/// `struct _ts` up to `frame`.
#[repr(C)]
struct ThreadState {
    prev: *mut c_void,
    next: *mut c_void,
    interp: *mut c_void,
    frame: *mut c_void,
}

/// `PyTryBlock`.
#[repr(C)]
struct TryBlock {
    b_type: c_int,
    b_handler: c_int,
    b_level: c_int,
}

/// `struct _frame` (`PyFrameObject`) up to `f_state`.
#[repr(C)]
struct FrameObject {
    ob_base: ffi::PyVarObject,
    f_back: *mut c_void,
    f_code: *mut c_void,
    f_builtins: *mut c_void,
    f_globals: *mut c_void,
    f_locals: *mut c_void,
    f_valuestack: *mut c_void,
    f_trace: *mut c_void,
    f_stackdepth: c_int,
    f_trace_lines: c_char,
    f_trace_opcodes: c_char,
    f_gen: *mut c_void,
    f_lasti: c_int,
    f_lineno: c_int,
    f_iblock: c_int,
    f_state: c_char,
    f_blockstack: [TryBlock; 0],
}

/// `PyCodeObject` up to `co_linetable`.
#[repr(C)]
struct Code {
    ob_base: ffi::PyObject,
    co_argcount: c_int,
    co_posonlyargcount: c_int,
    co_kwonlyargcount: c_int,
    co_nlocals: c_int,
    co_stacksize: c_int,
    co_flags: c_int,
    co_firstlineno: c_int,
    co_code: *mut c_void,
    co_consts: *mut c_void,
    co_names: *mut c_void,
    co_varnames: *mut c_void,
    co_freevars: *mut c_void,
    co_cellvars: *mut c_void,
    co_cell2arg: *mut c_void,
    co_filename: *mut c_void,
    co_name: *mut c_void,
    co_linetable: *mut c_void,
}

const REMOTE_LAYOUT: RemoteLayout = RemoteLayout {
    thread_to_frame: &[offset_of!(ThreadState, frame)],
    frame: FrameFields {
        size: offset_of!(FrameObject, f_state),
        code: offset_of!(FrameObject, f_code),
        code_tag_bits: 0,
        previous: offset_of!(FrameObject, f_back),
        position: FramePosition::LastiAndLineno {
            lasti: offset_of!(FrameObject, f_lasti),
            lineno: offset_of!(FrameObject, f_lineno),
        },
        owner: None,
        shim_owner_from: None,
    },
    code: CodeFields {
        size: std::mem::size_of::<Code>(),
        firstlineno: offset_of!(Code, co_firstlineno),
        filename: offset_of!(Code, co_filename),
        name: offset_of!(Code, co_name),
        qualname: None,
        linetable: offset_of!(Code, co_linetable),
        linetable_format: LineTableFormat::Pep626,
        first_traceable: None,
        instructions: None,
    },
    unicode: super::unicode::FIELDS,
};

#[cfg(all(target_pointer_width = "64", not(py_sys_config = "Py_TRACE_REFS")))]
const _: () = {
    assert!(offset_of!(ThreadState, frame) == 24);
    assert!(offset_of!(FrameObject, f_back) == 24);
    assert!(offset_of!(FrameObject, f_code) == 32);
    assert!(offset_of!(FrameObject, f_lasti) == 96);
    assert!(offset_of!(FrameObject, f_lineno) == 100);
    assert!(offset_of!(Code, co_firstlineno) == 40);
    assert!(offset_of!(Code, co_filename) == 104);
    assert!(offset_of!(Code, co_name) == 112);
    assert!(offset_of!(Code, co_linetable) == 120);
};
