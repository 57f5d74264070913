//! Stack capture through the C API (no Python-level attribute reads, so no nested audit events)
//! and the later, cached resolution of code objects to file and function names.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use std::hash::Hasher;

use aiocop_events::{CodeFacts, FastBuildHasher, FastHasher, Frame, Origin, Stack};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::compat::{Current, LayoutCheck, Position, PythonVersion};

/// How many frames a walk may visit before it gives up, whatever the depth asked for: a bound
/// on the work done inside an audit hook on a pathological recursion.
const MAX_WALK: usize = 4096;

/// One captured frame: the code object (kept alive) and where in it the frame stood.
#[derive(Debug)]
pub struct CapturedFrame {
    code: Py<PyAny>,
    position: Position,
}

impl CapturedFrame {
    /// The frame's code object.
    pub fn code(&self) -> &Py<PyAny> {
        &self.code
    }
}

/// Captures up to `depth` frames of the calling thread, innermost first. aiocop's own code has
/// no Python frames (the wrappers are native), so nothing needs skipping.
///
/// Where the version allows it ([`PythonVersion::walk_interpreter_frames`]) the walk reads the
/// interpreter's frames directly and creates no frame objects. The first capture of the
/// process that has a Python frame decides whether it may ([`settle_direct_walk`]): a layout
/// check of the fields the walk starts from, then the walk itself against the public C API's;
/// a mismatch keeps the C API, with one warning.
pub(crate) fn capture_current(py: Python<'_>, depth: usize) -> Vec<CapturedFrame> {
    match DIRECT_WALK.load(Ordering::Relaxed) {
        DIRECT_OK => {
            if let Some(frames) = capture_direct(py, depth) {
                return frames;
            }
        }
        UNCHECKED => {
            let frames = capture_with_frame_objects(py, depth);
            settle_direct_walk(py, depth, &frames);
            return frames;
        }
        _ => {}
    }
    capture_with_frame_objects(py, depth)
}

const UNCHECKED: u8 = 0;
const DIRECT_OK: u8 = 1;
const DIRECT_OFF: u8 = 2;
/// Whether [`capture_current`] may walk the interpreter's frames directly.
static DIRECT_WALK: AtomicU8 = AtomicU8::new(UNCHECKED);

/// How many frames the shallow walk of [`layout_check`] compares.
const SHALLOW_WALK: usize = 8;

/// Decides, at the first capture with a Python frame, whether captures walk the interpreter's
/// frames directly: only where the version has such a walk, the layout check passes and the
/// walk gives exactly `frames` (the C API's capture of the same stack). Otherwise the C API
/// stays, with one warning (`tracing` and the `aiocop` logger).
#[cold]
#[inline(never)]
fn settle_direct_walk(py: Python<'_>, depth: usize, frames: &[CapturedFrame]) {
    let verdict = if !Current::DIRECT_FRAME_WALK {
        Ok(())
    } else {
        match layout_check(py) {
            LayoutCheck::NoFrame => return, // decided at a later capture
            LayoutCheck::Disagrees(what) => Err(format!(
                "its frame layout differs from the one this build of aiocop reads ({what})"
            )),
            LayoutCheck::Agrees => match capture_direct(py, depth) {
                Some(direct) if same_frames(&direct, frames) => Ok(()),
                _ => Err("its direct frame walk disagrees with the C API".to_owned()),
            },
        }
    };
    let state = match verdict {
        Ok(()) if Current::DIRECT_FRAME_WALK => DIRECT_OK,
        _ => DIRECT_OFF,
    };
    // One thread decides (the warning may run Python code, which lets another thread in).
    let decided = DIRECT_WALK
        .compare_exchange(UNCHECKED, state, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok();
    if let (true, Err(why)) = (decided, verdict) {
        let message = format!(
            "aiocop: on this interpreter {why}; stacks are captured through the C API instead"
        );
        tracing::warn!(logged = true, "{message}");
        crate::pylog::warning(py, &message);
    }
}

/// Whether the direct walk may run on this interpreter: the version's layout check
/// ([`PythonVersion::check_frame_layout`]), then, only if it passes, the number of frames a
/// shallow direct walk finds against the C API's. The fault-injection point
/// `frame_layout_check` forces a mismatch.
fn layout_check(py: Python<'_>) -> LayoutCheck {
    if crate::fault::fires("frame_layout_check") {
        return LayoutCheck::Disagrees("forced by the frame_layout_check fault point");
    }
    // SAFETY: the GIL is held (`py`) by this thread, whose state and frames are checked.
    match unsafe { Current::check_frame_layout() } {
        LayoutCheck::Agrees => {}
        other => return other,
    }
    let direct = capture_direct(py, SHALLOW_WALK).map_or(0, |frames| frames.len());
    if direct == capture_with_frame_objects(py, SHALLOW_WALK).len() {
        LayoutCheck::Agrees
    } else {
        LayoutCheck::Disagrees("the length of the frame chain")
    }
}

/// Whether captures walk the interpreter's frames directly (decided at the first capture of
/// the process). For tests.
#[doc(hidden)]
pub fn walks_frames_directly() -> bool {
    DIRECT_WALK.load(Ordering::Relaxed) == DIRECT_OK
}

fn same_frames(a: &[CapturedFrame], b: &[CapturedFrame]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.code.is(&y.code) && x.position == y.position)
}

/// Compares the direct walk of the calling thread's stack with the C API's, after the layout
/// check: `None` where the version has no direct walk, `Some(false)` where the layout check
/// fails, else whether both give the same code objects and positions. For tests.
#[doc(hidden)]
pub fn check_direct_walk(py: Python<'_>, depth: usize) -> Option<bool> {
    if !Current::DIRECT_FRAME_WALK {
        return None;
    }
    if layout_check(py) != LayoutCheck::Agrees {
        return Some(false);
    }
    let direct = capture_direct(py, depth)?;
    Some(same_frames(&direct, &capture_with_frame_objects(py, depth)))
}

/// The direct walk, or `None` where the version has none.
fn capture_direct(py: Python<'_>, depth: usize) -> Option<Vec<CapturedFrame>> {
    let mut out = Vec::with_capacity(depth.min(64));
    let mut visited = 0;
    let mut visit = |code: *mut ffi::PyObject, position: Position| {
        visited += 1;
        // SAFETY: `code` is the code object of a live frame (borrowed); we take our own
        // reference.
        let code = unsafe { Bound::from_borrowed_ptr(py, code) }.unbind();
        out.push(CapturedFrame { code, position });
        out.len() < depth && visited < MAX_WALK
    };
    // SAFETY: the GIL is held (`py`) by this thread, whose stack is walked.
    let supported = unsafe { Current::walk_interpreter_frames(&mut visit) };
    supported.then_some(out)
}

/// The C-API walk: frame objects through `PyEval_GetFrame` and `PyFrame_GetBack`.
pub(crate) fn capture_with_frame_objects(py: Python<'_>, depth: usize) -> Vec<CapturedFrame> {
    // SAFETY: the GIL is held (`py`); PyEval_GetFrame returns a borrowed reference (or NULL),
    // which we turn into a strong one before walking.
    let frame = unsafe { ffi::PyEval_GetFrame() };
    if frame.is_null() {
        return Vec::new();
    }
    // SAFETY: `frame` is a valid borrowed frame; take our own reference for `walk`.
    unsafe { ffi::Py_INCREF(frame.cast()) };
    // SAFETY: `frame` is a strong reference to a valid frame and the GIL is held.
    unsafe { walk(py, frame, depth) }
}

/// Captures up to `depth` frames of the thread whose state is `tstate`.
///
/// # Safety
/// The GIL must be held and `tstate` must be the state of a live thread of this interpreter
/// (it cannot run while we hold the GIL, so its frames are stable during the walk).
pub unsafe fn capture_thread(
    py: Python<'_>,
    tstate: *mut ffi::PyThreadState,
    depth: usize,
) -> Vec<CapturedFrame> {
    // SAFETY: GIL held and `tstate` a live thread state of this interpreter (the caller's
    // promise); returns a new reference or NULL.
    let frame = unsafe { ffi::PyThreadState_GetFrame(tstate) };
    if frame.is_null() {
        return Vec::new();
    }
    // SAFETY: `frame` is a new reference to a valid frame and the GIL is held.
    unsafe { walk(py, frame, depth) }
}

/// Walks from `frame` outwards. Consumes the strong reference `frame`.
///
/// # Safety
/// The GIL must be held and `frame` must be a strong reference to a valid frame.
unsafe fn walk(
    py: Python<'_>,
    mut frame: *mut ffi::PyFrameObject,
    depth: usize,
) -> Vec<CapturedFrame> {
    let mut out = Vec::with_capacity(depth.min(64));
    let mut visited = 0;
    while !frame.is_null() && out.len() < depth && visited < MAX_WALK {
        visited += 1;
        // SAFETY: `frame` is a valid frame we own a reference to; PyFrame_GetCode returns a
        // new, non-NULL reference.
        let code = unsafe { ffi::PyFrame_GetCode(frame) }.cast::<ffi::PyObject>();
        // SAFETY: GIL held; `frame` is a valid frame we own a reference to.
        let position = unsafe { Current::frame_position(frame) };
        // SAFETY: `code` is a new reference we hand over to the Py wrapper.
        let code = unsafe { Bound::from_owned_ptr(py, code) }.unbind();
        out.push(CapturedFrame { code, position });
        // SAFETY: valid frame; PyFrame_GetBack returns a new reference or NULL.
        let back = unsafe { ffi::PyFrame_GetBack(frame) };
        // SAFETY: GIL held; our reference to the frame we are leaving, released once.
        unsafe { ffi::Py_DECREF(frame.cast()) };
        frame = back;
    }
    if !frame.is_null() {
        // SAFETY: we still own the reference to the frame where the walk stopped.
        unsafe { ffi::Py_DECREF(frame.cast()) };
    }
    out
}

struct CodeInfo {
    _keep_alive: Py<PyAny>,
    filename: Arc<str>,
    function: Arc<str>,
    /// Module, `co_qualname` and origin: looked up on first need (a new call site).
    facts: Option<Arc<CodeFacts>>,
    /// Instruction offset → line: `PyCode_Addr2Line` scans the line table from the start, so a
    /// hot frame is resolved once.
    lines: HashMap<i32, i32, FastBuildHasher>,
}

/// Per-thread cache of code object → names and lines. The code object is kept alive by the
/// entry, so its address cannot be reused while the entry exists. Bounded: cleared when it grows
/// past the cap (and a code object's line map likewise).
const CODE_CACHE_CAP: usize = 8192;
const LINES_PER_CODE_CAP: usize = 512;

thread_local! {
    static CODE_CACHE: RefCell<HashMap<usize, CodeInfo, FastBuildHasher>> =
        RefCell::new(HashMap::default());
}

fn code_info(py: Python<'_>, code: &Py<PyAny>) -> CodeInfo {
    let bound = code.bind(py);
    let text = |attr: &str| -> Arc<str> {
        bound
            .getattr(attr)
            .and_then(|v| v.extract::<String>())
            .map(Arc::from)
            .unwrap_or_else(|_| Arc::from("<unknown>"))
    };
    CodeInfo {
        _keep_alive: code.clone_ref(py),
        filename: text("co_filename"),
        function: text("co_name"),
        facts: None,
        lines: HashMap::default(),
    }
}

/// aiocop's own Python package directory (`.../aiocop/`): its frames (the pytest plugin's)
/// count as an installed package's, wherever aiocop is installed from.
static OWN_PACKAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Tells the classification where aiocop's own Python package lives (once, at import).
pub fn set_own_package_dir(dir: &str) {
    let _ = OWN_PACKAGE.set(format!("{}/", dir.trim_end_matches('/')));
}

/// The interpreter's directories: the standard library's and the installed packages'.
struct LibraryDirs {
    stdlib: Vec<String>,
    packages: Vec<String>,
}

/// Reads the interpreter's directories now (`sysconfig.get_paths()`, a few milliseconds),
/// when the hook is installed, rather than inside the first blocking call of a new call site.
pub(crate) fn read_library_dirs(py: Python<'_>) {
    let _ = library_dirs(py);
}

fn library_dirs(py: Python<'_>) -> &'static LibraryDirs {
    static DIRS: std::sync::OnceLock<LibraryDirs> = std::sync::OnceLock::new();
    DIRS.get_or_init(|| {
        let paths = py
            .import("sysconfig")
            .and_then(|m| m.call_method0("get_paths"));
        let dirs = |keys: &[&str]| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            if let Ok(paths) = &paths {
                for key in keys {
                    if let Ok(path) = paths.get_item(*key).and_then(|p| p.extract::<String>()) {
                        let path = format!("{}/", path.trim_end_matches('/'));
                        if !out.contains(&path) {
                            out.push(path);
                        }
                    }
                }
            }
            out
        };
        let found = LibraryDirs {
            packages: dirs(&["purelib", "platlib"]),
            stdlib: dirs(&["stdlib", "platstdlib"]),
        };
        PyErr::take(py);
        found
    })
}

/// Where the code of `filename` comes from: code without a file and the standard library are
/// [`Origin::Stdlib`]; installed packages (and aiocop's own Python code) [`Origin::Package`];
/// anything else is the user's.
fn origin_of(py: Python<'_>, filename: &str) -> Origin {
    let under = |dirs: &[String]| dirs.iter().any(|d| filename.starts_with(d.as_str()));
    let dirs = library_dirs(py);
    if filename.starts_with('<') {
        Origin::Stdlib
    } else if filename.contains("/site-packages/")
        || filename.contains("/dist-packages/")
        || under(&dirs.packages)
        || OWN_PACKAGE
            .get()
            .is_some_and(|own| filename.starts_with(own.as_str()))
    {
        Origin::Package
    } else if under(&dirs.stdlib) {
        Origin::Stdlib
    } else {
        Origin::User
    }
}

thread_local! {
    /// file name → module name, built from `sys.modules`; rebuilt on a miss (a miss happens
    /// once per code object: the answer is cached with the code object's facts).
    static MODULES: RefCell<HashMap<String, Arc<str>>> = RefCell::new(HashMap::new());
}

/// The module whose `__file__` is `filename`, from `sys.modules`. Each module's `__file__` is
/// read from its `__dict__`: a module-level `__getattr__` or a lazy module is never run.
fn module_of(py: Python<'_>, filename: &str) -> Option<Arc<str>> {
    if let Some(frozen) = filename
        .strip_prefix("<frozen ")
        .and_then(|rest| rest.strip_suffix('>'))
    {
        return Some(Arc::from(frozen));
    }
    if filename.starts_with('<') {
        return None;
    }
    let hit = MODULES.with(|m| m.borrow().get(filename).cloned());
    if hit.is_some() {
        return hit;
    }
    let modules = py
        .import("sys")
        .and_then(|sys| sys.getattr("modules"))
        .ok()?;
    let mut index = HashMap::new();
    if let Ok(modules) = modules.cast::<pyo3::types::PyDict>() {
        for (name, module) in modules.iter() {
            let Ok(module) = module.cast::<pyo3::types::PyModule>() else {
                continue;
            };
            let file = module
                .dict()
                .get_item("__file__")
                .ok()
                .flatten()
                .and_then(|f| f.extract::<String>().ok());
            if let (Some(file), Ok(name)) = (file, name.extract::<String>()) {
                index
                    .entry(file)
                    .or_insert_with(|| Arc::from(name.as_str()));
            }
        }
    }
    PyErr::take(py);
    let found = index.get(filename).cloned();
    MODULES.with(|m| *m.borrow_mut() = index);
    found
}

/// The facts of a code object (module, qualified name, origin), looked up once per code
/// object.
fn code_facts(py: Python<'_>, info: &mut CodeInfo, code: &Py<PyAny>) -> Arc<CodeFacts> {
    if let Some(facts) = &info.facts {
        return Arc::clone(facts);
    }
    let module = module_of(py, &info.filename);
    let qualname = Current::qualname(code.bind(py), module.as_deref())
        .map(Arc::from)
        .unwrap_or_else(|| Arc::clone(&info.function));
    PyErr::take(py);
    let mut origin = origin_of(py, &info.filename);
    // The map of installed distributions, set once from `importlib.metadata`
    // (`aiocop_events::dist`), looked up once per code object: a file an installed
    // distribution lists is an installed package's, wherever it lives.
    let distribution = if origin == Origin::Stdlib {
        None
    } else {
        aiocop_events::dist::distribution_of(&info.filename)
    };
    if distribution.is_some() {
        origin = Origin::Package;
    }
    let facts = Arc::new(CodeFacts {
        module,
        qualname,
        origin,
        distribution,
    });
    info.facts = Some(Arc::clone(&facts));
    facts
}

fn resolve_one(
    py: Python<'_>,
    cache: &mut HashMap<usize, CodeInfo, FastBuildHasher>,
    frame: &CapturedFrame,
    with_facts: bool,
) -> Frame {
    let key = frame.code.as_ptr() as usize;
    if !cache.contains_key(&key) {
        if cache.len() >= CODE_CACHE_CAP {
            cache.clear();
        }
        cache.insert(key, code_info(py, &frame.code));
    }
    let Some(info) = cache.get_mut(&key) else {
        return Frame::new("<unknown>", -1, "<unknown>");
    };
    let line = match frame.position {
        Position::Line(line) => line,
        Position::Lasti(lasti) => match info.lines.get(&lasti) {
            Some(&line) => line,
            None => {
                let code = frame.code.as_ptr().cast();
                // SAFETY: GIL held; a live code object (the captured frame holds a reference).
                let line = unsafe { Current::resolve_line(code, frame.position) };
                if info.lines.len() >= LINES_PER_CODE_CAP {
                    info.lines.clear();
                }
                info.lines.insert(lasti, line);
                line
            }
        },
    };
    let resolved = Frame::new(info.filename.clone(), line, info.function.clone());
    if with_facts {
        resolved.with_code(code_facts(py, info, &frame.code))
    } else {
        resolved
    }
}

/// Resolves captured frames to file, line and function, innermost first; `with_facts`: and
/// each code's module, qualified name and origin (what call sites need: the user's frame, the
/// suggested rule, allow rules).
pub fn resolve_frames(py: Python<'_>, frames: &[CapturedFrame], with_facts: bool) -> Vec<Frame> {
    CODE_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        frames
            .iter()
            .map(|frame| resolve_one(py, &mut cache, frame, with_facts))
            .collect()
    })
}

/// A call site: the captured frames (code objects kept alive, so their addresses cannot be
/// reused while the site is cached) and the resolved, shared stack.
#[derive(Debug)]
pub struct CallSite {
    /// The frames as captured, innermost first (their code objects kept alive).
    pub frames: Vec<CapturedFrame>,
    /// The resolved stack, shared by every record made at this site.
    pub stack: Arc<Stack>,
    /// The second hash of the capture ([`SiteHasher`]): a cached site is taken for a new
    /// capture only when both hashes agree.
    check: u64,
}

/// A frame's position as one word: the value in the high bits, the kind in the low bit.
fn pack_position(position: Position) -> u64 {
    match position {
        Position::Lasti(offset) => u64::from(offset as u32) << 1,
        Position::Line(line) => (u64::from(line as u32) << 1) | 1,
    }
}

/// `a * b` as 128 bits, the halves xor-ed: a multiply that mixes every bit of both words.
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Two independent 64-bit hashes of a capture (each frame's code object address and packed
/// position, innermost first, and the number of frames): the first is the cache key, the
/// second must match too. A call site is known by these 128 bits alone — the walk of a known
/// site stores nothing and compares no frames — and the code objects of a cached site are kept
/// alive, so their addresses stand for them. Two different captures taken for the same site
/// would need both hashes, of different constructions, to collide at once.
#[derive(Debug, Clone, Copy)]
struct SiteHasher {
    key: FastHasher,
    check: u64,
    frames: u64,
}

impl Default for SiteHasher {
    fn default() -> Self {
        Self {
            key: FastHasher::default(),
            check: 0x243f_6a88_85a3_08d3,
            frames: 0,
        }
    }
}

impl SiteHasher {
    /// Adds one frame (the position moved to the high half for the key, where addresses of
    /// neighbouring code objects do not differ).
    #[inline(always)]
    fn push(&mut self, code: usize, position: Position) {
        let packed = pack_position(position);
        self.key.write_u64(code as u64 ^ packed.rotate_left(32));
        self.check = folded_multiply(self.check ^ code as u64, packed ^ 0x9e37_79b9_7f4a_7c15);
        self.frames += 1;
    }

    /// `(key, check)`.
    fn finish(&self) -> (u64, u64) {
        (
            self.key.finish(),
            folded_multiply(self.check ^ self.frames, 0xa076_1d64_78bd_642f),
        )
    }
}

/// Per-thread cache of captured stack → [`CallSite`]: a call site that blocks on every request
/// is resolved (and, on the background thread, formatted) once. Bounded: cleared when it grows
/// past the cap.
const STACK_CACHE_CAP: usize = 2048;

thread_local! {
    static SITES: RefCell<HashMap<u64, Arc<CallSite>, FastBuildHasher>> =
        RefCell::new(HashMap::default());
}

fn cached_site(key: u64, check: u64) -> Option<Arc<CallSite>> {
    SITES.with(|cache| {
        cache
            .try_borrow()
            .ok()?
            .get(&key)
            .filter(|site| site.check == check)
            .map(Arc::clone)
    })
}

/// Resolves `frames` into a new call site and caches it under `key`.
#[cold]
#[inline(never)]
fn new_site(py: Python<'_>, (key, check): (u64, u64), frames: Vec<CapturedFrame>) -> Arc<CallSite> {
    let site = Arc::new(CallSite {
        stack: Stack::shared(resolve_frames(py, &frames, true)),
        frames,
        check,
    });
    SITES.with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            if cache.len() >= STACK_CACHE_CAP {
                cache.clear();
            }
            cache.insert(key, Arc::clone(&site));
        }
    });
    site
}

/// The hashes of `frames` ([`SiteHasher`]).
fn hash_frames(frames: &[CapturedFrame]) -> (u64, u64) {
    let mut hasher = SiteHasher::default();
    for frame in frames {
        hasher.push(frame.code.as_ptr() as usize, frame.position);
    }
    hasher.finish()
}

/// The call site of the calling thread's current stack (up to `depth` frames): for a site seen
/// before, one walk that hashes as it goes and one cache lookup — no allocation, no reference
/// taken, nothing stored; a new site is walked again, captured and resolved through the
/// code-object cache.
pub(crate) fn capture_site(py: Python<'_>, depth: usize) -> Arc<CallSite> {
    if DIRECT_WALK.load(Ordering::Relaxed) == DIRECT_OK {
        let limit = depth.min(MAX_WALK) as u64;
        let mut hasher = SiteHasher::default();
        let mut visit = |code: *mut ffi::PyObject, position: Position| {
            hasher.push(code as usize, position);
            hasher.frames < limit
        };
        // SAFETY: the GIL is held (`py`) by this thread, whose stack is walked.
        if unsafe { Current::walk_interpreter_frames(&mut visit) } {
            let hashes = hasher.finish();
            if let Some(site) = cached_site(hashes.0, hashes.1) {
                return site;
            }
            // A new site. No Python code ran since the walk: the same frames are captured
            // (and referenced now, before any can run and free a code object).
            if let Some(frames) = capture_direct(py, depth) {
                return new_site(py, hashes, frames);
            }
        }
    }
    let frames = capture_current(py, depth);
    let hashes = hash_frames(&frames);
    cached_site(hashes.0, hashes.1).unwrap_or_else(|| new_site(py, hashes, frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(frames: &[(usize, Position)]) -> (u64, u64) {
        let mut hasher = SiteHasher::default();
        for &(code, position) in frames {
            hasher.push(code, position);
        }
        hasher.finish()
    }

    #[test]
    fn an_offset_and_a_line_of_the_same_value_differ() {
        assert_ne!(
            pack_position(Position::Lasti(7)),
            pack_position(Position::Line(7))
        );
        let (a, b) = (
            hashes(&[(0x1000, Position::Lasti(7))]),
            hashes(&[(0x1000, Position::Line(7))]),
        );
        assert_ne!(a.0, b.0);
        assert_ne!(a.1, b.1);
    }

    #[test]
    fn both_hashes_see_order_position_and_depth() {
        let f = |code: usize, lasti: i32| (code, Position::Lasti(lasti));
        let base = hashes(&[f(0x1000, 10), f(0x2000, 20)]);
        let others = [
            hashes(&[f(0x2000, 20), f(0x1000, 10)]),
            hashes(&[f(0x1000, 12), f(0x2000, 20)]),
            hashes(&[f(0x1000, 10), f(0x2000, 20), f(0x3000, 0)]),
            hashes(&[f(0x1000, 10)]),
            hashes(&[f(0x1010, 10), f(0x2000, 20)]),
        ];
        for other in others {
            assert_ne!(base.0, other.0);
            assert_ne!(base.1, other.1);
        }
        assert_eq!(base, hashes(&[f(0x1000, 10), f(0x2000, 20)]));
    }
}
