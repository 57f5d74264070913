//! `MonitoredCallback`: the heap type every monitored callback is wrapped in. It implements
//! vectorcall, holds the callback, its arguments (a single one inline, as most are: a future's
//! done-callbacks, a task's wake-up) and the loop's shared state, and runs the callback as a
//! monitored handle ([`crate::handle::run_monitored`]). Freed objects are kept on a free list
//! for reuse; a task's own step is left untracked by the cycle collector.
//!
//! Every `extern "C"` entry here runs under [`guard`]: a panic becomes a Python `RuntimeError`
//! (the call, `__wrapped__`), a fallback text (`repr`), nothing visited or cleared (traverse,
//! clear) or a leaked object (dealloc); it never unwinds into CPython.

use std::ffi::{c_int, c_void};
use std::mem::offset_of;
use std::ptr::{self, null_mut};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;

use aiocop_hook::heaptype::{
    create_once, dealloc, guard, leak, member, panicked, panicked_err, plain_repr, slot, Table,
    MEMBER_END,
};

use aiocop_hook::compat::{Current, PythonVersion};

use crate::handle::run_monitored;
use crate::loop_state::LoopShared;

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
        // SAFETY: the GIL is held (`_py`), which serialises every access (see the `Sync`
        // impl); no reference into the Vec outlives the call.
        unsafe { (*self.0.get()).pop() }
    }

    /// Keeps `obj` (untracked, fields cleared, still holding its type) unless the list is full.
    fn push(&self, _py: Python<'_>, obj: *mut ffi::PyObject) -> bool {
        // SAFETY: the GIL is held (`_py`), which serialises every access (see the `Sync`
        // impl); `list` is dropped when this call returns, and nothing in it calls back here.
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
#[inline(always)]
pub(crate) unsafe fn new_monitored(
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
        Some(obj) => {
            // SAFETY: GIL held; `obj` is still allocated (the free list owns it) with a count
            // of 0: incrementing makes it live again with one reference, as CPython's own free
            // lists do.
            unsafe { ffi::Py_INCREF(obj) };
            if !untracked {
                // SAFETY: GIL held; a live GC object that is not tracked (dealloc untracked it
                // before it went to the free list): tracked like a new one.
                unsafe { ffi::PyObject_GC_Track(obj.cast()) };
            }
            obj
        }
        // SAFETY: GIL held; `tp` is our heap type; GenericAlloc zero-fills and GC-tracks.
        None => unsafe { ffi::PyType_GenericAlloc(tp, 0) },
    };
    if obj.is_null() {
        // SAFETY: GIL held; the reference to `arg` taken above is ours (or NULL).
        unsafe { ffi::Py_XDECREF(arg) };
        // SAFETY: GIL held; the new tuple is ours (or NULL).
        unsafe { ffi::Py_XDECREF(tuple) };
        return Err(PyErr::fetch(py));
    }
    // SAFETY: GIL held; `callback` is a valid object (the caller's promise), whose new
    // reference the object keeps.
    unsafe { ffi::Py_INCREF(callback) };
    // SAFETY: GIL held; `owner` is a valid object (the caller's promise), whose new reference
    // the object keeps.
    unsafe { ffi::Py_INCREF(owner) };
    let m = obj.cast::<MonitoredObject>();
    // SAFETY: `obj` is a MonitoredObject with cleared fields (zero-filled, or cleared before it
    // went to the free list) that only we can see yet: the fields are ours to fill, each
    // reference already taken for it; `target` stays valid while `owner` holds its `Arc`.
    unsafe {
        (*m).vectorcall = Some(monitored_vectorcall);
        (*m).callback = callback;
        (*m).arg = arg;
        (*m).args = tuple;
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
        // SAFETY: GIL held; `item` is a valid object (the caller's), whose new reference the
        // tuple takes below.
        unsafe { ffi::Py_INCREF(item) };
        // SAFETY: `tuple` is a fresh tuple of `len` slots, `i < len`, the slot still empty; it
        // steals the reference taken above.
        unsafe { ffi::PyTuple_SET_ITEM(tuple, i as ffi::Py_ssize_t, item) };
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
    if name == Current::TASK_STEP_TYPE_NAME {
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
    let outcome = guard(
        "MonitoredCallback call",
        || Err(panicked_err(py, "MonitoredCallback call")),
        || {
            let m = callable.cast::<MonitoredObject>();
            // SAFETY: `callable` is a MonitoredObject (this function is only installed on it),
            // alive for the call; plain field reads.
            let (callback, arg, stored, target) =
                unsafe { ((*m).callback, (*m).arg, (*m).args, (*m).target) };
            if callback.is_null() || target.is_null() {
                return Err(PyRuntimeError::new_err("MonitoredCallback was cleared"));
            }
            // SAFETY: `nargsf` is our caller's vectorcall argument count (flag bits included).
            let extra = unsafe { ffi::PyVectorcall_NARGS(nargsf) };
            let one = [arg];
            let stored: &[*mut ffi::PyObject] = if !arg.is_null() {
                &one
            } else if stored.is_null() {
                &[]
            } else {
                // SAFETY: GIL held; `stored` is a tuple `m` holds for as long as the call runs.
                unsafe { tuple_items(stored) }
            };
            // SAFETY: `target` is the pointer of the `Arc` its owner (a `LoopPatch` that `m`,
            // kept alive by our caller for the whole call, holds) keeps; ManuallyDrop borrows
            // it as an `Arc` without touching the count.
            let target = std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(target) });
            if extra != 0 || !kwnames.is_null() {
                // A protocol method (`data_received(data)`, `datagram_received(data, addr)`)
                // the loop calls with its arguments: see `crate::protocols`.
                // SAFETY: GIL held; `callback` and `stored` are objects `m` holds for the call;
                // the rest is our caller's valid vectorcall.
                return unsafe {
                    call_with_arguments(py, callback, stored, args, nargsf, kwnames, &target)
                };
            }
            // Borrowed for the call, without reference-count traffic: `m` (kept alive by our
            // caller) holds the callback and its arguments for as long as the call runs.
            let invoke = || {
                let (argv, nargs) = (stored.as_ptr(), stored.len());
                // SAFETY: GIL held; `callback` and the `nargs` pointers at `argv` are objects
                // `m` holds for the call.
                let result = unsafe { ffi::PyObject_Vectorcall(callback, argv, nargs, null_mut()) };
                // SAFETY: GIL held; a new reference, or NULL with an exception set.
                unsafe { Bound::from_owned_ptr_or_err(py, result) }.map(Bound::unbind)
            };
            // SAFETY: GIL held; `m` holds a strong reference to `callback` for the call, which
            // outlives this borrow.
            let callback = unsafe { pyo3::Borrowed::from_ptr(py, callback) };
            run_monitored(py, &callback, invoke, &target)
        },
    );
    match outcome {
        Ok(value) => value.into_ptr(),
        Err(err) => {
            err.restore(py);
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
    // SAFETY: GIL held and `tuple` a tuple (the caller's promise): reads its size.
    let len = usize::try_from(unsafe { ffi::PyTuple_GET_SIZE(tuple) }).unwrap_or(0);
    // SAFETY: `tuple` is a live tuple (the caller's promise), `PyTupleObject` its layout in the
    // non-limited C API (the same 3.10-3.14); only the address of `ob_item` is taken.
    let items = unsafe { (*tuple.cast::<ffi::PyTupleObject>()).ob_item.as_ptr() };
    // SAFETY: a tuple's `ob_item` holds `len` valid pointers, unchanged while the tuple lives
    // (the caller's promise, for the slice's lifetime).
    unsafe { std::slice::from_raw_parts(items, len) }
}

/// Runs `callback(*stored, *args, **kw)` as a monitored handle: a protocol method the loop
/// calls with its arguments (nothing stored: forwarded as they come, without a copy), or a
/// scheduled callback called with more (a `Handle`'s callback leaked to user code).
///
/// # Safety
/// GIL held; `callback` and `stored` are valid objects held for the call; the arguments are a
/// valid vectorcall.
#[inline(never)]
unsafe fn call_with_arguments(
    py: Python<'_>,
    callback: *mut ffi::PyObject,
    stored: &[*mut ffi::PyObject],
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
    target: &Arc<LoopShared>,
) -> PyResult<Py<PyAny>> {
    let invoke = || {
        if stored.is_empty() {
            // SAFETY: GIL held; the caller's valid vectorcall, passed on unchanged (its
            // PY_VECTORCALL_ARGUMENTS_OFFSET grant included: `args[-1]` is the caller's).
            let result = unsafe { ffi::PyObject_Vectorcall(callback, args, nargsf, kwnames) };
            // SAFETY: GIL held; a new reference, or NULL with an exception set.
            return unsafe { Bound::from_owned_ptr_or_err(py, result) }.map(Bound::unbind);
        }
        // SAFETY: GIL held; the caller's promises, passed on.
        unsafe { call_with_extra(py, callback, stored, args, nargsf, kwnames) }
    };
    // SAFETY: GIL held; the caller holds a strong reference to `callback` for the call.
    let callback = unsafe { pyo3::Borrowed::from_ptr(py, callback) };
    run_monitored(py, &callback, invoke, target)
}

/// Calls `callback(*stored, *args, **kw)`.
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
    // SAFETY: `nargsf` is the caller's vectorcall argument count (flag bits included).
    let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf) } as usize;
    let nkw = if kwnames.is_null() {
        0
    } else {
        // SAFETY: GIL held; a vectorcall's non-NULL kwnames is a tuple.
        unsafe { ffi::PyTuple_GET_SIZE(kwnames) as usize }
    };
    let mut all: Vec<*mut ffi::PyObject> = stored.to_vec();
    for i in 0..nargs + nkw {
        // SAFETY: a vectorcall passes nargs + len(kwnames) pointers; `i` is below that.
        all.push(unsafe { *args.add(i) });
    }
    let positional = all.len() - nkw;
    // SAFETY: GIL held; `all` holds borrowed pointers valid for the call, the last `nkw` of
    // them named by `kwnames` (a tuple or NULL).
    let result = unsafe { ffi::PyObject_Vectorcall(callback, all.as_ptr(), positional, kwnames) };
    // SAFETY: GIL held; a new reference or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, result) }.map(Bound::unbind)
}

unsafe extern "C" fn monitored_traverse(
    obj: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    guard(
        "MonitoredCallback traverse",
        || 0,
        || {
            let m = obj.cast::<MonitoredObject>();
            // SAFETY: the collector traverses live MonitoredObjects only; plain field reads.
            let (callback, only, args, owner) =
                unsafe { ((*m).callback, (*m).arg, (*m).args, (*m).owner) };
            for child in [callback, only, args, owner] {
                if !child.is_null() {
                    // SAFETY: `child` is a strong reference `obj` holds; `visit` and `arg` are
                    // the collector's own, passed on unchanged.
                    let rc = unsafe { visit(child, arg) };
                    if rc != 0 {
                        return rc;
                    }
                }
            }
            // Heap types visit their type (3.9+).
            // SAFETY: `obj` is live, so its type (a heap type it holds a reference to) is.
            let tp = unsafe { ffi::Py_TYPE(obj) };
            // SAFETY: the collector's own `visit` and `arg` on a live object.
            unsafe { visit(tp.cast(), arg) }
        },
    )
}

unsafe extern "C" fn monitored_clear(obj: *mut ffi::PyObject) -> c_int {
    guard(
        "MonitoredCallback clear",
        || 0,
        // SAFETY: CPython calls tp_clear on a live MonitoredObject, with the GIL held.
        || unsafe { clear_fields(obj) },
    )
}

/// Releases the object's fields (`tp_clear`, and the dealloc, which calls it inside its own
/// guard rather than through the slot).
///
/// # Safety
/// GIL held; `obj` is a live `MonitoredObject`.
unsafe fn clear_fields(obj: *mut ffi::PyObject) -> c_int {
    let m = obj.cast::<MonitoredObject>();
    // SAFETY: `obj` is a live MonitoredObject (the caller's promise) and the GIL is held: every
    // field is taken out before any is released, so a finalizer run by a release sees them
    // all cleared.
    let (callback, arg, args, owner) = unsafe {
        (*m).target = ptr::null();
        (
            std::mem::replace(&mut (*m).callback, null_mut()),
            std::mem::replace(&mut (*m).arg, null_mut()),
            std::mem::replace(&mut (*m).args, null_mut()),
            std::mem::replace(&mut (*m).owner, null_mut()),
        )
    };
    for field in [callback, arg, args, owner] {
        // SAFETY: GIL held; the strong reference (or NULL) the field held, now ours.
        unsafe { ffi::Py_XDECREF(field) };
    }
    0
}

unsafe extern "C" fn monitored_dealloc(obj: *mut ffi::PyObject) {
    guard(
        "MonitoredCallback dealloc",
        // SAFETY: GIL held; the dealloc frees `obj` (or keeps it in the free list) only in its
        // last step, which cannot panic.
        || unsafe { leak(obj) },
        || {
            // SAFETY: CPython calls tp_dealloc with the GIL held.
            let py = unsafe { Python::assume_attached() };
            // SAFETY: `obj` is still allocated (its count just dropped to zero).
            let ours = unsafe { ffi::Py_TYPE(obj) } == monitored_type();
            if ours {
                // SAFETY: GIL held; a GC object (untracking an untracked one is allowed).
                unsafe { ffi::PyObject_GC_UnTrack(obj.cast()) };
                // SAFETY: GIL held; `obj` is a MonitoredObject, still allocated.
                unsafe { clear_fields(obj) };
                // Releasing the fields may run finalizers, but none can reach this object
                // (nothing refers to an object whose count is zero): it is free to reuse.
                if FREELIST.push(py, obj) {
                    return;
                }
            }
            // SAFETY: called once from tp_dealloc (count zero, GIL held) on an object of the
            // type `init_types` made, whose tp_clear is `monitored_clear`.
            unsafe { dealloc(obj, monitored_clear) };
        },
    )
}

unsafe extern "C" fn monitored_repr(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls tp_repr with the GIL held.
    let py = unsafe { Python::assume_attached() };
    guard(
        "MonitoredCallback repr",
        || plain_repr(c"<aiocop monitored callback>"),
        || {
            // SAFETY: `obj` is a live MonitoredObject (tp_repr of its type); a field read.
            let callback = unsafe { (*obj.cast::<MonitoredObject>()).callback };
            let inner = if callback.is_null() {
                "<cleared>".to_owned()
            } else {
                // SAFETY: GIL held; `obj` holds a strong reference to `callback` for the call.
                unsafe { Bound::from_borrowed_ptr(py, callback) }
                    .repr()
                    .map(|r| r.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "<callback>".to_owned())
            };
            pyo3::types::PyString::new(py, &format!("<aiocop monitored {inner}>")).into_ptr()
        },
    )
}

unsafe extern "C" fn monitored_get_wrapped(
    obj: *mut ffi::PyObject,
    _closure: *mut c_void,
) -> *mut ffi::PyObject {
    guard(
        "MonitoredCallback.__wrapped__",
        || panicked("MonitoredCallback.__wrapped__"),
        || {
            // SAFETY: `obj` is a live MonitoredObject (a getter of its type); a field read.
            let callback = unsafe { (*obj.cast::<MonitoredObject>()).callback };
            if callback.is_null() {
                // SAFETY: GIL held (getter); a new reference to the None singleton.
                return unsafe { ffi::Py_NewRef(ffi::Py_None()) };
            }
            // SAFETY: GIL held; `obj` holds `callback` for the call: a new reference to it.
            unsafe { ffi::Py_NewRef(callback) }
        },
    )
}
