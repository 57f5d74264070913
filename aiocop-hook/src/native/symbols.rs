//! Names of captured instruction pointers, found on the watchdog thread (never in the signal
//! handler): the exported symbol covering the address when there is one (`dladdr1` with the
//! symbol's size, on glibc: cheap), else the function from the library's symbols and debug
//! information ([`backtrace::resolve`], which looks up `address - 1`: the call of a return
//! address), demangled with `rustc-demangle` (C names pass through), and the
//! library's file name from `dladdr`; cached by address.

use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiocop_events::Frame;

/// How many threads are inside `backtrace::resolve` (holding its lock, its cache half-built).
pub(crate) static RESOLVING: AtomicUsize = AtomicUsize::new(0);

/// Native frames kept per sample at most (innermost first).
pub(crate) const MAX_NATIVE_FRAMES: usize = 16;
/// Time spent on look-ups in debug information per sample, past the first one (see
/// [`Symbols::frames`]).
const DEBUG_INFO_BUDGET: Duration = Duration::from_millis(1);

/// What a sample may still spend on look-ups in debug information.
#[derive(Debug)]
struct Budget {
    /// The first look-up is always made (so every sample makes progress).
    first: bool,
    /// Later ones only until then.
    until: Instant,
}
/// Addresses remembered at most (then all are forgotten).
const CACHE_CAP: usize = 8192;

/// CPython's eval loop: the first frame of it ends the native frames of a sample (the Python
/// frames take over from there).
pub(crate) fn is_eval_loop(function: &str) -> bool {
    function.starts_with("_PyEval_EvalFrame") || function.starts_with("PyEval_EvalFrame")
}

/// How many of `functions` (innermost first) are shown: up to the first eval-loop frame,
/// excluded, and at most [`MAX_NATIVE_FRAMES`].
pub(crate) fn kept<'a>(functions: impl IntoIterator<Item = &'a str>) -> usize {
    functions
        .into_iter()
        .take(MAX_NATIVE_FRAMES)
        .take_while(|f| !is_eval_loop(f))
        .count()
}

/// A demangled name: Rust symbols without their hash, C names as they are.
pub(crate) fn demangle(raw: &str) -> String {
    match rustc_demangle::try_demangle(raw) {
        Ok(demangled) => format!("{demangled:#}"),
        Err(_) => raw.to_owned(),
    }
}

/// The file name of a path (`/usr/lib/libpython3.11.so.1.0` → `libpython3.11.so.1.0`).
pub(crate) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The resolver and its cache, the watchdog thread's alone.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    cache: HashMap<usize, (Arc<str>, Arc<str>)>,
}

impl Symbols {
    /// The native frames of `ips` (innermost first, the first one the interrupted instruction),
    /// cut at the eval loop; `None` when naming them needs look-ups in debug information past
    /// [`DEBUG_INFO_BUDGET`] (one is always made, for a return address before the interrupted
    /// instruction; the first in a compilation unit reads all of it): the sample goes without
    /// them, the next ones find those names cached, and the sampler is never held up long.
    pub(crate) fn frames(&mut self, ips: &[usize]) -> Option<Vec<Frame>> {
        self.frames_within(ips, DEBUG_INFO_BUDGET)
    }

    fn frames_within(&mut self, ips: &[usize], budget: Duration) -> Option<Vec<Frame>> {
        let mut budget = Budget {
            first: true,
            until: Instant::now() + budget,
        };
        // A return address points after the call: the call itself is looked up (ip - 1); the
        // interrupted instruction is looked up as it is.
        let Some((&interrupted, returns)) = ips.split_first() else {
            return Some(Vec::new());
        };
        let interrupted = interrupted.saturating_add(1);
        // The interrupted instruction differs from one sample to the next, the return addresses
        // under it do not: they get the look-up every sample is allowed, so that each sample of
        // a long stall names one more for good (were the interrupted one looked up first, a
        // cold look-up would spend the budget at every sample, and no sample would be named).
        let innermost = match self.known(interrupted) {
            Ok(named) if is_eval_loop(&named.0) => return Some(Vec::new()),
            Ok(named) => Some(named),
            Err(_) => None,
        };
        let mut names: Vec<(Arc<str>, Arc<str>)> = Vec::with_capacity(MAX_NATIVE_FRAMES);
        for &ip in returns.iter().take(MAX_NATIVE_FRAMES) {
            let named = self.name(ip, &mut budget)?;
            let eval_loop = is_eval_loop(&named.0);
            names.push(named);
            if eval_loop {
                break;
            }
        }
        let innermost = match innermost {
            Some(named) => named,
            None => self.name(interrupted, &mut budget)?,
        };
        names.insert(0, innermost);
        let keep = kept(names.iter().map(|(function, _)| &**function));
        Some(
            names
                .into_iter()
                .take(keep)
                .map(|(function, library)| Frame::native(function, library))
                .collect(),
        )
    }

    /// The function and library of the instruction before `ip` (see [`Symbols::frames`]);
    /// `None` when that needs debug information and `budget` is spent.
    fn name(&mut self, ip: usize, budget: &mut Budget) -> Option<(Arc<str>, Arc<str>)> {
        match self.known(ip) {
            Ok(found) => Some(found),
            Err(_) if !budget.first && Instant::now() >= budget.until => None,
            Err(library) => {
                budget.first = false;
                Some(self.remember(ip, function_at(ip), library))
            }
        }
    }

    /// The function and library of the instruction before `ip` when no debug information is
    /// needed (cached, or an exported symbol covers it); else the library's name.
    fn known(&mut self, ip: usize) -> Result<(Arc<str>, Arc<str>), String> {
        if let Some(found) = self.cache.get(&ip) {
            return Ok(found.clone());
        }
        match library_at(ip.saturating_sub(1)) {
            (library, Some(function)) => Ok(self.remember(ip, function, library)),
            (library, None) => Err(library),
        }
    }

    fn remember(&mut self, ip: usize, function: String, library: String) -> (Arc<str>, Arc<str>) {
        if self.cache.len() >= CACHE_CAP {
            self.cache.clear();
        }
        let found = (Arc::from(function), Arc::from(library));
        self.cache.insert(ip, found.clone());
        found
    }
}

/// The function containing `ip - 1` (`backtrace::resolve` looks there), or `0x…` when no
/// symbol covers it.
fn function_at(ip: usize) -> String {
    let mut name: Option<String> = None;
    // `resolve` (not `_unsynchronized`) takes backtrace's own lock; `RESOLVING` tells a child
    // forked meanwhile that it may be held (then the child never resolves).
    RESOLVING.fetch_add(1, Ordering::AcqRel);
    backtrace::resolve(ip as *mut std::ffi::c_void, |symbol| {
        if name.is_none() {
            name = symbol
                .name()
                .and_then(|n| n.as_str().map(demangle).or_else(|| Some(n.to_string())));
        }
    });
    RESOLVING.fetch_sub(1, Ordering::AcqRel);
    name.unwrap_or_else(|| format!("{ip:#x}"))
}

/// The file name of the library (or executable) mapping `addr` (`?` when none), and the
/// exported symbol covering it, demangled, when the loader knows one and its size.
fn library_at(addr: usize) -> (String, Option<String>) {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let (found, size) = dl_info(addr, info.as_mut_ptr());
    // SAFETY: zero-initialised, then filled by `dladdr`: every field is initialised.
    let info = unsafe { info.assume_init() };
    if found == 0 || info.dli_fname.is_null() {
        return ("?".to_owned(), None);
    }
    // SAFETY: a non-null `dli_fname` is a NUL-terminated path owned by the loader, valid while
    // the object stays loaded (it is: we are reading it now, under no unload).
    let path = unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy();
    let start = info.dli_saddr as usize;
    let exported = match size {
        Some(size) if !info.dli_sname.is_null() && start <= addr && addr < start + size => {
            // SAFETY: a non-null `dli_sname` is a NUL-terminated name owned by the loader.
            let name = unsafe { CStr::from_ptr(info.dli_sname) }.to_string_lossy();
            Some(demangle(&name))
        }
        _ => None,
    };
    (file_name(&path).to_owned(), exported)
}

/// `dladdr1` with the symbol's ELF entry (glibc): the result and the symbol's size.
#[cfg(target_env = "gnu")]
fn dl_info(addr: usize, info: *mut libc::Dl_info) -> (libc::c_int, Option<usize>) {
    /// `RTLD_DL_SYMENT` of `<dlfcn.h>`: the extra result is the symbol's `ElfW(Sym)`.
    const RTLD_DL_SYMENT: libc::c_int = 1;
    let mut sym: *mut libc::c_void = std::ptr::null_mut();
    // SAFETY: `dladdr1` only reads the loader's tables and fills `info` (writable, zeroed) and
    // `sym`; it accepts any address.
    let found = unsafe {
        libc::dladdr1(
            addr as *const libc::c_void,
            info,
            &raw mut sym,
            RTLD_DL_SYMENT,
        )
    };
    let size = (found != 0 && !sym.is_null()).then(|| {
        // SAFETY: with `RTLD_DL_SYMENT`, a non-null `sym` points to the symbol's entry in the
        // object's symbol table, which lives as long as the object.
        unsafe { (*sym.cast::<ElfSym>()).st_size as usize }
    });
    (found, size)
}

/// Elsewhere: `dladdr` (no size, so the exported name is not trusted: debug info names it).
#[cfg(not(target_env = "gnu"))]
fn dl_info(addr: usize, info: *mut libc::Dl_info) -> (libc::c_int, Option<usize>) {
    // SAFETY: `dladdr` only reads the loader's tables and fills `info`, which is writable and
    // zeroed; it accepts any address.
    let found = unsafe { libc::dladdr(addr as *const libc::c_void, info) };
    (found, None)
}

#[cfg(all(target_env = "gnu", target_pointer_width = "64"))]
type ElfSym = libc::Elf64_Sym;
#[cfg(all(target_env = "gnu", target_pointer_width = "32"))]
type ElfSym = libc::Elf32_Sym;

/// Loads the symbols and debug information of CPython's library and of the C library (where
/// the native frames of a sample are), so that no sample pays for it: reading the C library's
/// separate, compressed debug file, where one is installed, takes a tenth of a second (and
/// tens of megabytes). Other libraries' are loaded when a frame needs them.
pub(crate) fn warm_up() {
    function_at(pyo3::ffi::PyObject_Repr as *const () as usize + 1);
    function_at(libc::getpid as *const () as usize + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_frames_stop_at_the_eval_loop() {
        let cases: &[(&[&str], usize)] = &[
            (&[], 0),
            (
                &[
                    "sre_ucs1_match",
                    "sre_search",
                    "_PyEval_EvalFrameDefault",
                    "main",
                ],
                2,
            ),
            (&["_PyEval_EvalFrameDefault"], 0),
            (&["a", "_PyEval_EvalFrame", "b"], 1),
            (&["a", "PyEval_EvalFrameEx"], 1),
            (&["a", "b", "c"], 3),
            (&["x"; 40], MAX_NATIVE_FRAMES),
        ];
        for (names, expected) in cases {
            assert_eq!(kept(names.iter().copied()), *expected, "{names:?}");
        }
    }

    #[test]
    fn names_are_demangled_and_c_names_pass_through() {
        assert_eq!(demangle("sre_ucs1_match"), "sre_ucs1_match");
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        assert_eq!(
            file_name("/usr/lib/libpython3.11.so.1.0"),
            "libpython3.11.so.1.0"
        );
        assert_eq!(file_name("python3"), "python3");
    }

    #[test]
    fn an_address_of_this_library_is_named() {
        let mut symbols = Symbols::default();
        let here = function_at as *const () as usize;
        let mut budget = Budget {
            first: true,
            until: Instant::now(),
        };
        let (function, library) = symbols.name(here + 1, &mut budget).expect("named");
        assert!(function.contains("function_at"), "{function}");
        assert_ne!(&*library, "?");
        // an exported C function, named by the loader: no debug information needed
        let getpid = libc::getpid as *const () as usize;
        let (function, library) = symbols.name(getpid + 1, &mut budget).expect("named");
        assert!(function.ends_with("getpid"), "{function}");
        assert!(library.starts_with("libc"), "{library}");
        let frames = symbols
            .frames_within(&[here], Duration::ZERO)
            .expect("cached");
        assert_eq!(frames.len(), 1);
        assert!(frames[0].native);
    }

    #[test]
    fn past_its_budget_a_sample_goes_without_native_frames() {
        let mut symbols = Symbols::default();
        let a = native_frames_stop_at_the_eval_loop as *const () as usize;
        let b = names_are_demangled_and_c_names_pass_through as *const () as usize;
        // two addresses needing debug information: one named, the sample goes without
        assert_eq!(symbols.frames_within(&[a, b + 1], Duration::ZERO), None);
        // the next sample finds the first cached and names the second
        let frames = symbols
            .frames_within(&[a, b + 1], Duration::ZERO)
            .expect("one look-up left");
        assert_eq!(frames.len(), 2);
        assert!(
            frames[1].function.contains("names_are_demangled"),
            "{frames:?}"
        );
    }

    #[test]
    fn a_stall_interrupted_at_a_new_instruction_each_sample_gets_its_names() {
        let mut symbols = Symbols::default();
        let a = native_frames_stop_at_the_eval_loop as *const () as usize;
        let b = names_are_demangled_and_c_names_pass_through as *const () as usize;
        let c = an_address_of_this_library_is_named as *const () as usize;
        // Every sample interrupted somewhere new in `a`, under the same two calls, each name a
        // look-up in debug information and no time for more than one per sample.
        let sample = |symbols: &mut Symbols, k: usize| {
            symbols.frames_within(&[a + k, b + 1, c + 1], Duration::ZERO)
        };
        assert_eq!(sample(&mut symbols, 1), None);
        let frames = (2..=3)
            .find_map(|k| sample(&mut symbols, k))
            .expect("the two calls named for good, then the interrupted instruction");
        let functions: Vec<&str> = frames.iter().map(|f| &*f.function).collect();
        assert_eq!(functions.len(), 3, "{functions:?}");
        assert!(functions[0].contains("native_frames_stop"), "{functions:?}");
        assert!(
            functions[1].contains("names_are_demangled"),
            "{functions:?}"
        );
        assert!(functions[2].contains("an_address_of_this"), "{functions:?}");
    }
}
