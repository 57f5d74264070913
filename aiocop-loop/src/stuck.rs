//! Stuck loops (`aiocop.detect_stuck_loops`): a handle still running `after` after it began is
//! reported while it runs, then again at `2 × after`, `4 × after`, ... (the schedule is
//! [`aiocop_events::StuckState`]).
//!
//! Three threads take part, none of them the stuck loop's:
//!
//! - the CPU sampler's watchdog (`sampler`) sees the handle's age, and, without the GIL, reads
//!   the loop thread's stack ([`aiocop_hook::remote`], else the last sample it took), its state
//!   and system call (`thread_watch`), makes the [`StuckReport`] and hands it to
//!   [`Detection::report`]: counted, appended as one JSON line to the report file (plain Rust
//!   data and a `write` on a file opened in append mode: no Python object, so the line is
//!   written even while the loop thread holds the GIL for good), and sent to the reporter;
//! - the reporter thread (`aiocop-stuck-reporter`) takes the GIL, builds the
//!   [`StuckLoopEvent`] (reading the task's name then), logs it at WARNING on the `aiocop`
//!   logger and calls the `on_stuck_loop` callbacks. A stall that holds the GIL delays this
//!   part until the GIL comes free; the JSON line does not wait.

use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aiocop_events::{StuckFrame as Frame, StuckReport};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::pylog;

/// Reports made (`stats()["stuck_loop_reports"]`).
static REPORTS: AtomicU64 = AtomicU64::new(0);

/// Stuck-loop reports made since the process started.
pub fn stuck_loop_reports() -> u64 {
    REPORTS.load(Ordering::Relaxed)
}

/// Reports waiting for the reporter thread at most (more are written and counted, not
/// delivered to Python).
const QUEUE: usize = 64;

/// What `detect_stuck_loops` set up.
#[derive(Debug)]
pub(crate) struct Detection {
    after_ns: u64,
    file: Option<Mutex<File>>,
    to_reporter: flume::Sender<StuckReport>,
}

type Slot = Mutex<Option<Arc<Detection>>>;

/// The first process's slot for the detection in force.
static FIRST: Slot = Mutex::new(None);
/// A child's slot after `fork()` (leaked, never freed); null until a fork. The watchdog takes
/// the slot's lock without the GIL, so the parent's may be held at the fork, for good in the
/// child: a child never takes it.
static FORKED: AtomicPtr<Slot> = AtomicPtr::new(std::ptr::null_mut());
/// The settings of the detection in force, for a child process to start again with after
/// `fork()`. Taken only by threads holding the GIL (start, stop, after a fork), never by the
/// watchdog: `os.fork()` holds the GIL too, so no other thread holds this lock at a fork.
static SETTINGS: Mutex<Option<StuckSettings>> = Mutex::new(None);

fn slot() -> &'static Slot {
    let forked = FORKED.load(Ordering::Acquire);
    if forked.is_null() {
        return &FIRST;
    }
    // SAFETY: a non-null `FORKED` comes from `Box::leak` in `after_fork_child` and is never
    // freed: valid for `'static`.
    unsafe { &*forked }
}

/// The detection in force, if any (the watchdog, once per wake-up).
pub(crate) fn current() -> Option<Arc<Detection>> {
    slot()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// `detect_stuck_loops`: the settings, checked by the caller.
#[derive(Debug)]
pub struct StuckSettings {
    /// Age of a handle at its first report.
    pub after_ns: u64,
    /// Callables given each [`StuckLoopEvent`], on the reporter thread.
    pub callbacks: Vec<Py<PyAny>>,
    /// File the JSON lines are appended to.
    pub report_path: Option<PathBuf>,
}

/// Why detection did not start.
#[derive(Debug)]
pub enum StartError {
    /// Already detecting: nothing changed.
    AlreadyOn,
    /// The report file could not be opened for appending (the message says why).
    ReportPath(String),
}

/// Starts detecting stuck loops; the caller starts the watchdog
/// ([`crate::sampler::ensure_watchdog`]) if CPU sampling did not.
pub fn start(py: Python<'_>, settings: StuckSettings) -> Result<(), StartError> {
    let mut slot = slot().lock().unwrap_or_else(PoisonError::into_inner);
    if slot.is_some() {
        return Err(StartError::AlreadyOn);
    }
    *slot = Some(Arc::new(detection(py, &settings)?));
    *SETTINGS.lock().unwrap_or_else(PoisonError::into_inner) = Some(settings);
    Ok(())
}

/// Opens the report file and starts the reporter thread for `settings`.
fn detection(py: Python<'_>, settings: &StuckSettings) -> Result<Detection, StartError> {
    let file = match &settings.report_path {
        None => None,
        Some(path) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| StartError::ReportPath(format!("{}: {err}", path.display())))?,
        )),
    };
    let (to_reporter, from_watchdog) = flume::bounded(QUEUE);
    let callbacks: Vec<Py<PyAny>> = settings.callbacks.iter().map(|c| c.clone_ref(py)).collect();
    let spawned = std::thread::Builder::new()
        .name("aiocop-stuck-reporter".into())
        .spawn(move || reporter(&from_watchdog, callbacks));
    if let Err(err) = spawned {
        tracing::error!("aiocop could not start its stuck-loop reporter: {err}");
    }
    Ok(Detection {
        after_ns: settings.after_ns,
        file,
        to_reporter,
    })
}

/// Stops detecting stuck loops; `false` when it was not on. Reports already made are still
/// delivered.
pub fn stop() -> bool {
    // Dropped with the lock released: a callback's last reference may run Python code.
    let _settings = SETTINGS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    slot()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .is_some()
}

/// In a child process after `fork()` (with the GIL): the reporter thread stayed in the parent;
/// detection goes on with a new one, and the report file opened again, in a slot of the
/// child's own, from the settings in force. The parent's slot is left as it was, never taken
/// again: the watchdog may have held its lock at the fork.
pub fn after_fork_child(py: Python<'_>) {
    let mut settings = SETTINGS.lock().unwrap_or_else(PoisonError::into_inner);
    let restarted = settings.as_ref().and_then(|settings| {
        detection(py, settings)
            .inspect_err(|_| {
                tracing::warn!(
                    "aiocop: the stuck-loop report file cannot be opened in this child \
                     process; detection is off there"
                );
            })
            .ok()
    });
    if restarted.is_none() {
        *settings = None;
    }
    let child: &'static Slot = Box::leak(Box::new(Mutex::new(restarted.map(Arc::new))));
    FORKED.store(std::ptr::from_ref(child).cast_mut(), Ordering::Release);
}

impl Detection {
    /// Age of a handle at its first report.
    pub(crate) fn after_ns(&self) -> u64 {
        self.after_ns
    }

    /// Watchdog, without the GIL: counts `report`, appends its JSON line to the report file and
    /// hands it to the reporter thread.
    pub(crate) fn report(&self, report: StuckReport) {
        REPORTS.fetch_add(1, Ordering::Relaxed);
        if let Some(file) = &self.file {
            let line = report.json_line(std::process::id());
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(err) = file.write_all(line.as_bytes()) {
                tracing::warn!("aiocop could not write a stuck-loop report: {err}");
            }
        }
        if self.to_reporter.try_send(report).is_err() {
            tracing::warn!(
                "aiocop's stuck-loop reporter is behind; a report goes to the file only"
            );
        }
    }
}

/// `time.monotonic()`: `CLOCK_MONOTONIC`, in seconds.
pub(crate) fn monotonic_s() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    if rc != 0 {
        return 0.0;
    }
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// The reporter thread: takes the GIL for each report, logs it and calls the callbacks; ends
/// when detection stops (the watchdog's sender dropped).
fn reporter(reports: &flume::Receiver<StuckReport>, callbacks: Vec<Py<PyAny>>) {
    while let Ok(report) = reports.recv() {
        if !aiocop_hook::compat::interpreter_alive() || crate::config::is_shutting_down() {
            continue;
        }
        let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Python::attach(|py| deliver(py, report, &callbacks));
        }));
        if delivered.is_err() {
            tracing::error!("panic in aiocop's stuck-loop reporter; a report was dropped");
        }
    }
    if aiocop_hook::compat::interpreter_alive() && !crate::config::is_shutting_down() {
        Python::attach(|py| {
            for callback in callbacks {
                drop(callback.into_bound(py));
            }
        });
    } else {
        std::mem::forget(callbacks); // the interpreter is going away: nothing to release
    }
}

fn deliver(py: Python<'_>, report: StuckReport, callbacks: &[Py<PyAny>]) {
    let task = running_task(py, report.thread_id, &report.stack);
    let event = StuckLoopEvent::new_from(py, report, task.as_ref());
    let message = event.message();
    pylog::warning(py, &message);
    if callbacks.is_empty() {
        return;
    }
    let event = match Bound::new(py, event) {
        Ok(event) => event,
        Err(err) => {
            pylog::error(
                py,
                &format!("aiocop could not build a StuckLoopEvent: {err}"),
            );
            return;
        }
    };
    for callback in callbacks {
        let callback = callback.bind(py);
        if let Err(err) = callback.call1((&event,)) {
            pylog::warning(
                py,
                &format!(
                    "Error in stuck loop callback {}: {err}",
                    pylog::describe(callback)
                ),
            );
        }
    }
}

/// The asyncio task running on the thread `thread_id`: the current task (of any loop) whose
/// coroutine's frame is on that thread's stack now, and whose code is in the reported `stack`
/// (when it has frames: the stall may have ended, and another task begun, before the GIL was
/// free). `None` for a plain callback, or when it cannot be told. Leaves no exception set.
fn running_task<'py>(
    py: Python<'py>,
    thread_id: u64,
    stack: &[Frame],
) -> Option<Bound<'py, PyAny>> {
    let found = (|| -> PyResult<Option<Bound<'py, PyAny>>> {
        let frames = py
            .import(pyo3::intern!(py, "sys"))?
            .call_method0(pyo3::intern!(py, "_current_frames"))?;
        let Some(mut frame) = frames.get_item(thread_id).ok() else {
            return Ok(None);
        };
        let mut on_stack = Vec::new();
        while !frame.is_none() && on_stack.len() < 512 {
            on_stack.push(frame.as_ptr() as usize);
            frame = frame.getattr(pyo3::intern!(py, "f_back"))?;
        }
        let tasks = py
            .import(pyo3::intern!(py, "asyncio.tasks"))?
            .getattr(pyo3::intern!(py, "_current_tasks"))?;
        let tasks = PyList::new(
            py,
            tasks
                .call_method0(pyo3::intern!(py, "values"))?
                .try_iter()?
                .collect::<PyResult<Vec<_>>>()?,
        )?;
        for task in tasks.iter() {
            let coro = task.call_method0(pyo3::intern!(py, "get_coro"))?;
            let Ok(frame) = coro.getattr(pyo3::intern!(py, "cr_frame")) else {
                continue;
            };
            if frame.is_none() || !on_stack.contains(&(frame.as_ptr() as usize)) {
                continue;
            }
            let code = frame.getattr(pyo3::intern!(py, "f_code"))?;
            let file: String = code.getattr(pyo3::intern!(py, "co_filename"))?.extract()?;
            let name: String = code.getattr(pyo3::intern!(py, "co_name"))?.extract()?;
            let reported = stack.is_empty()
                || stack
                    .iter()
                    .any(|f| *f.file == *file && *f.function == *name);
            return Ok(reported.then_some(task));
        }
        Ok(None)
    })();
    found.unwrap_or_else(|_| {
        PyErr::take(py);
        None
    })
}

/// One frame of a stuck loop's stack (`StuckLoopEvent.stack`).
#[pyclass(frozen, get_all, module = "aiocop", name = "StuckFrame")]
#[derive(Debug, Clone)]
pub struct StuckFrame {
    /// The code's file.
    file: String,
    /// The line being run (-1 when unknown).
    line: i32,
    /// The function's name.
    function: String,
    /// The function's qualified name.
    qualname: String,
    /// A native (C, Rust) frame: always False for now (Python frames only).
    native: bool,
}

#[pymethods]
impl StuckFrame {
    #[new]
    #[pyo3(signature = (file, line, function, qualname=None, native=false))]
    fn py_new(
        file: String,
        line: i32,
        function: String,
        qualname: Option<String>,
        native: bool,
    ) -> Self {
        let qualname = qualname.unwrap_or_else(|| function.clone());
        Self {
            file,
            line,
            function,
            qualname,
            native,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "StuckFrame(file={:?}, line={}, function={:?}, qualname={:?}, native={})",
            self.file,
            self.line,
            self.function,
            self.qualname,
            if self.native { "True" } else { "False" }
        )
    }
}

impl From<&Frame> for StuckFrame {
    fn from(frame: &Frame) -> Self {
        Self {
            file: frame.file.to_string(),
            line: frame.line,
            function: frame.function.to_string(),
            qualname: frame.qualname.to_string(),
            native: frame.native,
        }
    }
}

/// A loop thread stuck in one handle, reported while the handle still runs (the argument of
/// the `on_stuck_loop` callbacks, which run on a thread of aiocop's, never on the stuck loop).
#[pyclass(frozen, get_all, module = "aiocop", name = "StuckLoopEvent")]
#[derive(Debug)]
pub struct StuckLoopEvent {
    /// The loop thread's `threading.get_ident()`.
    thread_id: u64,
    /// The name of the task the handle steps; None for a plain callback or when not known.
    task_name: Option<String>,
    /// The qualified name of the task's coroutine, or of the callback the handle runs.
    coroutine: Option<String>,
    /// How long the handle had been running when seen, in milliseconds.
    stuck_ms: f64,
    /// The loop thread's stack, innermost frame first (`StuckFrame`s).
    stack: Vec<StuckFrame>,
    /// Whether the thread was on a CPU (runnable) when seen; None where not known.
    on_cpu: Option<bool>,
    /// The system call the thread waited in when seen (`"clock_nanosleep"`, `"futex"`, ...).
    blocked_in: Option<String>,
    /// When the report was made, in `time.monotonic()` seconds.
    detected_at: f64,
    /// This report's number for the handle (1, 2, ...: reports come at after_ms, 2x, 4x, ...).
    report_number: u32,
}

impl StuckLoopEvent {
    fn new_from(py: Python<'_>, report: StuckReport, task: Option<&Bound<'_, PyAny>>) -> Self {
        let (task_name, coroutine) = match task.and_then(aiocop_hook::enforce::task_names) {
            Some((name, coro)) => (
                name.and_then(|n| n.bind(py).extract::<String>().ok()),
                coro.and_then(|c| c.bind(py).extract::<String>().ok()),
            ),
            None => (None, None),
        };
        let stuck_ms = report.stuck_ms();
        let coroutine = coroutine
            .or(report.coroutine)
            .or_else(|| aiocop_events::coroutine_of(&report.stack).map(str::to_owned));
        Self {
            thread_id: report.thread_id,
            task_name: task_name.or(report.task_name),
            coroutine,
            stuck_ms,
            stack: report.stack.iter().map(StuckFrame::from).collect(),
            on_cpu: report.on_cpu,
            blocked_in: report.blocked_in.map(Cow::into_owned),
            detected_at: report.detected_at,
            report_number: report.report_number,
        }
    }

    /// The WARNING line of the report.
    fn message(&self) -> String {
        let mut message = format!(
            "aiocop: event loop thread {} stuck for {:.0} ms in {}",
            self.thread_id,
            self.stuck_ms,
            self.coroutine.as_deref().unwrap_or("an unknown callback"),
        );
        if let Some(task) = &self.task_name {
            message.push_str(&format!(" (task {task})"));
        }
        match (self.on_cpu, &self.blocked_in) {
            (_, Some(call)) => message.push_str(&format!(", waiting in {call}")),
            (Some(true), None) => message.push_str(", on CPU"),
            _ => {}
        }
        if let Some(frame) = self.stack.first() {
            message.push_str(&format!(
                " at {}:{} {}",
                frame.file, frame.line, frame.qualname
            ));
        }
        message
    }
}

#[pymethods]
impl StuckLoopEvent {
    fn __repr__(&self) -> String {
        fn text(value: Option<&str>) -> String {
            value.map_or_else(|| "None".to_owned(), |v| format!("{v:?}"))
        }
        let on_cpu = match self.on_cpu {
            Some(true) => "True",
            Some(false) => "False",
            None => "None",
        };
        format!(
            "StuckLoopEvent(thread_id={}, task_name={}, coroutine={}, stuck_ms={:.1}, \
             on_cpu={on_cpu}, blocked_in={}, detected_at={}, report_number={}, stack=[{} frames])",
            self.thread_id,
            text(self.task_name.as_deref()),
            text(self.coroutine.as_deref()),
            self.stuck_ms,
            text(self.blocked_in.as_deref()),
            self.detected_at,
            self.report_number,
            self.stack.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test at a time: they share the process's detection slot.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn settings(after_ns: u64) -> StuckSettings {
        StuckSettings {
            after_ns,
            callbacks: Vec::new(),
            report_path: None,
        }
    }

    /// Forks; the child runs `child` (with the GIL) and exits 0 when it returns `true`. The
    /// child's exit code, or `None` when it did not finish in 20 s (then it is killed).
    fn in_forked_child(child: impl FnOnce(Python<'_>) -> bool) -> Option<i32> {
        let pid = Python::attach(|py| {
            // SAFETY: the child runs only `child` (no lock another thread may hold is taken
            // but through the code under test) and leaves by `_exit`.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(py)));
                // SAFETY: ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(i32::from(!matches!(ok, Ok(true)))) };
            }
            pid
        });
        assert!(pid > 0, "fork failed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut status = 0;
        loop {
            // SAFETY: `pid` is this process's child; `status` is writable.
            let done = unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) };
            if done == pid {
                return Some(libc::WEXITSTATUS(status));
            }
            if std::time::Instant::now() > deadline {
                // SAFETY: `pid` is this process's child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &raw mut status, 0);
                }
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn a_forked_child_goes_on_detecting_with_the_same_settings() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        Python::initialize();
        Python::attach(|py| start(py, settings(123_000_000))).expect("detection starts");
        let code = in_forked_child(|py| {
            after_fork_child(py);
            current().is_some_and(|d| d.after_ns() == 123_000_000) && stop() && !stop()
        });
        assert!(stop(), "the parent's detection is still on");
        assert_eq!(code, Some(0));
    }

    #[test]
    fn a_child_forked_while_the_watchdog_held_the_detection_goes_on_detecting() {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        Python::initialize();
        Python::attach(|py| start(py, settings(100_000_000))).expect("detection starts");
        let (held, is_held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _guard = slot().lock().unwrap_or_else(PoisonError::into_inner);
            held.send(()).expect("the test waits");
            released.recv().ok();
        });
        is_held.recv().expect("the holder holds the slot");
        // In the child the holder does not exist: the lock it held stays held there, and the
        // child neither waits on it nor loses the settings behind it.
        let code = in_forked_child(|py| {
            after_fork_child(py);
            current().is_some_and(|d| d.after_ns() == 100_000_000) && stop() && !stop()
        });
        release.send(()).expect("the holder waits");
        holder.join().expect("the holder ends");
        assert!(stop(), "the parent's detection is still on");
        assert_eq!(code, Some(0), "the child hung or failed");
    }
}
