//! Reading a thread's Python stack without the GIL, for the CPU sampler: a C call that holds
//! the GIL (a regex, `json`, `zlib`) no longer hides the stack from it.
//!
//! The reader ([`Reader`]) copies the interpreter's memory with `process_vm_readv` on our own
//! pid, as py-spy reads another process: a read of an unmapped address fails (`EFAULT`)
//! instead of faulting, so a thread state that went away, a frame that was freed, or a layout
//! this build got wrong cannot crash the process; every value read is checked before use, and
//! a stack that changed under the reader is dropped, never shown ([`reader`]). The offsets are
//! the running version's ([`crate::compat::PythonVersion::REMOTE_LAYOUT`]).
//!
//! Whether the reader runs is decided once per process ([`settle`]), under the GIL: the
//! interpreter must be the CPython version this build was made for (the fault point
//! `gil_free_sampling_unsupported` pretends it is not), and the reader's read of a thread's
//! stack must give exactly what the C API gives (code objects, file and function names,
//! lines). Otherwise GIL-free sampling stays off, with one warning, and the sampler takes the
//! GIL to sample, as before.

mod lines;
mod mem;
mod reader;
mod strings;

use std::sync::atomic::{AtomicU8, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;

pub use reader::{Dropped, Reader, RemoteFrame};

use crate::compat::{Current, PythonVersion};

const UNCHECKED: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;
/// Whether GIL-free sampling runs in this process.
static STATE: AtomicU8 = AtomicU8::new(UNCHECKED);

/// Whether the sampler reads stacks without the GIL: `Some(true)` when [`settle`] found the
/// reader agreeing with the C API, `Some(false)` when it turned it off, `None` before it
/// decided (no thread with a Python frame checked yet).
pub fn gil_free_sampling() -> Option<bool> {
    match STATE.load(Ordering::Acquire) {
        ON => Some(true),
        OFF => Some(false),
        _ => None,
    }
}

/// A reader of this interpreter's stacks, once [`settle`] turned GIL-free sampling on.
pub fn reader() -> Option<Reader> {
    if STATE.load(Ordering::Acquire) != ON {
        return None;
    }
    Current::REMOTE_LAYOUT.map(Reader::new)
}

/// Asks for native frames under the GIL-free samples: their signal handler is installed now if
/// GIL-free sampling is on already, else when [`settle`] turns it on.
pub fn want_native_frames(py: Python<'_>) {
    crate::native::want();
    if STATE.load(Ordering::Acquire) == ON {
        crate::native::settle(py);
    }
}

/// Turns GIL-free sampling off for the rest of the process (the sampler's reader panicked);
/// [`reader`] hands out no reader from then on.
pub fn give_up() {
    STATE.store(OFF, Ordering::Release);
}

/// How many frames [`settle`] compares.
const SETTLE_DEPTH: usize = 64;

/// Decides, if not decided yet, whether the sampler may read stacks without the GIL: the
/// interpreter's version must be this build's, and the reader's read of `tstate`'s stack must
/// agree with the C API's; a thread with no Python frame leaves it undecided. Turning it off
/// logs one warning (`tracing` and the `aiocop` logger).
///
/// # Safety
/// The GIL must be held and `tstate` must be the state of a live thread of this interpreter
/// (which cannot run while we hold the GIL).
pub unsafe fn settle(py: Python<'_>, tstate: *mut ffi::PyThreadState) {
    if STATE.load(Ordering::Acquire) != UNCHECKED {
        return;
    }
    let verdict = match supported(py) {
        Err(why) => Err(why),
        // SAFETY: the GIL is held and `tstate` is a live thread state (the caller's promise).
        Ok(()) => match unsafe { compare_with_c_api(py, tstate, SETTLE_DEPTH) } {
            Ok(0) => return, // no Python frame to compare: decided at a later call
            Ok(_) => Ok(()),
            Err(why) => Err(format!(
                "reading its frames without the GIL disagrees with the C API ({why})"
            )),
        },
    };
    let state = if verdict.is_ok() { ON } else { OFF };
    let decided = STATE
        .compare_exchange(UNCHECKED, state, Ordering::AcqRel, Ordering::Acquire)
        .is_ok();
    if decided && state == ON {
        crate::native::settle(py); // native frames go with GIL-free samples
    }
    if let (true, Err(why)) = (decided, verdict) {
        let message = format!(
            "aiocop: GIL-free CPU sampling is off on this interpreter: {why}; the sampler takes \
             the GIL to sample instead (a C call holding the GIL then yields at most one sample)"
        );
        tracing::warn!(logged = true, "{message}");
        crate::pylog::warning(py, &message);
    }
}

/// [`settle`] on the calling thread's own stack.
pub fn settle_current(py: Python<'_>) {
    // SAFETY: the GIL is held (`py`), so this thread has a current, live thread state.
    let tstate = unsafe { ffi::PyThreadState_Get() };
    // SAFETY: the GIL is held and `tstate` is this thread's live state.
    unsafe { settle(py, tstate) };
}

/// Whether this build reads this interpreter's frames: a layout for the version it was built
/// for, and that version running.
fn supported(py: Python<'_>) -> Result<(), String> {
    let running = py.version_info();
    if crate::fault::fires("gil_free_sampling_unsupported") {
        return Err(format!(
            "CPython {}.{} is not a version this build reads (forced by the \
             gil_free_sampling_unsupported fault point)",
            running.major, running.minor
        ));
    }
    if Current::REMOTE_LAYOUT.is_none()
        || running.major != 3
        || running.minor != Current::MINOR_VERSION
    {
        return Err(format!(
            "CPython {}.{} is not a version this build reads (built for 3.{})",
            running.major,
            running.minor,
            Current::MINOR_VERSION
        ));
    }
    Ok(())
}

/// Reads `tstate`'s stack with the GIL-free reader and compares it, frame for frame, with the
/// C API's capture of the same stack (code object, file, `co_name`, `co_qualname` from 3.11,
/// line — unless the calling thread runs under a tracer): the number of frames compared, or
/// what differs. For [`settle`] and tests.
///
/// # Safety
/// The GIL must be held and `tstate` must be the state of a live thread of this interpreter.
#[doc(hidden)]
pub unsafe fn compare_with_c_api(
    py: Python<'_>,
    tstate: *mut ffi::PyThreadState,
    depth: usize,
) -> Result<usize, String> {
    let layout = Current::REMOTE_LAYOUT.ok_or("no layout for this version")?;
    let remote = Reader::new(layout)
        .sample(tstate as usize, depth)
        .map_err(|dropped| format!("the read was dropped: {dropped:?}"))?;
    // SAFETY: the GIL is held and `tstate` is a live thread state (the caller's promise).
    let captured = unsafe { crate::stack::capture_thread(py, tstate, depth) };
    let resolved = crate::stack::resolve_frames(py, &captured, false);
    // Under a tracer (a debugger, coverage) a traced frame reports the line its tracer last saw
    // (`f_lineno`), which only the frame object holds: lines are then not compared.
    let traced = py
        .import(pyo3::intern!(py, "sys"))
        .and_then(|sys| sys.call_method0(pyo3::intern!(py, "gettrace")))
        .map_or(true, |trace| !trace.is_none());
    if remote.len() != captured.len() {
        return Err(format!(
            "{} frames read, {} through the C API",
            remote.len(),
            captured.len()
        ));
    }
    for (i, ((ours, theirs), frame)) in remote.iter().zip(&captured).zip(&resolved).enumerate() {
        let code = theirs.code().bind(py);
        let qualname = if Current::MINOR_VERSION >= 11 {
            code.getattr(pyo3::intern!(py, "co_qualname"))
                .and_then(|q| q.extract::<String>())
                .map_err(|err| err.to_string())?
        } else {
            frame.function.to_string()
        };
        let same = ours.code == code.as_ptr() as usize
            && ours.filename == frame.filename
            && ours.name == frame.function
            && *ours.qualname == *qualname
            && (traced || ours.line == frame.line);
        if !same {
            return Err(format!(
                "frame {i}: {}:{} {} ({}) read, {}:{} {} ({qualname}) through the C API",
                ours.filename,
                ours.line,
                ours.name,
                ours.qualname,
                frame.filename,
                frame.line,
                frame.function
            ));
        }
    }
    Ok(remote.len())
}
