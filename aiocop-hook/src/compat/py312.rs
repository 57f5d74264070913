//! CPython 3.12.

use std::ffi::{c_char, c_int, c_void};
use std::mem::offset_of;

use super::{FrameFields, FramePosition, Position, PythonVersion, RemoteLayout};
use pyo3::ffi;

/// CPython 3.12.
#[derive(Debug)]
pub struct Py312;

impl PythonVersion for Py312 {
    const MINOR_VERSION: u8 = 12;
    const REMOTE_LAYOUT: Option<RemoteLayout> = Some(REMOTE_LAYOUT);
    const NATIVE_TIME_SLEEP_EVENT: bool = false;

    unsafe fn frame_position(frame: *mut ffi::PyFrameObject) -> Position {
        // SAFETY: GIL held and `frame` a valid frame (this method's own contract).
        unsafe { super::lasti_position(frame) }
    }
}

// The prefixes of CPython 3.12's private structs that the GIL-free frame reader
// (`crate::remote`) reads, field for field from `Include/cpython/pystate.h`,
// `Include/internal/pycore_frame.h`, `Include/cpython/code.h` and
// `Include/cpython/unicodeobject.h` (3.12.x share them); offsets checked against a C compiler's
// `offsetof` on the 3.12.1 headers. The frame chain starts at `tstate->cframe->current_frame`.

/// `struct _ts` up to `cframe`.
#[repr(C)]
struct ThreadState {
    prev: *mut c_void,
    next: *mut c_void,
    interp: *mut c_void,
    _status: u32,
    py_recursion_remaining: c_int,
    py_recursion_limit: c_int,
    c_recursion_remaining: c_int,
    recursion_headroom: c_int,
    tracing: c_int,
    what_event: c_int,
    cframe: *mut c_void,
}

/// `_PyCFrame`.
#[repr(C)]
struct CFrame {
    current_frame: *mut c_void,
    previous: *mut c_void,
}

/// `_PyInterpreterFrame` up to `owner`.
#[repr(C)]
struct InterpreterFrame {
    f_code: *mut c_void,
    previous: *mut c_void,
    f_funcobj: *mut c_void,
    f_globals: *mut c_void,
    f_builtins: *mut c_void,
    f_locals: *mut c_void,
    frame_obj: *mut c_void,
    prev_instr: *mut u16,
    stacktop: c_int,
    return_offset: u16,
    owner: c_char,
}

/// `PyCodeObject` (`_PyCode_DEF`) up to `co_code_adaptive`.
#[repr(C)]
struct Code {
    ob_base: ffi::PyVarObject,
    co_consts: *mut c_void,
    co_names: *mut c_void,
    co_exceptiontable: *mut c_void,
    co_flags: c_int,
    co_argcount: c_int,
    co_posonlyargcount: c_int,
    co_kwonlyargcount: c_int,
    co_stacksize: c_int,
    co_firstlineno: c_int,
    co_nlocalsplus: c_int,
    co_framesize: c_int,
    co_nlocals: c_int,
    co_ncellvars: c_int,
    co_nfreevars: c_int,
    co_version: u32,
    co_localsplusnames: *mut c_void,
    co_localspluskinds: *mut c_void,
    co_filename: *mut c_void,
    co_name: *mut c_void,
    co_qualname: *mut c_void,
    co_linetable: *mut c_void,
    co_weakreflist: *mut c_void,
    _co_cached: *mut c_void,
    _co_instrumentation_version: u64,
    _co_monitoring: *mut c_void,
    _co_firsttraceable: c_int,
    co_extra: *mut c_void,
    co_code_adaptive: [u16; 0],
}

const REMOTE_LAYOUT: RemoteLayout = RemoteLayout {
    thread_to_frame: &[
        offset_of!(ThreadState, cframe),
        offset_of!(CFrame, current_frame),
    ],
    frame: FrameFields {
        size: offset_of!(InterpreterFrame, owner) + 1,
        code: offset_of!(InterpreterFrame, f_code),
        code_tag_bits: 0,
        previous: offset_of!(InterpreterFrame, previous),
        position: FramePosition::InstructionPointer(offset_of!(InterpreterFrame, prev_instr)),
        owner: Some(offset_of!(InterpreterFrame, owner)),
        shim_owner_from: None,
    },
    code: code_fields_311!(Code, _co_firsttraceable),
    unicode: super::unicode::FIELDS,
};

#[cfg(all(target_pointer_width = "64", not(py_sys_config = "Py_TRACE_REFS")))]
const _: () = {
    assert!(offset_of!(ThreadState, cframe) == 56);
    assert!(offset_of!(CFrame, current_frame) == 0);
    assert!(offset_of!(InterpreterFrame, previous) == 8);
    assert!(offset_of!(InterpreterFrame, prev_instr) == 56);
    assert!(offset_of!(InterpreterFrame, owner) == 70);
    assert!(offset_of!(Code, co_firstlineno) == 68);
    assert!(offset_of!(Code, co_filename) == 112);
    assert!(offset_of!(Code, co_qualname) == 128);
    assert!(offset_of!(Code, co_linetable) == 136);
    assert!(offset_of!(Code, _co_firsttraceable) == 176);
    assert!(offset_of!(Code, co_code_adaptive) == 192);
};
