//! `gc_ms`: time in the garbage collector during a handle. One native callback in
//! `gc.callbacks` (installed by `detect_slow_tasks`) stamps the start of each collection on
//! its thread and, at its stop, adds the collection's time to the running handle's total
//! (`aiocop_hook::count_gc`, a thread-local of the handle state). It costs nothing per handle,
//! only what a callback in `gc.callbacks` costs when a collection happens; the slow path reads
//! the total ([`handle_gc_ns`]).

use std::cell::Cell;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};

use aiocop_hook::heaptype::{guard, Table};
use pyo3::ffi;
use pyo3::prelude::*;

static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// When the collection running on this thread started (0: none).
    static STARTED: Cell<u64> = const { Cell::new(0) };
}

/// `gc.callbacks` entry: `callback(phase, info)`, `phase` being `"start"` or `"stop"`.
unsafe extern "C" fn on_collection(
    _module: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    guard("gc_callback", none, || {
        if nargs >= 1 {
            // SAFETY: CPython calls this METH_FASTCALL builtin with the GIL held and `nargs`
            // valid arguments in `args`.
            let phase = unsafe { *args };
            // SAFETY: GIL held; `phase` is a valid object (a `str` from the collector);
            // the comparison raises nothing (a non-str compares unequal).
            let is_start = unsafe { ffi::PyUnicode_Check(phase) != 0 }
                // SAFETY: as above, `phase` is a `str` here.
                && unsafe { ffi::PyUnicode_CompareWithASCIIString(phase, c"start".as_ptr()) } == 0;
            let now = aiocop_clock::now_ns();
            if is_start {
                STARTED.set(now);
            } else {
                let started = STARTED.replace(0);
                if started != 0 {
                    aiocop_hook::count_gc(now.saturating_sub(started));
                }
            }
        }
        none()
    })
}

/// `None`, a new reference (the callback's result, which the collector ignores; also what a
/// panic returns, so that nothing is reported as unraisable).
fn none() -> *mut ffi::PyObject {
    // SAFETY: GIL held (every entry runs with it); `Py_None` is immortal or counted.
    unsafe { ffi::Py_NewRef(ffi::Py_None()) }
}

static DEF: Table<ffi::PyMethodDef> = Table(ffi::PyMethodDef {
    ml_name: c"aiocop_gc_timer".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer {
        PyCFunctionFast: on_collection,
    },
    ml_flags: ffi::METH_FASTCALL,
    ml_doc: c"aiocop: times garbage collections for slow-task events (gc_ms).".as_ptr(),
});

/// Appends the timer to `gc.callbacks`, once per process.
pub fn install(py: Python<'_>) -> PyResult<()> {
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    let installed = append(py);
    if installed.is_err() {
        INSTALLED.store(false, Ordering::Release);
    }
    installed
}

fn append(py: Python<'_>) -> PyResult<()> {
    let def: *const ffi::PyMethodDef = &DEF.0;
    // SAFETY: GIL held; the method definition is 'static and never written by CPython.
    let func = unsafe { ffi::PyCFunction_NewEx(def.cast_mut(), null_mut(), null_mut()) };
    // SAFETY: a new reference or NULL with an exception set.
    let func = unsafe { Bound::from_owned_ptr_or_err(py, func) }?;
    py.import("gc")?
        .getattr("callbacks")?
        .call_method1("append", (func,))?;
    Ok(())
}

/// Time in the garbage collector during the handle that just ended on this thread; `None`
/// when the timer is not installed.
pub(crate) fn handle_gc_ns() -> Option<u64> {
    INSTALLED
        .load(Ordering::Acquire)
        .then(aiocop_hook::handle_gc_ns)
}
