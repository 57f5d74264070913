//! Native frames of another thread of this process: what C code (a regex, `json`, a hash) the
//! loop thread is running under its Python frames, for the CPU sampler.
//!
//! The sampler's watchdog asks for a capture ([`NativeSampler::capture`]): it sends the loop
//! thread a real-time signal (`SIGRTMIN()+4`, with `tgkill`, so a thread that has just ended is
//! never a dangling handle), whose handler — running on the loop thread, at the interrupted
//! instruction — walks its own stack with [`backtrace::trace_unsynchronized`] into a static,
//! preallocated buffer of instruction pointers ([`handshake`]), skipping its own frames up to
//! the interrupted instruction (the signal context's program counter). The watchdog waits a
//! bounded time (5 ms) for it, then names the addresses on its own thread ([`symbols`]) and cuts
//! them at CPython's eval loop.
//!
//! Why it cannot crash or deadlock the process: the handler allocates nothing, takes no lock,
//! saves and restores `errno`, catches unwinding, and writes only into the static buffer, and
//! only after taking the request (a handler that runs after the watchdog gave up writes
//! nothing); the unwinder was used once, on a warm-up thread, before the first signal (lazy
//! binding and the unwinder's first-use setup are done by then), and finds unwind tables
//! without the loader's lock (glibc 2.35+'s `_dl_find_object`, used by libgcc 12+). The signal
//! is installed once, with `SA_SIGINFO | SA_RESTART`, only if it has no handler yet (otherwise
//! native frames are off, with one warning), and checked to still be ours before each send.
//! The sampler signals a thread only when it is on CPU, so a thread waiting in a system call is
//! not interrupted. On targets other than Linux on x86-64 and aarch64 native frames are off.

mod handshake;
mod symbols;

use aiocop_events::Frame;

pub use platform::{after_fork_child, NativeSampler, Target};

/// Whether native frames were asked for ([`want`]); off by default: naming them loads the
/// debug information of CPython and the C library (tens of megabytes).
static WANTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks for native frames under the GIL-free samples (`start_cpu_sampling(native_frames=True)`);
/// they start when GIL-free sampling turns on ([`settle`]; see `remote::want_native_frames`).
pub(crate) fn want() {
    WANTED.store(true, std::sync::atomic::Ordering::Release);
}

/// Whether native frames are asked for: [`want`], or `AIOCOP_NATIVE_FRAMES=1` in the
/// environment.
fn wanted() -> bool {
    WANTED.load(std::sync::atomic::Ordering::Acquire)
        || std::env::var_os("AIOCOP_NATIVE_FRAMES").is_some_and(|value| value == "1")
}

/// Whether CPU samples get native frames: `None` when not asked for (or not decided yet: GIL-free
/// sampling not on yet), `Some(true)` when the handler is installed and working,
/// `Some(false)` when they were asked for but are off (the signal taken, a handler that did
/// not answer, this platform).
pub fn state() -> Option<bool> {
    if !wanted() {
        return None;
    }
    platform::installed()
}

/// Installs the signal handler, once per process, when GIL-free sampling turns on (native
/// frames go under GIL-free samples only) and native frames are asked for; a signal that
/// already has a handler leaves native frames off, with one warning (`tracing` and the
/// `aiocop` logger).
pub(crate) fn settle(py: pyo3::Python<'_>) {
    if !wanted() {
        return;
    }
    if let Err(why) = platform::install() {
        let message = format!("aiocop: CPU samples get no native frames: {why}");
        tracing::warn!(logged = true, "{message}");
        crate::pylog::warning(py, &message);
    }
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod platform {
    use std::ffi::{c_int, c_void};
    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use super::handshake::{Handshake, Waited};
    use super::symbols::{self, Symbols};
    use super::Frame;

    /// The one capture in flight (there is one watchdog).
    static CAPTURE: Handshake = Handshake::new();
    /// The signal installed, or why native frames are off; unset before [`super::settle`].
    static SIGNAL: OnceLock<Result<c_int, String>> = OnceLock::new();
    /// Set when a handler never finished: native frames are off from then on.
    static BROKEN: AtomicBool = AtomicBool::new(false);

    /// How long the watchdog waits for a handler to start.
    const WAIT: Duration = Duration::from_millis(5);
    /// How long it waits for a handler that started to finish.
    const WAIT_WRITING: Duration = Duration::from_millis(50);

    /// A thread that can be asked for its native frames (its kernel thread id).
    #[derive(Debug, Clone, Copy)]
    pub struct Target {
        tid: libc::pid_t,
    }

    impl Target {
        /// The calling thread.
        pub fn current() -> Self {
            // SAFETY: `gettid` has no preconditions.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
            Target { tid }
        }
    }

    /// The watchdog's side: the signal, the resolver and a buffer. One per watchdog thread.
    #[derive(Debug)]
    pub struct NativeSampler {
        signal: c_int,
        symbols: Symbols,
        ips: Vec<usize>,
    }

    impl NativeSampler {
        /// Once the signal handler is installed ([`super::settle`]) and the warm-up is over: a
        /// sampler, or `Some(None)` when native frames are off; `None` while that is undecided
        /// or the warm-up runs (ask again later: the caller samples without native frames
        /// meanwhile).
        pub fn ready() -> Option<Option<Self>> {
            let signal = match SIGNAL.get()? {
                Ok(signal) if !BROKEN.load(Ordering::Acquire) => *signal,
                _ => return Some(None),
            };
            if !warmed_up() {
                return None;
            }
            tracing::debug!(signal, "aiocop native frames on");
            Some(Some(NativeSampler {
                signal,
                symbols: Symbols::default(),
                ips: Vec::with_capacity(super::handshake::CAPACITY),
            }))
        }

        /// The native frames `target` is running, innermost first, down to (not including)
        /// CPython's eval loop; `None` when none could be had (no answer in time, the signal
        /// handler replaced, the interrupted instruction not found on the stack).
        pub fn capture(&mut self, target: Target) -> Option<Vec<Frame>> {
            if BROKEN.load(Ordering::Acquire) || !still_ours(self.signal) {
                return None;
            }
            if !CAPTURE.request() {
                return None;
            }
            // SAFETY: `tgkill` with our own process id only reaches a thread of this process;
            // a thread that ended gets nothing (ESRCH), one that reused its id runs our handler
            // (harmless: the sample is dropped as torn by the caller's check).
            let sent = unsafe {
                libc::syscall(
                    libc::SYS_tgkill,
                    libc::getpid(),
                    libc::c_long::from(target.tid),
                    libc::c_long::from(self.signal),
                )
            };
            if sent != 0 {
                CAPTURE.poll(true);
                return None;
            }
            let asked = Instant::now();
            let waited = loop {
                let elapsed = asked.elapsed();
                let give_up = elapsed >= WAIT;
                match CAPTURE.poll(give_up) {
                    Some(Waited::Writing) if elapsed < WAIT + WAIT_WRITING => {}
                    Some(Waited::Writing) => {
                        // Through `tracing`: this thread does not take the GIL (the event
                        // reaches the `aiocop` logger through `pylog`'s forwarder).
                        BROKEN.store(true, Ordering::Release);
                        tracing::warn!(
                            "aiocop: a native-frame capture did not finish in time; native frames are off"
                        );
                        return None;
                    }
                    Some(waited) => break waited,
                    None => {}
                }
                std::thread::sleep(Duration::from_micros(20));
            };
            if waited != Waited::Done {
                return None;
            }
            CAPTURE.take(&mut self.ips);
            if self.ips.is_empty() {
                return None;
            }
            self.symbols.frames(&self.ips)
        }
    }

    /// Installs the handler once per process; the error (why native frames are off) is
    /// returned the first time only.
    /// `None` before [`install`], else whether native frames are on.
    pub(super) fn installed() -> Option<bool> {
        SIGNAL
            .get()
            .map(|signal| signal.is_ok() && !BROKEN.load(Ordering::Acquire))
    }

    pub(super) fn install() -> Result<(), String> {
        let mut first = None;
        SIGNAL.get_or_init(|| {
            let installed = install_handler();
            first = installed.as_ref().err().cloned();
            installed
        });
        first.map_or(Ok(()), Err)
    }

    const COLD: u8 = 0;
    const WARMING: u8 = 1;
    const WARM: u8 = 2;
    /// Where the warm-up stands (process-wide: what it prepares is).
    static WARM_UP: AtomicU8 = AtomicU8::new(COLD);

    /// Whether the warm-up is over; the first call starts it on a thread of its own (loading
    /// debug information takes from tens of milliseconds to seconds, which the sampler's
    /// thread does not wait for).
    fn warmed_up() -> bool {
        match WARM_UP.compare_exchange(COLD, WARMING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                let spawned = std::thread::Builder::new()
                    .name("aiocop-native-warm-up".into())
                    .spawn(|| {
                        warm_up();
                        WARM_UP.store(WARM, Ordering::Release);
                    });
                if spawned.is_err() {
                    warm_up();
                    WARM_UP.store(WARM, Ordering::Release);
                }
                WARM_UP.load(Ordering::Acquire) == WARM
            }
            Err(state) => state == WARM,
        }
    }

    /// The unwinder's first use (lazy binding of its entry points, its own setup: all
    /// process-wide) happens here, not in a signal handler; then CPython's and the C library's
    /// symbols are loaded.
    fn warm_up() {
        let mut frames = 0usize;
        // SAFETY: this thread unwinds itself; the closure only counts.
        unsafe {
            backtrace::trace_unsynchronized(|_| {
                frames += 1;
                true
            });
        }
        symbols::warm_up();
        tracing::debug!(frames, "aiocop native frames warmed up");
    }

    /// In a child process after `fork()`: no capture in flight; native frames off if the fork
    /// came while a thread was warming up or naming addresses (the resolver's lock and cache
    /// may be half-held in the child, where that thread no longer runs).
    pub fn after_fork_child() {
        CAPTURE.reset();
        if WARM_UP.load(Ordering::Acquire) == WARMING
            || symbols::RESOLVING.load(Ordering::Acquire) != 0
        {
            BROKEN.store(true, Ordering::Release);
            tracing::debug!("aiocop: forked while naming native frames; off in this child");
        }
    }

    /// The real-time signal used, installed if it has no handler yet.
    fn install_handler() -> Result<c_int, String> {
        let signal = libc::SIGRTMIN() + 4;
        if signal > libc::SIGRTMAX() {
            return Err("no real-time signal SIGRTMIN+4 on this system".to_owned());
        }
        let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a query (no new action) into a writable, zeroed struct.
        if unsafe { libc::sigaction(signal, std::ptr::null(), old.as_mut_ptr()) } != 0 {
            return Err(format!("signal {signal} cannot be queried"));
        }
        // SAFETY: zeroed, then filled by a successful `sigaction`.
        let old = unsafe { old.assume_init() };
        if old.sa_sigaction != libc::SIG_DFL {
            return Err(format!(
                "signal SIGRTMIN+4 ({signal}) already has a handler, aiocop leaves it alone"
            ));
        }
        let mut action = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
        let action = action.as_mut_ptr();
        // SAFETY: `action` points to a zeroed `sigaction` we own; its mask is initialised by
        // `sigemptyset` before use, and the handler has the `SA_SIGINFO` signature.
        let installed = unsafe {
            (*action).sa_sigaction = on_signal as *const () as usize;
            (*action).sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&raw mut (*action).sa_mask);
            libc::sigaction(signal, action, std::ptr::null_mut())
        };
        if installed != 0 {
            return Err(format!("signal {signal} cannot be installed"));
        }
        Ok(signal)
    }

    /// Whether `signal`'s handler is still ours (someone may have replaced it since).
    fn still_ours(signal: c_int) -> bool {
        let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a query into a writable, zeroed struct.
        let ok = unsafe { libc::sigaction(signal, std::ptr::null(), current.as_mut_ptr()) } == 0;
        // SAFETY: zeroed, then filled by `sigaction` when `ok`.
        ok && unsafe { current.assume_init() }.sa_sigaction == on_signal as *const () as usize
    }

    /// The signal handler: captures this thread's native frames into [`CAPTURE`], if asked.
    extern "C" fn on_signal(_signal: c_int, _info: *mut libc::siginfo_t, context: *mut c_void) {
        // SAFETY: `__errno_location` returns this thread's errno, always valid.
        let errno = unsafe { *libc::__errno_location() };
        let _ = std::panic::catch_unwind(|| capture_here(context));
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }

    /// The handler's work: no allocation, no lock, writes only into [`CAPTURE`]'s buffer.
    fn capture_here(context: *mut c_void) {
        if !CAPTURE.begin() {
            return; // no request (a late or stray signal): write nothing
        }
        let pc = interrupted_pc(context);
        let mut found = false;
        let mut len = 0usize;
        if pc != 0 {
            // SAFETY: this thread unwinds itself; nothing else unwinds it meanwhile (the
            // interrupted code is not running), and the closure allocates nothing.
            unsafe {
                backtrace::trace_unsynchronized(|frame| {
                    let ip = frame.ip() as usize;
                    if !found {
                        // The handler's own frames and the signal trampoline come first.
                        found = ip == pc;
                        if !found {
                            return true;
                        }
                    }
                    if CAPTURE.write(len, ip) {
                        len += 1;
                        true
                    } else {
                        false
                    }
                });
            }
        }
        CAPTURE.finish(if found { len } else { 0 });
    }

    /// The interrupted instruction, from the signal context (0 when there is none).
    fn interrupted_pc(context: *mut c_void) -> usize {
        if context.is_null() {
            return 0;
        }
        let context = context.cast::<libc::ucontext_t>();
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: with `SA_SIGINFO` the third argument is the kernel's `ucontext_t` for
            // this signal, valid for the handler's duration.
            unsafe { (*context).uc_mcontext.gregs[libc::REG_RIP as usize] as usize }
        }
        #[cfg(target_arch = "aarch64")]
        {
            // SAFETY: as above.
            unsafe { (*context).uc_mcontext.pc as usize }
        }
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod platform {
    use super::Frame;

    /// A thread that can be asked for its native frames (not on this platform).
    #[derive(Debug, Clone, Copy)]
    pub struct Target;

    impl Target {
        /// The calling thread.
        pub fn current() -> Self {
            Target
        }
    }

    /// Native frames are off on this platform.
    #[derive(Debug)]
    pub struct NativeSampler;

    /// Nothing to reset: native frames are off on this platform.
    pub fn after_fork_child() {}

    /// Nothing to install: native frames are off on this platform (no warning: documented).
    pub(super) fn install() -> Result<(), String> {
        Ok(())
    }

    /// Always off on this platform.
    pub(super) fn installed() -> Option<bool> {
        Some(false)
    }

    impl NativeSampler {
        /// Always `Some(None)`: native frames are off on this platform.
        pub fn ready() -> Option<Option<Self>> {
            Some(None)
        }

        /// Never called (no sampler exists).
        pub fn capture(&mut self, _target: Target) -> Option<Vec<Frame>> {
            None
        }
    }
}

#[cfg(all(
    test,
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    use super::*;

    #[inline(never)]
    fn spin_in_a_known_function(stop: &AtomicBool) -> u64 {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        n
    }

    #[test]
    fn a_busy_thread_is_caught_in_its_own_function() {
        platform::install().expect("the signal is free in the test process");
        let mut sampler = loop {
            match NativeSampler::ready() {
                Some(made) => break made.expect("native frames on"),
                None => std::thread::sleep(std::time::Duration::from_millis(5)), // warming up
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let spinner = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                tx.send(Target::current()).expect("the test waits for it");
                spin_in_a_known_function(&stop)
            })
        };
        let target = rx.recv().expect("the spinner sends its id");
        let mut caught = 0;
        for _ in 0..20 {
            if let Some(frames) = sampler.capture(target) {
                assert!(frames.iter().all(|f| f.native));
                assert!(frames.len() <= 16);
                if frames
                    .iter()
                    .any(|f| f.function.contains("spin_in_a_known_function"))
                {
                    caught += 1;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        stop.store(true, Ordering::Relaxed);
        spinner.join().expect("the spinner ends");
        assert!(caught >= 10, "caught {caught} of 20");
        // A thread that ended: nothing, no fault.
        assert!(sampler.capture(target).is_none());
    }
}
