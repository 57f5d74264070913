//! Hand-built CPython objects for the two calls made for every scheduled callback, where a
//! pyo3 wrapper would cost a generic argument parser and an args tuple per call:
//!
//! - the `call_soon` / `call_later` / `call_at` / `call_soon_threadsafe` replacements are
//!   `METH_FASTCALL | METH_KEYWORDS` builtin methods bound to the loop's [`LoopPatch`], which
//!   forward to the original with `PyObject_Vectorcall` and a cached `("context",)` kwnames
//!   tuple (on a stock asyncio loop outside debug mode, `call_soon` does the stock method's
//!   steps itself: [`DirectCallSoon`]);
//! - `MonitoredCallback` is a heap type implementing vectorcall, holding the callback, its
//!   arguments (a single one inline, as most are: a future's done-callbacks, a task's wake-up)
//!   and the loop's shared state.
//!
//! Every `extern "C"` entry here catches panics and turns them into a Python `RuntimeError`.

use std::ffi::{c_int, c_void};
use std::mem::offset_of;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, null_mut};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;

use aiocop_hook::heaptype::{create_once, dealloc, member, slot, Table, MEMBER_END};

use crate::dispatch::LoopShared;
use crate::wrapper::{run_monitored, LoopPatch};

// ---------------------------------------------------------------------------------------------
// MonitoredCallback

#[repr(C)]
struct MonitoredObject {
    ob_base: ffi::PyObject,
    vectorcall: Option<ffi::vectorcallfunc>,
    /// Strong reference, or NULL once cleared.
    callback: *mut ffi::PyObject,
    /// Strong reference to the only argument, or NULL when there are none or several.
    arg: *mut ffi::PyObject,
    /// Strong reference to a tuple of two or more arguments, or NULL.
    args: *mut ffi::PyObject,
    /// The loop's shared state, borrowed from `owner`'s `Arc`; NULL once cleared.
    target: *const LoopShared,
    /// Strong reference to the `LoopPatch` that owns `target` (a plain reference count: no
    /// atomic operation per callback), or NULL once cleared.
    owner: *mut ffi::PyObject,
}

/// Freed `MonitoredCallback`s kept for reuse: every monitored callback allocates one, and a
/// reused object skips the allocator, the zero-fill and the collector's bookkeeping of a new
/// one. Only touched with the GIL held (the module keeps the GIL on free-threaded builds).
struct FreeList(std::cell::UnsafeCell<Vec<*mut ffi::PyObject>>);

// SAFETY: every access holds the GIL (a `Python` token is required), which serialises them.
unsafe impl Sync for FreeList {}

/// How many freed objects are kept (about 12 KiB).
const FREELIST_MAX: usize = 256;

static FREELIST: FreeList = FreeList(std::cell::UnsafeCell::new(Vec::new()));

impl FreeList {
    fn pop(&self, _py: Python<'_>) -> Option<*mut ffi::PyObject> {
        // SAFETY: GIL held (see the `Sync` impl); no reference into the Vec outlives the call.
        unsafe { (*self.0.get()).pop() }
    }

    /// Keeps `obj` (untracked, fields cleared, still holding its type) unless the list is full.
    fn push(&self, _py: Python<'_>, obj: *mut ffi::PyObject) -> bool {
        // SAFETY: as in `pop`.
        let list = unsafe { &mut *self.0.get() };
        if list.len() >= FREELIST_MAX {
            return false;
        }
        if list.capacity() == 0 {
            list.reserve_exact(FREELIST_MAX);
        }
        list.push(obj);
        true
    }
}

static MONITORED_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(null_mut());

static MEMBERS: Table<[ffi::PyMemberDef; 2]> = Table([
    member(
        c"__vectorcalloffset__",
        ffi::Py_T_PYSSIZET,
        offset_of!(MonitoredObject, vectorcall),
    ),
    MEMBER_END,
]);

static GETSET: Table<[ffi::PyGetSetDef; 2]> = Table([
    ffi::PyGetSetDef {
        name: c"__wrapped__".as_ptr(),
        get: Some(monitored_get_wrapped),
        set: None,
        doc: c"The wrapped callback.".as_ptr(),
        closure: null_mut(),
    },
    ffi::PyGetSetDef {
        name: ptr::null(),
        get: None,
        set: None,
        doc: ptr::null(),
        closure: null_mut(),
    },
]);

/// Creates the `MonitoredCallback` type (once; the type lives for the rest of the process).
pub(crate) fn init_types(py: Python<'_>) -> PyResult<()> {
    create_once(
        py,
        &MONITORED_TYPE,
        c"aiocop._aiocop.MonitoredCallback",
        std::mem::size_of::<MonitoredObject>(),
        0,
        vec![
            slot(ffi::Py_tp_dealloc, monitored_dealloc as *mut c_void),
            slot(ffi::Py_tp_traverse, monitored_traverse as *mut c_void),
            slot(ffi::Py_tp_clear, monitored_clear as *mut c_void),
            slot(ffi::Py_tp_call, ffi::PyVectorcall_Call as *mut c_void),
            slot(ffi::Py_tp_repr, monitored_repr as *mut c_void),
            slot(ffi::Py_tp_members, MEMBERS.0.as_ptr().cast_mut().cast()),
            slot(ffi::Py_tp_getset, GETSET.0.as_ptr().cast_mut().cast()),
            slot(
                ffi::Py_tp_doc,
                c"A callback scheduled on a loop monitored by aiocop."
                    .as_ptr()
                    .cast_mut()
                    .cast(),
            ),
        ],
    )
    .map(|_| ())
}

/// The `MonitoredCallback` type object, once [`init_types`] has run.
pub(crate) fn monitored_type() -> *mut ffi::PyTypeObject {
    MONITORED_TYPE.load(Ordering::Acquire)
}

/// A new `MonitoredCallback` for `callback(*args)`; a new reference.
///
/// # Safety
/// The GIL must be held; `callback` and every pointer in `args` must be valid objects.
unsafe fn new_monitored(
    py: Python<'_>,
    callback: *mut ffi::PyObject,
    args: &[*mut ffi::PyObject],
    owner: *mut ffi::PyObject,
    target: &Arc<LoopShared>,
) -> PyResult<*mut ffi::PyObject> {
    let tp = monitored_type();
    if tp.is_null() {
        return Err(PyRuntimeError::new_err(
            "aiocop's MonitoredCallback type is not ready",
        ));
    }
    let (arg, tuple) = match args {
        [] => (null_mut(), null_mut()),
        &[arg] => {
            // SAFETY: GIL held; `arg` is a valid object, whose new reference `obj` keeps (or
            // which is released below if no object can be had).
            unsafe { ffi::Py_INCREF(arg) };
            (arg, null_mut())
        }
        _ => (null_mut(), args_tuple(py, args)?),
    };
    // A task's own step, scheduled by the C Task, which drops the handle at once: only the
    // loop's ready queue refers to the handle, so no reference cycle can run through this
    // object and the collector need not track it. Every task step allocates one; tracking them
    // made the young generation fill (and be collected) twice as often.
    let untracked = args.is_empty() && is_task_step(callback);
    let obj = match FREELIST.pop(py) {
        // A MonitoredObject of our type freed earlier: its fields are cleared, it is untracked,
        // still holds its reference to the type, and its count is 0.
        // SAFETY: see above; incrementing makes it live again with one reference (as CPython's
        // own free lists do), and, unless it stays untracked, it is tracked like a new one.
        Some(obj) => unsafe {
            ffi::Py_INCREF(obj);
            if !untracked {
                ffi::PyObject_GC_Track(obj.cast());
            }
            obj
        },
        // SAFETY: GIL held; `tp` is our heap type; GenericAlloc zero-fills and GC-tracks.
        None => unsafe { ffi::PyType_GenericAlloc(tp, 0) },
    };
    if obj.is_null() {
        // SAFETY: we own `arg` and `tuple` (each possibly NULL).
        unsafe {
            ffi::Py_XDECREF(arg);
            ffi::Py_XDECREF(tuple);
        }
        return Err(PyErr::fetch(py));
    }
    let m = obj.cast::<MonitoredObject>();
    // SAFETY: `obj` is a zeroed MonitoredObject we just allocated; `callback` is valid.
    unsafe {
        ffi::Py_INCREF(callback);
        (*m).vectorcall = Some(monitored_vectorcall);
        (*m).callback = callback;
        (*m).arg = arg;
        (*m).args = tuple;
        ffi::Py_INCREF(owner);
        (*m).owner = owner;
        (*m).target = Arc::as_ptr(target);
    }
    if untracked {
        // One from `PyType_GenericAlloc` is tracked; one from the free list is not (a no-op).
        // SAFETY: `obj` is a live GC object; untracking is always allowed.
        unsafe { ffi::PyObject_GC_UnTrack(obj.cast()) };
    }
    Ok(obj)
}

/// A new tuple of `args` (the arguments stored with a callback).
#[inline(never)]
fn args_tuple(py: Python<'_>, args: &[*mut ffi::PyObject]) -> PyResult<*mut ffi::PyObject> {
    let len = ffi::Py_ssize_t::try_from(args.len()).unwrap_or(ffi::Py_ssize_t::MAX);
    // SAFETY: GIL held.
    let tuple = unsafe { ffi::PyTuple_New(len) };
    if tuple.is_null() {
        return Err(PyErr::fetch(py));
    }
    for (i, &item) in args.iter().enumerate() {
        // SAFETY: `tuple` is a fresh tuple of `len` slots; `item` is a valid object whose new
        // reference the tuple steals.
        unsafe {
            ffi::Py_INCREF(item);
            ffi::PyTuple_SET_ITEM(tuple, i as ffi::Py_ssize_t, item);
        }
    }
    Ok(tuple)
}

/// The type of the C Task's step callbacks (`TaskStepMethWrapper`), once seen.
static TASK_STEP_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(null_mut());

/// The last type seen (before the step type was) that is not the C Task's step type: a loop
/// scheduling only plain callbacks until its first task step compares a pointer, not a name.
/// Only compared, never dereferenced; if a type freed since were replaced by the step type at
/// the same address, steps would merely stay tracked by the collector until another type is
/// seen.
static LAST_OTHER_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(null_mut());

/// Whether `callback` is a C Task's step (`TaskStepMethWrapper`).
fn is_task_step(callback: *mut ffi::PyObject) -> bool {
    // SAFETY: `callback` is a valid object; its type outlives it.
    let tp = unsafe { ffi::Py_TYPE(callback) };
    let known = TASK_STEP_TYPE.load(Ordering::Relaxed);
    if !known.is_null() {
        return tp == known;
    }
    if LAST_OTHER_TYPE.load(Ordering::Relaxed) == tp {
        return false;
    }
    learn_task_step_type(tp)
}

/// Whether `tp` is the C Task's step type, remembered once it is seen.
#[cold]
#[inline(never)]
fn learn_task_step_type(tp: *mut ffi::PyTypeObject) -> bool {
    // SAFETY: `tp_name` of a live type is a valid NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr((*tp).tp_name) }.to_bytes();
    // `TaskStepMethWrapper` up to 3.11, `_asyncio.TaskStepMethWrapper` from 3.12.
    if name.strip_prefix(b"_asyncio.").unwrap_or(name) == b"TaskStepMethWrapper" {
        TASK_STEP_TYPE.store(tp, Ordering::Relaxed);
        return true;
    }
    LAST_OTHER_TYPE.store(tp, Ordering::Relaxed);
    false
}

unsafe extern "C" fn monitored_vectorcall(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls vectorcall functions with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let m = callable.cast::<MonitoredObject>();
        // SAFETY: `callable` is a MonitoredObject (this function is only installed on it).
        let (callback, arg, stored, target) =
            unsafe { ((*m).callback, (*m).arg, (*m).args, (*m).target) };
        if callback.is_null() || target.is_null() {
            return Err(PyRuntimeError::new_err("MonitoredCallback was cleared"));
        }
        // SAFETY: a vectorcall's nargsf.
        let extra = unsafe { ffi::PyVectorcall_NARGS(nargsf) };
        let one = [arg];
        let stored: &[*mut ffi::PyObject] = if !arg.is_null() {
            &one
        } else if stored.is_null() {
            &[]
        } else {
            // SAFETY: `stored` is a tuple `m` holds for as long as the call runs.
            unsafe { tuple_items(stored) }
        };
        if extra != 0 || !kwnames.is_null() {
            // Not how the loop calls us; keep the callable semantics anyway.
            // SAFETY: forwarded from our caller.
            return unsafe { call_with_extra(py, callback, stored, args, nargsf, kwnames) };
        }
        // `target` is the pointer of the `Arc` its owner (a `LoopPatch` that `m`, kept alive by
        // our caller for the whole call, holds) keeps; ManuallyDrop borrows it as an `Arc`
        // without touching the count.
        // SAFETY: see above.
        let target = std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(target) });
        // Borrowed for the call, without reference-count traffic: `m` (kept alive by our
        // caller) holds the callback and its arguments for as long as the call runs.
        let invoke = || {
            let (argv, nargs) = (stored.as_ptr(), stored.len());
            // SAFETY: GIL held; `callback` and the `nargs` pointers at `argv` are valid objects
            // (see above).
            let result = unsafe { ffi::PyObject_Vectorcall(callback, argv, nargs, null_mut()) };
            // SAFETY: a new reference, or NULL with an exception set.
            unsafe { Bound::from_owned_ptr_or_err(py, result) }.map(Bound::unbind)
        };
        // SAFETY: as above.
        let callback = unsafe { pyo3::Borrowed::from_ptr(py, callback) };
        run_monitored(py, &callback, invoke, &target)
    }));
    match outcome {
        Ok(Ok(value)) => value.into_ptr(),
        Ok(Err(err)) => {
            err.restore(py);
            null_mut()
        }
        Err(_) => {
            PyRuntimeError::new_err("panic inside aiocop's MonitoredCallback").restore(py);
            null_mut()
        }
    }
}

/// The items of `tuple`, borrowed.
///
/// # Safety
/// GIL held; `tuple` is a tuple that outlives the returned slice and is not resized meanwhile
/// (tuples are immutable once shared).
unsafe fn tuple_items<'a>(tuple: *mut ffi::PyObject) -> &'a [*mut ffi::PyObject] {
    // SAFETY: a tuple's `ob_item` holds `ob_size` valid pointers (the non-limited C API layout,
    // the same 3.10-3.14).
    unsafe {
        let len = usize::try_from(ffi::PyTuple_GET_SIZE(tuple)).unwrap_or(0);
        let items = (*tuple.cast::<ffi::PyTupleObject>()).ob_item.as_ptr();
        std::slice::from_raw_parts(items, len)
    }
}

/// Calls `callback(*stored, *args, **kw)` (never used by the loops themselves).
///
/// # Safety
/// GIL held; `stored` are valid objects; the arguments are a valid vectorcall.
#[cold]
#[inline(never)]
unsafe fn call_with_extra(
    py: Python<'_>,
    callback: *mut ffi::PyObject,
    stored: &[*mut ffi::PyObject],
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Py<PyAny>> {
    // SAFETY: a vectorcall's nargsf.
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf) } as usize;
    let nkw = if kwnames.is_null() {
        0
    } else {
        // SAFETY: kwnames is a tuple.
        unsafe { ffi::PyTuple_GET_SIZE(kwnames) as usize }
    };
    let mut all: Vec<*mut ffi::PyObject> = stored.to_vec();
    for i in 0..nargs + nkw {
        // SAFETY: a vectorcall passes nargs + len(kwnames) pointers.
        all.push(unsafe { *args.add(i) });
    }
    let positional = all.len() - nkw;
    // SAFETY: `all` holds borrowed valid pointers for the duration of the call.
    let result = unsafe { ffi::PyObject_Vectorcall(callback, all.as_ptr(), positional, kwnames) };
    // SAFETY: GIL held; a new reference or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, result) }.map(Bound::unbind)
}

unsafe extern "C" fn monitored_traverse(
    obj: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    let m = obj.cast::<MonitoredObject>();
    // SAFETY: GC calls traverse on a live MonitoredObject.
    let (callback, only, args, owner) = unsafe { ((*m).callback, (*m).arg, (*m).args, (*m).owner) };
    for child in [callback, only, args, owner] {
        if !child.is_null() {
            // SAFETY: visiting a valid object with the GC's own visitor.
            let rc = unsafe { visit(child, arg) };
            if rc != 0 {
                return rc;
            }
        }
    }
    // Heap types visit their type (3.9+).
    // SAFETY: `obj` is live; its type is a valid heap type.
    unsafe { visit(ffi::Py_TYPE(obj).cast(), arg) }
}

unsafe extern "C" fn monitored_clear(obj: *mut ffi::PyObject) -> c_int {
    let m = obj.cast::<MonitoredObject>();
    // SAFETY: `obj` is a live MonitoredObject; we take each field out before releasing it.
    unsafe {
        let callback = std::mem::replace(&mut (*m).callback, null_mut());
        let arg = std::mem::replace(&mut (*m).arg, null_mut());
        let args = std::mem::replace(&mut (*m).args, null_mut());
        (*m).target = ptr::null();
        let owner = std::mem::replace(&mut (*m).owner, null_mut());
        ffi::Py_XDECREF(callback);
        ffi::Py_XDECREF(arg);
        ffi::Py_XDECREF(args);
        ffi::Py_XDECREF(owner);
    }
    0
}

unsafe extern "C" fn monitored_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: called by CPython when the refcount drops to zero, GIL held.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: as above; untracking is always allowed, and the cleared object keeps its type
    // reference while it waits in the free list.
    unsafe {
        if ffi::Py_TYPE(obj) == monitored_type() {
            ffi::PyObject_GC_UnTrack(obj.cast());
            monitored_clear(obj);
            // Releasing the fields may run finalizers, but none can reach this object (nothing
            // refers to an object whose count is zero): it is free to reuse.
            if FREELIST.push(py, obj) {
                return;
            }
        }
        dealloc(obj, monitored_clear);
    }
}

unsafe extern "C" fn monitored_repr(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: GIL held in a tp_repr slot.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `obj` is a live MonitoredObject.
        let callback = unsafe { (*obj.cast::<MonitoredObject>()).callback };
        let inner = if callback.is_null() {
            "<cleared>".to_owned()
        } else {
            // SAFETY: valid strong reference held by `obj`.
            unsafe { Bound::from_borrowed_ptr(py, callback) }
                .repr()
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "<callback>".to_owned())
        };
        format!("<aiocop monitored {inner}>")
    }));
    let text = outcome.unwrap_or_else(|_| "<aiocop monitored callback>".to_owned());
    pyo3::types::PyString::new(py, &text).into_ptr()
}

unsafe extern "C" fn monitored_get_wrapped(
    obj: *mut ffi::PyObject,
    _closure: *mut c_void,
) -> *mut ffi::PyObject {
    // SAFETY: `obj` is a live MonitoredObject, GIL held (getter).
    let callback = unsafe { (*obj.cast::<MonitoredObject>()).callback };
    if callback.is_null() {
        // SAFETY: GIL held; returning a new reference to None.
        return unsafe { ffi::Py_NewRef(ffi::Py_None()) };
    }
    // SAFETY: valid object; return a new reference.
    unsafe { ffi::Py_NewRef(callback) }
}

// ---------------------------------------------------------------------------------------------
// The scheduling replacements

/// Which original a replacement forwards to, and how many arguments come before the callback.
#[derive(Clone, Copy)]
#[allow(clippy::enum_variant_names)] // named after the loop methods they replace
enum Method {
    CallSoon,
    CallLater,
    CallAt,
    CallSoonThreadsafe,
}

impl Method {
    /// How many positionals come before the callback: 0, or 1 (the delay or the time).
    const fn leading(self) -> usize {
        match self {
            Self::CallSoon | Self::CallSoonThreadsafe => 0,
            Self::CallLater | Self::CallAt => 1,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::CallSoon => "call_soon",
            Self::CallLater => "call_later",
            Self::CallAt => "call_at",
            Self::CallSoonThreadsafe => "call_soon_threadsafe",
        }
    }
}

static CONTEXT_KWNAMES: AtomicPtr<ffi::PyObject> = AtomicPtr::new(null_mut());

/// The `("context",)` keyword-names tuple (made once, kept for the process): NULL only if
/// it could not be made.
pub(crate) fn context_kwnames(py: Python<'_>) -> *mut ffi::PyObject {
    let existing = CONTEXT_KWNAMES.load(Ordering::Acquire);
    if !existing.is_null() {
        return existing;
    }
    new_context_kwnames(py)
}

/// Makes the `("context",)` keyword-names tuple (once).
#[cold]
#[inline(never)]
fn new_context_kwnames(py: Python<'_>) -> *mut ffi::PyObject {
    let names = pyo3::types::PyTuple::new(py, [pyo3::intern!(py, "context")])
        .map(|t| t.into_ptr())
        .unwrap_or(null_mut());
    if names.is_null() {
        return null_mut();
    }
    match CONTEXT_KWNAMES.compare_exchange(null_mut(), names, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => names,
        Err(winner) => {
            // SAFETY: ours lost the race; release it.
            unsafe { ffi::Py_DECREF(names) };
            winner
        }
    }
}

/// A kwnames tuple seen to be exactly `("context",)`, kept alive (so its address cannot be
/// reused by another tuple): the C `Task` passes the same one on every step it schedules.
static KNOWN_CONTEXT_KWNAMES: AtomicPtr<ffi::PyObject> = AtomicPtr::new(null_mut());

/// Whether `kwnames` is `("context",)`: a pointer comparison for the tuple seen before, a
/// string comparison (then remembered) for a new one.
///
/// # Safety
/// GIL held; `kwnames` is a valid tuple of str.
unsafe fn is_context_kwnames(kwnames: *mut ffi::PyObject) -> bool {
    if KNOWN_CONTEXT_KWNAMES.load(Ordering::Relaxed) == kwnames {
        return true;
    }
    // SAFETY: guaranteed by the caller.
    unsafe { learn_context_kwnames(kwnames) }
}

/// [`is_context_kwnames`] for a tuple not seen before.
///
/// # Safety
/// As for [`is_context_kwnames`].
#[cold]
#[inline(never)]
unsafe fn learn_context_kwnames(kwnames: *mut ffi::PyObject) -> bool {
    // SAFETY: guaranteed by the caller.
    let is_context = unsafe {
        ffi::PyTuple_GET_SIZE(kwnames) == 1
            && ffi::PyUnicode_CompareWithASCIIString(
                ffi::PyTuple_GET_ITEM(kwnames, 0),
                c"context".as_ptr(),
            ) == 0
    };
    if is_context {
        // SAFETY: keep the tuple alive for as long as it is remembered.
        unsafe { ffi::Py_INCREF(kwnames) };
        let old = KNOWN_CONTEXT_KWNAMES.swap(kwnames, Ordering::Relaxed);
        if !old.is_null() {
            // SAFETY: the reference taken when `old` was remembered (GIL held).
            unsafe { ffi::Py_DECREF(old) };
        }
    }
    is_context
}

#[cold]
#[inline(never)]
fn missing_arguments(method: Method) -> PyErr {
    PyTypeError::new_err(format!(
        "{}() missing required positional arguments",
        method.name()
    ))
}

/// The `context` keyword's value from keyword names other than the usual `("context",)`
/// tuple (NULL when absent); any other keyword is a `TypeError`.
///
/// # Safety
/// GIL held; `args`/`nargs`/`kwnames` are a valid fastcall with non-NULL `kwnames`.
#[cold]
#[inline(never)]
unsafe fn keyword_context(
    py: Python<'_>,
    method: Method,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    let mut context = null_mut();
    // SAFETY: kwnames is a tuple of str.
    let nkw = unsafe { ffi::PyTuple_GET_SIZE(kwnames) };
    for i in 0..nkw {
        // SAFETY: in bounds; the values follow the positionals.
        let (name, value) = unsafe {
            (
                ffi::PyTuple_GET_ITEM(kwnames, i),
                *args.add(nargs + i as usize),
            )
        };
        // SAFETY: `name` is a str.
        let is_context =
            unsafe { ffi::PyUnicode_CompareWithASCIIString(name, c"context".as_ptr()) } == 0;
        if !is_context {
            // SAFETY: `name` is a valid str.
            let name = unsafe { Bound::from_borrowed_ptr(py, name) };
            return Err(PyTypeError::new_err(format!(
                "{}() got an unexpected keyword argument {name}",
                method.name()
            )));
        }
        context = value;
    }
    Ok(context)
}

/// A stock asyncio loop's `call_soon`, done natively: the loop (the original bound method's
/// `self`) and `asyncio.events.Handle`. Calling the pure-Python `call_soon` from C (a new
/// interpreter entry, then `_check_closed` and `_call_soon`) cost more than the rest of the
/// replacement; outside debug mode those steps are only an attribute check, the `Handle` and
/// an append, which the replacement does itself (and forwards to the original for anything
/// else: debug mode, a closed loop).
#[derive(Debug)]
pub(crate) struct DirectCallSoon {
    event_loop: Py<PyAny>,
    handle_type: Py<PyAny>,
}

impl DirectCallSoon {
    /// `Some` when `event_loop` runs asyncio's stock `call_soon`, `_call_soon`,
    /// `_check_closed` and `get_debug` (not overridden by its class or the instance) and its
    /// `_ready` is a deque; checked once, when the loop is patched (before the patch replaces
    /// `call_soon`).
    #[cold]
    pub(crate) fn for_loop(event_loop: &Bound<'_, PyAny>) -> Option<Self> {
        use aiocop_hook::compat::{Current, PythonVersion};
        if !Current::STOCK_CALL_SOON_IS_HANDLE_APPEND {
            return None;
        }
        let py = event_loop.py();
        let base = py
            .import("asyncio.base_events")
            .and_then(|m| m.getattr("BaseEventLoop"))
            .ok()?;
        for name in ["call_soon", "_call_soon", "_check_closed", "get_debug"] {
            let bound = event_loop.getattr(name).ok()?;
            let stock = base.getattr(name).ok()?;
            let func = bound.getattr("__func__").ok()?;
            if !func.is(&stock) || !bound.getattr("__self__").ok()?.is(event_loop) {
                return None;
            }
        }
        let deque = py
            .import("collections")
            .and_then(|m| m.getattr("deque"))
            .ok()?;
        if !event_loop.getattr("_ready").ok()?.get_type().is(&deque) {
            return None;
        }
        let handle_type = py
            .import("asyncio.events")
            .and_then(|m| m.getattr("Handle"))
            .ok()?;
        Some(Self {
            event_loop: event_loop.clone().unbind(),
            handle_type: handle_type.unbind(),
        })
    }

    pub(crate) fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.event_loop)?;
        visit.call(&self.handle_type)
    }
}

/// Whether the loop attribute `name` is `False` (a missing attribute or any other value is
/// not: the original `call_soon` then handles it, error and all).
///
/// # Safety
/// GIL held; `event_loop` valid.
unsafe fn attr_is_false(
    event_loop: *mut ffi::PyObject,
    name: &Bound<'_, pyo3::types::PyString>,
) -> bool {
    // SAFETY: GIL held; valid objects.
    let value = unsafe { ffi::PyObject_GetAttr(event_loop, name.as_ptr()) };
    if value.is_null() {
        // SAFETY: GIL held; the original reports the error when it is called.
        unsafe { ffi::PyErr_Clear() };
        return false;
    }
    // SAFETY: GIL held; `value` is our new reference.
    let is_false = value == unsafe { ffi::Py_False() };
    // SAFETY: as above.
    unsafe { ffi::Py_DECREF(value) };
    is_false
}

/// asyncio's `call_soon` for `wrapped` (already monitored) on a loop with [`DirectCallSoon`]:
/// `Ok(None)` when the loop is in debug mode or closed (the caller forwards to the original).
///
/// # Safety
/// GIL held; `wrapped` and `context` (or NULL) valid.
unsafe fn direct_call_soon(
    py: Python<'_>,
    direct: &DirectCallSoon,
    wrapped: *mut ffi::PyObject,
    context: *mut ffi::PyObject,
) -> PyResult<Option<*mut ffi::PyObject>> {
    let event_loop = direct.event_loop.as_ptr();
    // SAFETY: GIL held; the loop is alive (the patch holds it).
    let plain = unsafe {
        attr_is_false(event_loop, pyo3::intern!(py, "_debug"))
            && attr_is_false(event_loop, pyo3::intern!(py, "_closed"))
    };
    if !plain {
        return Ok(None);
    }
    let context = if context.is_null() {
        // SAFETY: the None singleton.
        unsafe { ffi::Py_None() }
    } else {
        context
    };
    // SAFETY: the empty-tuple singleton (or a new empty tuple): a new reference.
    let no_args = unsafe { ffi::PyTuple_New(0) };
    if no_args.is_null() {
        return Err(PyErr::fetch(py));
    }
    let handle_args = [wrapped, no_args, event_loop, context];
    // SAFETY: GIL held; `Handle(callback, args, loop, context)` with valid borrowed arguments.
    let handle = unsafe {
        ffi::PyObject_Vectorcall(
            direct.handle_type.as_ptr(),
            handle_args.as_ptr(),
            handle_args.len(),
            null_mut(),
        )
    };
    // SAFETY: ours; the handle holds its own reference.
    unsafe { ffi::Py_DECREF(no_args) };
    if handle.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: GIL held; valid objects.
    let ready = unsafe { ffi::PyObject_GetAttr(event_loop, pyo3::intern!(py, "_ready").as_ptr()) };
    let appended = if ready.is_null() {
        null_mut()
    } else {
        // SAFETY: GIL held; `ready.append(handle)` with valid objects.
        let result = unsafe {
            ffi::PyObject_CallMethodOneArg(ready, pyo3::intern!(py, "append").as_ptr(), handle)
        };
        // SAFETY: our reference.
        unsafe { ffi::Py_DECREF(ready) };
        result
    };
    if appended.is_null() {
        // SAFETY: our reference.
        unsafe { ffi::Py_DECREF(handle) };
        return Err(PyErr::fetch(py));
    }
    // SAFETY: the append's `None`.
    unsafe { ffi::Py_DECREF(appended) };
    Ok(Some(handle))
}

/// The shared body of the four replacements.
///
/// # Safety
/// GIL held; `slf` is the `LoopPatch` the function was bound to; a valid fastcall.
unsafe fn forward(
    method: Method,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: fastcall functions run with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let outcome = catch_unwind(AssertUnwindSafe(|| -> PyResult<*mut ffi::PyObject> {
        // SAFETY: `slf` is the object this builtin was bound to: `bound_replacements` binds
        // the four methods to a `LoopPatch` only, and a builtin's `self` never changes.
        let patch = unsafe { Bound::from_borrowed_ptr(py, slf) };
        // SAFETY: as above, `slf` is a `LoopPatch`.
        let patch = unsafe { patch.cast_unchecked::<LoopPatch>() };
        let patch = patch.get();
        let nargs = usize::try_from(nargs).unwrap_or(0);
        let leading = method.leading();
        if nargs < leading + 1 {
            return Err(missing_arguments(method));
        }
        // SAFETY: a fastcall passes `nargs` positional pointers.
        let positional = unsafe { std::slice::from_raw_parts(args, nargs) };
        let mut context: *mut ffi::PyObject = null_mut();
        // SAFETY: a fastcall's kwnames is NULL or a tuple of str.
        if !kwnames.is_null() && unsafe { is_context_kwnames(kwnames) } {
            // SAFETY: the one keyword's value follows the positionals.
            context = unsafe { *args.add(nargs) };
        } else if !kwnames.is_null() {
            // SAFETY: forwarded from our caller.
            context = unsafe { keyword_context(py, method, args, nargs, kwnames)? };
        }
        let callback = positional[leading];
        // asyncio's `call_later` goes through `call_at` (uvloop's the other way round), both
        // patched: a callback that is already monitored is passed through as it is.
        // SAFETY: `callback` is a valid object.
        let already = unsafe { ffi::Py_TYPE(callback) } == monitored_type()
            && positional.len() == leading + 1;
        let wrapped = if already {
            // SAFETY: a new reference to hand to the original, released below like a fresh one.
            unsafe { ffi::Py_NewRef(callback) }
        } else {
            // SAFETY: GIL held; valid objects from the caller.
            unsafe {
                new_monitored(
                    py,
                    callback,
                    &positional[leading + 1..],
                    slf,
                    patch.shared(),
                )?
            }
        };
        if let (Method::CallSoon, Some(direct)) = (method, patch.direct()) {
            // SAFETY: GIL held; `wrapped` is ours and `context` valid or NULL.
            let done = unsafe { direct_call_soon(py, direct, wrapped, context) };
            if let Some(handle) = done.transpose() {
                // SAFETY: we own `wrapped`; the handle holds its own reference.
                unsafe { ffi::Py_DECREF(wrapped) };
                return handle;
            }
        }
        // Slot 0 is spare: with PY_VECTORCALL_ARGUMENTS_OFFSET the original (a bound method)
        // may put its `self` there instead of copying the arguments to prepend it.
        let mut call_args: [*mut ffi::PyObject; 4] = [null_mut(); 4];
        if leading == 1 {
            // The delay or time of `call_later`/`call_at` (set one by one: a copy of a length
            // known only at run time would be a `memcpy` call on every scheduling).
            call_args[1] = positional[0];
        }
        call_args[leading + 1] = wrapped;
        let positional_count = leading + 1;
        let kw = if context.is_null() {
            null_mut()
        } else {
            call_args[positional_count + 1] = context;
            context_kwnames(py)
        };
        let original = patch.original(method_index(method));
        // SAFETY: all pointers are valid for the call; `kw` is a tuple naming the trailing
        // argument (or NULL); slot 0 of `call_args` may be overwritten by the callee.
        let result = unsafe {
            ffi::PyObject_Vectorcall(
                original.as_ptr(),
                call_args.as_ptr().add(1),
                positional_count | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                kw,
            )
        };
        // SAFETY: we own `wrapped`; the loop's handle holds its own reference now.
        unsafe { ffi::Py_DECREF(wrapped) };
        if result.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(result)
    }));
    match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(err)) => {
            err.restore(py);
            null_mut()
        }
        Err(_) => {
            PyRuntimeError::new_err(format!("panic inside aiocop's {}", method.name())).restore(py);
            null_mut()
        }
    }
}

const fn method_index(method: Method) -> usize {
    match method {
        Method::CallSoon => 0,
        Method::CallLater => 1,
        Method::CallAt => 2,
        Method::CallSoonThreadsafe => 3,
    }
}

macro_rules! fastcall {
    ($fn_name:ident, $method:expr) => {
        unsafe extern "C" fn $fn_name(
            slf: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            // SAFETY: CPython calls us as a bound METH_FASTCALL|METH_KEYWORDS function.
            unsafe { forward($method, slf, args, nargs, kwnames) }
        }
    };
}

fastcall!(call_soon_fast, Method::CallSoon);
fastcall!(call_later_fast, Method::CallLater);
fastcall!(call_at_fast, Method::CallAt);
fastcall!(call_soon_threadsafe_fast, Method::CallSoonThreadsafe);

const fn method_def(
    name: &'static std::ffi::CStr,
    f: ffi::PyCFunctionFastWithKeywords,
    doc: &'static std::ffi::CStr,
) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: f,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: doc.as_ptr(),
    }
}

static METHOD_DEFS: Table<[ffi::PyMethodDef; 4]> = Table([
    method_def(
        c"call_soon",
        call_soon_fast,
        c"aiocop: monitored call_soon.",
    ),
    method_def(
        c"call_later",
        call_later_fast,
        c"aiocop: monitored call_later.",
    ),
    method_def(c"call_at", call_at_fast, c"aiocop: monitored call_at."),
    method_def(
        c"call_soon_threadsafe",
        call_soon_threadsafe_fast,
        c"aiocop: monitored call_soon_threadsafe.",
    ),
]);

/// The four replacements bound to `patch`, as `(name, builtin method)` pairs.
pub(crate) fn bound_replacements<'py>(
    patch: &Bound<'py, LoopPatch>,
) -> PyResult<Vec<(&'static str, Bound<'py, PyAny>)>> {
    let py = patch.py();
    let mut out = Vec::with_capacity(4);
    for (i, name) in ["call_soon", "call_later", "call_at", "call_soon_threadsafe"]
        .into_iter()
        .enumerate()
    {
        let def: *const ffi::PyMethodDef = &METHOD_DEFS.0[i];
        // SAFETY: GIL held; the method table is 'static and never written by CPython; `patch`
        // is a valid object the new function keeps a reference to.
        let func = unsafe { ffi::PyCFunction_NewEx(def.cast_mut(), patch.as_ptr(), null_mut()) };
        // SAFETY: a new reference or NULL with an exception set.
        out.push((name, unsafe { Bound::from_owned_ptr_or_err(py, func) }?));
    }
    Ok(out)
}
