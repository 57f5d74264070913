//! CPython 3.11.

use std::ffi::{c_char, c_int, c_void};

use std::mem::offset_of;

use super::{FrameFields, FramePosition, LayoutCheck, Position, PythonVersion, RemoteLayout};
use pyo3::ffi;

/// CPython 3.11.
#[derive(Debug)]
pub struct Py311;

impl PythonVersion for Py311 {
    const MINOR_VERSION: u8 = 11;
    const NATIVE_TIME_SLEEP_EVENT: bool = false;
    const TASK_STEP_TYPE_NAME: &'static [u8] = b"TaskStepMethWrapper";
    const REMOTE_LAYOUT: Option<RemoteLayout> = Some(REMOTE_LAYOUT);

    unsafe fn frame_position(frame: *mut ffi::PyFrameObject) -> Position {
        // SAFETY: GIL held and `frame` a valid frame (this method's own contract).
        unsafe { super::lasti_position(frame) }
    }

    const DIRECT_FRAME_WALK: bool = true;

    unsafe fn check_frame_layout() -> LayoutCheck {
        // SAFETY: the GIL is held by the calling thread (this method's own contract).
        unsafe { check_frame_layout() }
    }

    unsafe fn walk_interpreter_frames<F: FnMut(*mut ffi::PyObject, Position) -> bool>(
        visit: &mut F,
    ) -> bool {
        // SAFETY: the GIL is held by the calling thread, whose stack is walked (this method's
        // own contract).
        unsafe { walk(visit) };
        true
    }
}

// The prefixes of CPython 3.11's private structs that the walk reads, field for field from
// `Include/cpython/pystate.h`, `Include/internal/pycore_frame.h` and `Include/cpython/code.h`
// (3.11.0 to 3.11.x share them). Offsets checked below against a C compiler's `offsetof` on the
// 3.11 headers (x86-64 and aarch64 Linux); before the first walk, the fields it starts from
// are checked against the public C API (`check_frame_layout`), then the walk itself
// (`crate::stack`), and a mismatch turns it off.

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

/// What the GIL-free frame reader (`crate::remote`) reads on 3.11: the same structs as the
/// direct walk, through `tstate->cframe->current_frame`.
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
    code: code_fields_311!(Code, co_firsttraceable),
    unicode: super::unicode::FIELDS,
};

#[cfg(all(target_pointer_width = "64", not(py_sys_config = "Py_TRACE_REFS")))]
const _: () = {
    assert!(offset_of!(Code, co_filename) == 112);
    assert!(offset_of!(Code, co_name) == 120);
    assert!(offset_of!(Code, co_qualname) == 128);
    assert!(offset_of!(Code, co_linetable) == 136);
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
    // SAFETY: `frame` is a live interpreter frame (the caller's promise): a field read.
    let (code, owner, prev_instr) =
        unsafe { ((*frame).f_code, (*frame).owner, (*frame).prev_instr) };
    if owner == FRAME_OWNED_BY_GENERATOR {
        return false;
    }
    // SAFETY: a live frame's code object is valid while the frame runs; a field read.
    let first_traceable = usize::try_from(unsafe { (*code).co_firsttraceable }).unwrap_or(0);
    // SAFETY: `co_code_adaptive` is the code object's instruction array, of at least
    // `co_firsttraceable + 1` units: the offset stays inside it.
    let first = unsafe { (*code).co_code_adaptive.as_ptr().add(first_traceable) };
    prev_instr < first
}

/// Walks the calling thread's interpreter frames, innermost first, without creating frame
/// objects; the position is what `PyFrame_GetLasti` (or, before the first instruction,
/// `PyFrame_GetLineNumber`) would give.
///
/// # Safety
/// The GIL must be held by the calling thread.
#[inline]
unsafe fn walk<F: FnMut(*mut ffi::PyObject, Position) -> bool>(visit: &mut F) {
    // The GIL is held, so the thread state and its frames are stable and valid for the
    // duration of the walk; the layouts are 3.11's (checked at compile time above, and against
    // the C API at run time by `check_frame_layout` and `crate::stack` before the first walk).
    // SAFETY: GIL held: the calling thread has a current thread state, a `ThreadState` on 3.11.
    let tstate = unsafe { ffi::PyThreadState_Get() }.cast::<ThreadState>();
    // SAFETY: `tstate` is the live thread state of this thread: a field read.
    let cframe = unsafe { (*tstate).cframe };
    if cframe.is_null() {
        return;
    }
    // SAFETY: a non-NULL `cframe` of the running thread points to its live `_PyCFrame`.
    let mut frame = unsafe { (*cframe).current_frame };
    while !frame.is_null() {
        // SAFETY: `frame` is on the running thread's chain of live frames (GIL held).
        if !unsafe { incomplete(frame) } {
            // SAFETY: `frame` is on the running thread's chain of live frames (GIL held):
            // field reads.
            let (code, prev_instr) = unsafe { ((*frame).f_code, (*frame).prev_instr) };
            // SAFETY: a live frame's code object is valid while the frame runs: the address of
            // its instruction array, which `prev_instr` points into (or just before).
            let first = unsafe { (*code).co_code_adaptive.as_ptr() };
            // `_PyInterpreterFrame_LASTI`, in code units; PyFrame_GetLasti gives bytes.
            // SAFETY: both point into the same code object: `prev_instr` into its instruction
            // array or one unit before it (still inside the object, over `co_extra`).
            let units = unsafe { prev_instr.offset_from(first) };
            let position = match i32::try_from(units) {
                Ok(units) if units >= 0 => Position::Lasti(units * 2),
                // SAFETY: a live frame's code object is valid while the frame runs: a field
                // read.
                _ => Position::Line(unsafe { (*code).co_firstlineno }),
            };
            if !visit(code.cast(), position) {
                return;
            }
        }
        // SAFETY: a live frame: its `previous` is the next live frame out, or NULL.
        frame = unsafe { (*frame).previous };
    }
}

/// How many links of the frame chain [`check_frame_layout`] follows looking for the frame
/// `PyEval_GetFrame` returns (the innermost complete frame; incomplete ones are rare and few).
const LAYOUT_CHECK_LINKS: usize = 8;

/// [`PythonVersion::check_frame_layout`] for 3.11: the few fields the walk starts from, read
/// through our structs, against what the public C API says of them: the thread state's
/// interpreter and recursion limit (the fields around its `cframe`), then, among the first
/// links of the frame chain, the frame whose frame object `PyEval_GetFrame` returns, and its
/// code object. Of the pointers read through the structs only `cframe` is followed (and the
/// chain's `previous` links, once the thread state agreed), none of the frames' objects, so a
/// wrong layout is caught before the walk follows it.
///
/// # Safety
/// The GIL must be held by the calling thread.
unsafe fn check_frame_layout() -> LayoutCheck {
    // SAFETY: GIL held: the calling thread has a current thread state.
    let raw = unsafe { ffi::PyThreadState_Get() };
    let tstate = raw.cast::<ThreadState>();
    // SAFETY: `tstate` is this thread's live `struct _ts`, larger than the prefix we read
    // whatever its exact layout: a field read.
    let (interp, recursion_limit, cframe) = unsafe {
        (
            (*tstate).interp,
            (*tstate).recursion_limit,
            (*tstate).cframe,
        )
    };
    // SAFETY: GIL held; `raw` is this thread's live thread state.
    if interp != unsafe { ffi::PyThreadState_GetInterpreter(raw) }.cast() {
        return LayoutCheck::Disagrees("the thread state's interpreter");
    }
    // Every thread's limit follows `sys.setrecursionlimit` (3.11 updates them all): the field
    // just before `cframe` checks that the ints between the two are where we read them.
    // SAFETY: GIL held; reads the interpreter's limit.
    if recursion_limit != unsafe { ffi::Py_GetRecursionLimit() } {
        return LayoutCheck::Disagrees("the thread state's recursion limit");
    }
    if cframe.is_null() {
        return LayoutCheck::Disagrees("the thread state's cframe");
    }
    // SAFETY: GIL held; a borrowed reference to this thread's innermost complete frame (made
    // into a frame object if it was not one), or NULL.
    let frame_object = unsafe { ffi::PyEval_GetFrame() };
    if frame_object.is_null() {
        return LayoutCheck::NoFrame;
    }
    // SAFETY: GIL held; `frame_object` is a valid frame: a new reference to its code.
    let code = unsafe { ffi::PyFrame_GetCode(frame_object) };
    // SAFETY: GIL held; our new reference, released at once (the frame keeps its code alive;
    // the pointer is only compared).
    unsafe { ffi::Py_DECREF(code.cast()) };
    // SAFETY: `cframe` is this thread's live `_PyCFrame` (non-NULL, read above): a field read.
    let mut frame = unsafe { (*cframe).current_frame };
    for _ in 0..LAYOUT_CHECK_LINKS {
        if frame.is_null() {
            break;
        }
        // SAFETY: `frame` is on this thread's chain of live interpreter frames: field reads.
        let (f_code, frame_obj, previous) =
            unsafe { ((*frame).f_code, (*frame).frame_obj, (*frame).previous) };
        if frame_obj == frame_object.cast() {
            return if f_code == code.cast() {
                LayoutCheck::Agrees
            } else {
                LayoutCheck::Disagrees("the current frame's code object")
            };
        }
        frame = previous;
    }
    LayoutCheck::Disagrees("the current frame")
}
