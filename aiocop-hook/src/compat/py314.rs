//! CPython 3.14.

use std::ffi::{c_char, c_int, c_void};
use std::mem::offset_of;

use super::{FrameFields, FramePosition, Position, PythonVersion, RemoteLayout};
use pyo3::ffi;

/// CPython 3.14.
#[derive(Debug)]
pub struct Py314;

impl PythonVersion for Py314 {
    const MINOR_VERSION: u8 = 14;
    const REMOTE_LAYOUT: Option<RemoteLayout> = Some(REMOTE_LAYOUT);
    const NATIVE_TIME_SLEEP_EVENT: bool = true;

    unsafe fn frame_position(frame: *mut ffi::PyFrameObject) -> Position {
        // SAFETY: GIL held and `frame` a valid frame (this method's own contract).
        unsafe { super::lasti_position(frame) }
    }
}

// The prefixes of CPython 3.14's private structs that the GIL-free frame reader
// (`crate::remote`) reads, written from the 3.14 headers (`Include/cpython/pystate.h`,
// `Include/internal/pycore_interpframe_structs.h`, `Include/cpython/code.h`,
// `Include/cpython/unicodeobject.h`) for the default (GIL) build; not checked against a
// compiler here (no 3.14 on the build machines): the run-time check against the C API
// (`crate::remote::settle`) turns the reader off if they are wrong. The frame chain starts at
// `tstate->current_frame`; `f_executable` is a `_PyStackRef` (a tagged pointer: the low bit
// marks a deferred reference); the interpreter's own frames (`FRAME_OWNED_BY_INTERPRETER` = 3,
// `FRAME_OWNED_BY_CSTACK` = 4) are skipped, as the C API does.

/// `struct _ts` up to `current_frame`.
#[repr(C)]
struct ThreadState {
    prev: *mut c_void,
    next: *mut c_void,
    interp: *mut c_void,
    eval_breaker: usize,
    _status: u32,
    holds_gil: c_int,
    _whence: c_int,
    state: c_int,
    py_recursion_remaining: c_int,
    py_recursion_limit: c_int,
    recursion_headroom: c_int,
    tracing: c_int,
    what_event: c_int,
    current_frame: *mut c_void,
}

/// `_PyInterpreterFrame` up to `owner`.
#[repr(C)]
struct InterpreterFrame {
    f_executable: usize,
    previous: *mut c_void,
    f_funcobj: usize,
    f_globals: *mut c_void,
    f_builtins: *mut c_void,
    f_locals: *mut c_void,
    frame_obj: *mut c_void,
    instr_ptr: *mut u16,
    stackpointer: *mut c_void,
    return_offset: u16,
    owner: c_char,
}

/// `FRAME_OWNED_BY_INTERPRETER`, the first of the interpreter's own frame owners.
const FRAME_OWNED_BY_INTERPRETER: i8 = 3;
/// `Py_TAG_BITS` of a `_PyStackRef` in the default build.
const STACKREF_TAG_BITS: usize = 1;

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
    co_executors: *mut c_void,
    _co_cached: *mut c_void,
    _co_instrumentation_version: u64,
    _co_monitoring: *mut c_void,
    _co_unique_id: isize,
    _co_firsttraceable: c_int,
    co_extra: *mut c_void,
    co_code_adaptive: [u16; 0],
}

const REMOTE_LAYOUT: RemoteLayout = RemoteLayout {
    thread_to_frame: &[offset_of!(ThreadState, current_frame)],
    frame: FrameFields {
        size: offset_of!(InterpreterFrame, owner) + 1,
        code: offset_of!(InterpreterFrame, f_executable),
        code_tag_bits: STACKREF_TAG_BITS,
        previous: offset_of!(InterpreterFrame, previous),
        position: FramePosition::InstructionPointer(offset_of!(InterpreterFrame, instr_ptr)),
        owner: Some(offset_of!(InterpreterFrame, owner)),
        shim_owner_from: Some(FRAME_OWNED_BY_INTERPRETER),
    },
    code: code_fields_311!(Code, _co_firsttraceable),
    unicode: super::unicode::FIELDS,
};

#[cfg(all(target_pointer_width = "64", not(py_sys_config = "Py_TRACE_REFS")))]
const _: () = {
    assert!(offset_of!(ThreadState, current_frame) == 72);
    assert!(offset_of!(InterpreterFrame, previous) == 8);
    assert!(offset_of!(InterpreterFrame, instr_ptr) == 56);
    assert!(offset_of!(InterpreterFrame, owner) == 74);
    assert!(offset_of!(Code, co_firstlineno) == 68);
    assert!(offset_of!(Code, co_filename) == 112);
    assert!(offset_of!(Code, co_qualname) == 128);
    assert!(offset_of!(Code, co_linetable) == 136);
    assert!(offset_of!(Code, _co_firsttraceable) == 192);
    assert!(offset_of!(Code, co_code_adaptive) == 208);
};
