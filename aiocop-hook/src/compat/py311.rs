//! CPython 3.11.

use std::ffi::{c_char, c_int, c_void};

use super::{Position, PythonVersion};
use pyo3::ffi;

/// CPython 3.11.
#[derive(Debug)]
pub struct Py311;

impl PythonVersion for Py311 {
    const MINOR_VERSION: u8 = 11;
    const NATIVE_TIME_SLEEP_EVENT: bool = false;
    const TASK_STEP_TYPE_NAME: &'static [u8] = b"TaskStepMethWrapper";

    unsafe fn frame_position(frame: *mut ffi::PyFrameObject) -> Position {
        // SAFETY: forwarded from the caller (GIL held, valid frame).
        unsafe { super::lasti_position(frame) }
    }

    unsafe fn walk_interpreter_frames<F: FnMut(*mut ffi::PyObject, Position) -> bool>(
        visit: &mut F,
    ) -> bool {
        // SAFETY: forwarded from the caller (GIL held, on the thread being walked).
        unsafe { walk(visit) };
        true
    }
}

// The prefixes of CPython 3.11's private structs that the walk reads, field for field from
// `Include/cpython/pystate.h`, `Include/internal/pycore_frame.h` and `Include/cpython/code.h`
// (3.11.0 to 3.11.x share them). Offsets checked below against a C compiler's `offsetof` on the
// 3.11 headers (x86-64 and aarch64 Linux); the walk is also checked against the public C API
// once per process (`crate::stack`), and a mismatch turns it off.

/// `struct _ts` up to `cframe`.
#[repr(C)]
struct ThreadState {
    prev: *mut c_void,
    next: *mut c_void,
    interp: *mut c_void,
    initialized: c_int,
    static_: c_int,
    recursion_remaining: c_int,
    recursion_limit: c_int,
    recursion_headroom: c_int,
    tracing: c_int,
    tracing_what: c_int,
    cframe: *mut CFrame,
}

/// `_PyCFrame`.
#[repr(C)]
struct CFrame {
    use_tracing: u8,
    current_frame: *mut InterpreterFrame,
    previous: *mut CFrame,
}

/// `_PyInterpreterFrame` up to `owner`.
#[repr(C)]
struct InterpreterFrame {
    f_func: *mut ffi::PyObject,
    f_globals: *mut ffi::PyObject,
    f_builtins: *mut ffi::PyObject,
    f_locals: *mut ffi::PyObject,
    f_code: *mut Code,
    frame_obj: *mut ffi::PyObject,
    previous: *mut InterpreterFrame,
    prev_instr: *const u16,
    stacktop: c_int,
    is_entry: bool,
    owner: c_char,
}

/// `enum _frameowner`: `FRAME_OWNED_BY_GENERATOR`.
const FRAME_OWNED_BY_GENERATOR: c_char = 1;

/// `PyCodeObject` (`_PyCode_DEF`) up to `co_code_adaptive`.
#[repr(C)]
struct Code {
    ob_base: ffi::PyVarObject,
    co_consts: *mut ffi::PyObject,
    co_names: *mut ffi::PyObject,
    co_exceptiontable: *mut ffi::PyObject,
    co_flags: c_int,
    co_warmup: i16,
    co_linearray_entry_size: i16,
    co_argcount: c_int,
    co_posonlyargcount: c_int,
    co_kwonlyargcount: c_int,
    co_stacksize: c_int,
    co_firstlineno: c_int,
    co_nlocalsplus: c_int,
    co_nlocals: c_int,
    co_nplaincellvars: c_int,
    co_ncellvars: c_int,
    co_nfreevars: c_int,
    co_localsplusnames: *mut ffi::PyObject,
    co_localspluskinds: *mut ffi::PyObject,
    co_filename: *mut ffi::PyObject,
    co_name: *mut ffi::PyObject,
    co_qualname: *mut ffi::PyObject,
    co_linetable: *mut ffi::PyObject,
    co_weakreflist: *mut ffi::PyObject,
    co_code: *mut ffi::PyObject,
    co_linearray: *mut c_char,
    co_firsttraceable: c_int,
    co_extra: *mut c_void,
    co_code_adaptive: [u16; 0],
}

#[cfg(all(target_pointer_width = "64", not(py_sys_config = "Py_TRACE_REFS")))]
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(ThreadState, cframe) == 56);
    assert!(offset_of!(CFrame, current_frame) == 8);
    assert!(offset_of!(InterpreterFrame, f_code) == 32);
    assert!(offset_of!(InterpreterFrame, previous) == 48);
    assert!(offset_of!(InterpreterFrame, prev_instr) == 56);
    assert!(offset_of!(InterpreterFrame, owner) == 69);
    assert!(offset_of!(Code, co_firstlineno) == 72);
    assert!(offset_of!(Code, co_firsttraceable) == 168);
    assert!(offset_of!(Code, co_code_adaptive) == 184);
};

/// `_PyFrame_IsIncomplete`: a frame still setting up (not yet at its first traceable
/// instruction) is skipped, as `PyFrame_GetBack` does.
///
/// # Safety
/// `frame` must be a live interpreter frame of a thread whose GIL we hold.
unsafe fn incomplete(frame: *const InterpreterFrame) -> bool {
    // SAFETY: guaranteed by the caller; a live frame's code object is valid.
    unsafe {
        let code = (*frame).f_code;
        let first = (*code).co_code_adaptive.as_ptr();
        (*frame).owner != FRAME_OWNED_BY_GENERATOR
            && (*frame).prev_instr
                < first.add(usize::try_from((*code).co_firsttraceable).unwrap_or(0))
    }
}

/// Walks the calling thread's interpreter frames, innermost first, without creating frame
/// objects; the position is what `PyFrame_GetLasti` (or, before the first instruction,
/// `PyFrame_GetLineNumber`) would give.
///
/// # Safety
/// The GIL must be held by the calling thread.
#[inline]
unsafe fn walk<F: FnMut(*mut ffi::PyObject, Position) -> bool>(visit: &mut F) {
    // SAFETY: the GIL is held, so the thread state and its frames are stable and valid for
    // the duration of the walk; the layouts are 3.11's (checked above and at run time).
    unsafe {
        let tstate = ffi::PyThreadState_Get().cast::<ThreadState>();
        let cframe = (*tstate).cframe;
        if cframe.is_null() {
            return;
        }
        let mut frame = (*cframe).current_frame;
        while !frame.is_null() {
            if !incomplete(frame) {
                let code = (*frame).f_code;
                let first = (*code).co_code_adaptive.as_ptr();
                // `_PyInterpreterFrame_LASTI`, in code units; PyFrame_GetLasti gives bytes.
                let units = (*frame).prev_instr.offset_from(first);
                let position = match i32::try_from(units) {
                    Ok(units) if units >= 0 => Position::Lasti(units * 2),
                    _ => Position::Line((*code).co_firstlineno),
                };
                if !visit(code.cast(), position) {
                    return;
                }
            }
            frame = (*frame).previous;
        }
    }
}
