//! CPython version differences, in one place (py-spy's pattern: one trait, one module per version).
//!
//! What differs between the versions we support (3.10–3.14), from the CPython docs:
//!
//! | version | `time.sleep` audit event | frame position API | notes |
//! |---|---|---|---|
//! | 3.10 | none (aiocop wraps `time.sleep`) | `PyFrame_GetLineNumber` only (`f_lasti` is private and in code units) | no `co_qualname` (3.11+): qualified names are rebuilt from the module's functions and classes and the code objects nested in them (`py310.rs`) |
//! | 3.11 | none (wrapped) | `PyFrame_GetLasti` (bytes) + `PyCode_Addr2Line` | frames are lazily materialised `_PyInterpreterFrame`s; `PyEval_GetFrame`/`PyFrame_GetBack` materialise them, so captures walk the `_PyInterpreterFrame` chain directly (`py311.rs`; before the first walk of the process a layout check of the fields it starts from, then the walk itself, against the C API) |
//! | 3.12 | none (wrapped) | as 3.11 | `sys.monitoring` arrives (unused); captures walk frame objects (C API); the C Task's step type is named `_asyncio.TaskStepMethWrapper` (`TaskStepMethWrapper` before) |
//! | 3.13 | native `time.sleep` event (argument: the seconds) | as 3.11 | `Py_IsFinalizing` becomes public (`_Py_IsFinalizing` before) |
//! | 3.14 | native | as 3.11 | as 3.13 |
//! | all | | | asyncio's stock `BaseEventLoop.call_soon` does the same steps outside debug mode (closed check, `events.Handle`, append to `_ready`) |
//!
//! Each version also gives the GIL-free frame reader of the CPU sampler (`crate::remote`) its
//! [`RemoteLayout`]: where the thread state's current frame, the frame's code, link and
//! position, and the code object's names and line table sit (3.10: the `PyFrameObject` chain
//! from `tstate->frame`, `f_lasti` in code units and PEP 626 line pairs; 3.11, 3.12:
//! `_PyInterpreterFrame`s from `tstate->cframe->current_frame`, `prev_instr`; 3.13:
//! `tstate->current_frame`, `instr_ptr`, entry frames owned by the C stack; 3.14: as 3.13 with
//! `f_executable` a tagged `_PyStackRef`; 3.11+: the location table).
//!
//! The crate is compiled against one CPython version (no abi3: `PySys_AddAuditHook` is outside the
//! limited API), so [`Current`] is chosen with pyo3's `Py_3_x` cfgs and everything else goes
//! through the [`PythonVersion`] trait.

use pyo3::ffi;
use pyo3::prelude::*;

/// The `CodeFields` of a 3.11+ `PyCodeObject` mirror `$code` (fields named as in CPython's
/// headers; `$first_traceable` is `co_firsttraceable` on 3.11, `_co_firsttraceable` after).
#[cfg(Py_3_11)]
macro_rules! code_fields_311 {
    ($code:ty, $first_traceable:ident) => {
        $crate::compat::CodeFields {
            size: ::std::mem::offset_of!($code, co_code_adaptive),
            firstlineno: ::std::mem::offset_of!($code, co_firstlineno),
            filename: ::std::mem::offset_of!($code, co_filename),
            name: ::std::mem::offset_of!($code, co_name),
            qualname: Some(::std::mem::offset_of!($code, co_qualname)),
            linetable: ::std::mem::offset_of!($code, co_linetable),
            linetable_format: $crate::compat::LineTableFormat::Locations,
            first_traceable: Some(::std::mem::offset_of!($code, $first_traceable)),
            instructions: Some(::std::mem::offset_of!($code, co_code_adaptive)),
        }
    };
}

mod unicode;

#[cfg(not(Py_3_11))]
mod py310;
#[cfg(all(Py_3_11, not(Py_3_12)))]
mod py311;
#[cfg(all(Py_3_12, not(Py_3_13)))]
mod py312;
#[cfg(all(Py_3_13, not(Py_3_14)))]
mod py313;
#[cfg(Py_3_14)]
mod py314;

#[cfg(not(Py_3_11))]
pub use py310::Py310 as Current;
#[cfg(all(Py_3_11, not(Py_3_12)))]
pub use py311::Py311 as Current;
#[cfg(all(Py_3_12, not(Py_3_13)))]
pub use py312::Py312 as Current;
#[cfg(all(Py_3_13, not(Py_3_14)))]
pub use py313::Py313 as Current;
#[cfg(Py_3_14)]
pub use py314::Py314 as Current;

/// Where a frame stood when it was captured: either an instruction offset to resolve to a line
/// later (cheap to capture), or the line itself where the version offers nothing cheaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    /// Byte offset of the last attempted instruction, for `PyCode_Addr2Line`.
    Lasti(i32),
    /// The line number, already resolved.
    Line(i32),
}

/// What [`PythonVersion::check_frame_layout`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutCheck {
    /// The fields read agree with the public C API (or there is nothing to check).
    Agrees,
    /// This field disagrees with the public C API: the direct walk must not run.
    Disagrees(&'static str),
    /// The thread has no Python frame to check against: ask again at a later capture.
    NoFrame,
}

/// Where the fields that the GIL-free frame reader (`crate::remote`) reads sit in this
/// version's private structs: byte offsets from the version's headers (`Include/cpython/` and
/// `Include/internal/`), 64-bit builds without `Py_TRACE_REFS`. The reader copies memory
/// through `process_vm_readv`, so a wrong offset gives a wrong (and then rejected) value,
/// never a fault; the run-time check against the C API (`crate::remote::settle`) turns the
/// reader off on a mismatch.
#[derive(Debug, Clone, Copy)]
pub struct RemoteLayout {
    /// The pointer hops from a `PyThreadState*` to its innermost frame: `frame` (3.10),
    /// `cframe` then `current_frame` (3.11, 3.12), `current_frame` (3.13+).
    pub thread_to_frame: &'static [usize],
    /// The frame's fields.
    pub frame: FrameFields,
    /// The code object's fields.
    pub code: CodeFields,
    /// Where a compact unicode object's characters start.
    pub unicode: UnicodeFields,
}

/// The fields of one frame: a `PyFrameObject` on 3.10, a `_PyInterpreterFrame` from 3.11.
#[derive(Debug, Clone, Copy)]
pub struct FrameFields {
    /// How many bytes of the frame to read (covers every field below).
    pub size: usize,
    /// The code object pointer (`f_code`; `f_executable` from 3.13).
    pub code: usize,
    /// Tag bits to clear from the code pointer (3.14's `_PyStackRef`), else 0.
    pub code_tag_bits: usize,
    /// The next frame out (`f_back` on 3.10, `previous` after).
    pub previous: usize,
    /// Where the frame stands in its code.
    pub position: FramePosition,
    /// `owner` (3.11+): who owns the frame, a `c_char`.
    pub owner: Option<usize>,
    /// The first `owner` value of the interpreter's own shim frames (`FRAME_OWNED_BY_CSTACK`,
    /// 3.14's `FRAME_OWNED_BY_INTERPRETER`), which the C API never shows (3.13+); `None`
    /// where such frames are told apart by their position alone.
    pub shim_owner_from: Option<i8>,
}

/// `FRAME_OWNED_BY_GENERATOR`, the same value in 3.11–3.14.
pub const FRAME_OWNED_BY_GENERATOR: i8 = 1;

/// How a frame records its position.
#[derive(Debug, Clone, Copy)]
pub enum FramePosition {
    /// 3.10: `f_lasti` (an `int`, in code units, -1 before the first instruction) and
    /// `f_lineno` (an `int`, the line while a tracer runs, else 0).
    LastiAndLineno {
        /// Offset of `f_lasti`.
        lasti: usize,
        /// Offset of `f_lineno`.
        lineno: usize,
    },
    /// 3.11+: a pointer into the code object's instructions: `prev_instr` (3.11, 3.12: the last
    /// instruction started) or `instr_ptr` (3.13+: the one executing); either way the C API's
    /// `lasti` is its distance from the first instruction, in code units.
    InstructionPointer(usize),
}

/// The fields of a code object.
#[derive(Debug, Clone, Copy)]
pub struct CodeFields {
    /// How many bytes of the code object to read (covers every field below).
    pub size: usize,
    /// `co_firstlineno` (`int`).
    pub firstlineno: usize,
    /// `co_filename` (unicode).
    pub filename: usize,
    /// `co_name` (unicode).
    pub name: usize,
    /// `co_qualname` (unicode, 3.11+).
    pub qualname: Option<usize>,
    /// `co_linetable` (bytes).
    pub linetable: usize,
    /// The format of `co_linetable`.
    pub linetable_format: LineTableFormat,
    /// `_co_firsttraceable` (`int`, 3.11+): frames before it are still being set up.
    pub first_traceable: Option<usize>,
    /// `co_code_adaptive` (3.11+): the instructions, inside the code object; `ob_size` is their
    /// number of code units.
    pub instructions: Option<usize>,
}

/// The formats of `co_linetable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineTableFormat {
    /// 3.10 (PEP 626): pairs of (bytes advanced: unsigned, lines advanced: signed, -128 for
    /// no line).
    Pep626,
    /// 3.11+: the location table (`Objects/locations.md`): entries of a first byte (bit 7 set,
    /// the kind in bits 3-6, the code units covered minus one in bits 0-2) and varints.
    Locations,
}

/// Where a compact unicode object's characters start.
#[derive(Debug, Clone, Copy)]
pub struct UnicodeFields {
    /// `sizeof(PyASCIIObject)`: an ASCII string's characters follow it.
    pub ascii_data: usize,
    /// `sizeof(PyCompactUnicodeObject)`: any other compact string's characters follow it.
    pub compact_data: usize,
}

/// Offsets shared by 3.10–3.14 (checked with a C compiler on each version's headers):
/// `ob_type` of any object, `ob_size` of a variable-size object, `PyASCIIObject`'s `length`,
/// `hash` and `state` (its bit-field: `interned:2`, `kind:3`, `compact:1`, `ascii:1`) and
/// `PyBytesObject`'s `ob_sval`.
pub mod object_header {
    /// `ob_type`.
    pub const OB_TYPE: usize = 8;
    /// `ob_size` (`PyVarObject`; a bytes object's length).
    pub const OB_SIZE: usize = 16;
    /// `PyASCIIObject.length`.
    pub const UNICODE_LENGTH: usize = 16;
    /// `PyASCIIObject.hash`.
    pub const UNICODE_HASH: usize = 24;
    /// `PyASCIIObject.state` (a 32-bit bit-field).
    pub const UNICODE_STATE: usize = 32;
    /// The `kind` bits of `state` (then shifted right by 2: 1, 2 or 4 bytes a character).
    pub const STATE_KIND_MASK: u32 = 0b111 << 2;
    /// The `compact` bit of `state`.
    pub const STATE_COMPACT: u32 = 1 << 5;
    /// The `ascii` bit of `state`.
    pub const STATE_ASCII: u32 = 1 << 6;
    /// `PyBytesObject.ob_sval`: a bytes object's data.
    pub const BYTES_DATA: usize = 32;
}

/// The CPython version-specific operations aiocop needs.
pub trait PythonVersion {
    /// The minor version (`11` for 3.11).
    const MINOR_VERSION: u8;
    /// Whether CPython raises a native `time.sleep` audit event (3.13+); below that aiocop's
    /// wrapper emits it.
    const NATIVE_TIME_SLEEP_EVENT: bool;
    /// The qualified name (`Class.method`, `outer.<locals>.inner`) of `code`, which belongs
    /// to the module named `module` (when known): `co_qualname` from 3.11. `None` when it
    /// cannot be told (the caller then uses `co_name`).
    fn qualname(code: &Bound<'_, PyAny>, module: Option<&str>) -> Option<String> {
        let _ = module;
        code.getattr(pyo3::intern!(code.py(), "co_qualname"))
            .and_then(|q| q.extract())
            .ok()
    }
    /// The `tp_name` of the C Task's step callbacks (`TaskStepMethWrapper`), a module-less
    /// static type up to 3.11; `_asyncio.TaskStepMethWrapper` from 3.12.
    const TASK_STEP_TYPE_NAME: &'static [u8] = b"_asyncio.TaskStepMethWrapper";
    /// Whether asyncio's stock `BaseEventLoop.call_soon`, outside debug mode, is exactly:
    /// raise if `_closed`, `events.Handle(callback, args, loop, context)`, append it to
    /// `_ready`, return it (through `_check_closed` and `_call_soon`). True for 3.10–3.14;
    /// aiocop's `call_soon` replacement does those steps itself for a stock asyncio loop
    /// instead of calling the Python method, and forwards to it where this is false.
    const STOCK_CALL_SOON_IS_HANDLE_APPEND: bool = true;

    /// The position of `frame` in its code object.
    ///
    /// # Safety
    /// The GIL must be held and `frame` must be a valid frame object.
    unsafe fn frame_position(frame: *mut ffi::PyFrameObject) -> Position;

    /// Whether this version walks the interpreter's frames directly
    /// ([`Self::walk_interpreter_frames`]); then [`Self::check_frame_layout`] runs before the
    /// first walk of the process.
    const DIRECT_FRAME_WALK: bool = false;

    /// Checks, cheaply, that the private structs the direct walk reads have the layout this
    /// build assumes: a few fields of the calling thread's state and current frame, read
    /// through them, against the public C API. Nothing to check by default (no direct walk).
    ///
    /// # Safety
    /// The GIL must be held by the calling thread.
    unsafe fn check_frame_layout() -> LayoutCheck {
        LayoutCheck::Agrees
    }

    /// Walks the calling thread's stack, innermost first, without creating frame objects
    /// (`PyFrame_GetBack` creates one per frame it visits), calling `visit(code, position)`
    /// (`code` borrowed) until it returns false. `false` when this version has no such walk:
    /// the caller then walks frame objects through the public C API.
    ///
    /// # Safety
    /// The GIL must be held by the calling thread.
    unsafe fn walk_interpreter_frames<F: FnMut(*mut ffi::PyObject, Position) -> bool>(
        visit: &mut F,
    ) -> bool {
        let _ = visit;
        false
    }

    /// The offsets the GIL-free frame reader (`crate::remote`) reads through; `None` where
    /// this build has no such layout (the sampler then takes the GIL to sample).
    const REMOTE_LAYOUT: Option<RemoteLayout> = None;

    /// Resolves a captured position to a line number.
    ///
    /// # Safety
    /// The GIL must be held and `code` must be a valid code object.
    unsafe fn resolve_line(code: *mut ffi::PyCodeObject, position: Position) -> i32 {
        match position {
            Position::Line(line) => line,
            // SAFETY: the caller guarantees the GIL and a valid code object; PyCode_Addr2Line
            // accepts any offset and returns -1 when it has no line.
            Position::Lasti(lasti) => unsafe { ffi::PyCode_Addr2Line(code, lasti) },
        }
    }
}

/// Shared 3.11+ implementation of [`PythonVersion::frame_position`].
///
/// # Safety
/// The GIL must be held and `frame` must be a valid frame object.
#[cfg(Py_3_11)]
unsafe fn lasti_position(frame: *mut ffi::PyFrameObject) -> Position {
    // SAFETY: GIL held and `frame` a valid frame (the caller's promise); PyFrame_GetLasti only
    // reads it.
    let lasti = unsafe { ffi::PyFrame_GetLasti(frame) };
    if lasti < 0 {
        // SAFETY: GIL held and `frame` a valid frame (the caller's promise);
        // PyFrame_GetLineNumber only reads it.
        Position::Line(unsafe { ffi::PyFrame_GetLineNumber(frame) })
    } else {
        Position::Lasti(lasti)
    }
}

#[cfg(not(Py_3_13))]
extern "C" {
    // Public as `Py_IsFinalizing` only from 3.13; exported under this name before.
    fn _Py_IsFinalizing() -> std::ffi::c_int;
}

/// Whether the interpreter can still be entered from a thread of ours: initialised and not
/// finalising. Safe to call without the GIL.
pub fn interpreter_alive() -> bool {
    // SAFETY: reads an interpreter-wide flag; callable at any time, without the GIL.
    if unsafe { ffi::Py_IsInitialized() } == 0 {
        return false;
    }
    // SAFETY: reads an interpreter-wide flag; callable without the GIL once initialised.
    #[cfg(Py_3_13)]
    let finalizing = unsafe { ffi::Py_IsFinalizing() } != 0;
    // SAFETY: reads an interpreter-wide flag; callable without the GIL once initialised.
    #[cfg(not(Py_3_13))]
    let finalizing = unsafe { _Py_IsFinalizing() } != 0;
    !finalizing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_sleep_is_native_from_3_13() {
        assert_eq!(
            Current::NATIVE_TIME_SLEEP_EVENT,
            Current::MINOR_VERSION >= 13
        );
    }
}
