//! What the dispatcher tests share: an embedded CPython with aiocop's audit hook installed and
//! slow-task detection configured, and a Python prelude that each test's scenario runs after:
//! `patch()` monitors the running loop, `site(i)` makes a function that blocks (`open`, a native audit event) at
//! a call site of its own (a new call site goes to the background thread), `events` collects
//! the delivered `SlowTaskEvent`s, `warnings` the messages logged on the `aiocop` logger,
//! `until(cond, what)` waits for a condition (a generous deadline, never a fixed sleep), and
//! `flush()`, `stats()`, `arm(name, times)`, `disarm()`, `exit_now()`, `start_sampling()`,
//! `gil_free()` reach the Rust side.

#![allow(dead_code, unreachable_pub)]

use std::ffi::CStr;
use std::time::Duration;

use aiocop_loop::{config, dispatch, registry, Dispatch};
use pyo3::prelude::*;
use pyo3::types::PyDict;

#[pyfunction]
fn patch(py: Python<'_>) -> PyResult<bool> {
    let event_loop = aiocop_loop::running_loop(py).expect("called inside a running loop");
    aiocop_loop::patch_loop(&event_loop)
}

/// `aiocop.flush()`: the running loop's events, or, outside a loop, this thread's loops'.
#[pyfunction]
fn flush(py: Python<'_>) {
    aiocop_loop::flush_here(py);
}

/// `aiocop.stats()`'s delivery counters.
#[pyfunction]
fn stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    dispatch::add_counters(&dict)?;
    Ok(dict)
}

#[pyfunction]
fn arm(name: &str, times: u32) {
    aiocop_hook::fault::arm(name, times);
}

#[pyfunction]
fn disarm() {
    aiocop_hook::fault::disarm_all();
}

/// What the module's `_shutdown` does at interpreter exit.
#[pyfunction]
fn exit_now(py: Python<'_>) {
    dispatch::deliver_at_exit(py);
    dispatch::shutdown();
}

#[pyfunction]
fn after_fork_child() {
    dispatch::after_fork_child();
}

/// `start_cpu_sampling(interval_ms=10, arm_after_ms=5)`: the watchdog started, then whether it
/// may read stacks without the GIL decided on this thread's stack.
#[pyfunction]
fn start_sampling(py: Python<'_>) {
    aiocop_loop::sampler::start(aiocop_loop::sampler::SamplerConfig {
        interval_ns: 10_000_000,
        arm_after_ns: Some(5_000_000),
        ..aiocop_loop::sampler::SamplerConfig::default()
    });
    aiocop_hook::remote::settle_current(py);
}

/// Whether the sampler reads stacks without the GIL (`None`: not decided yet).
#[pyfunction]
fn gil_free() -> Option<bool> {
    aiocop_hook::remote::gil_free_sampling()
}

const PRELUDE: &CStr = c"
import asyncio, logging, os, time

events = []
warnings = []

class _Collect(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())

logging.getLogger('aiocop').addHandler(_Collect())
logging.getLogger('aiocop').setLevel(logging.WARNING)

def site(i):
    ns = {'os': os}
    exec(compile(f'def blocking_{i}():\\n    open(os.devnull, \"rb\").close()\\n', f'<site {i}>', 'exec'), ns)
    return ns[f'blocking_{i}']

def site_of(event):
    trace = event.blocking_events[0]['trace']
    return int(trace.split('<site ')[1].split('>')[0])

async def until(cond, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        await asyncio.sleep(0.005)

def until_sync(cond, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.005)
";

/// Starts the interpreter, installs the hook and configures detection (threshold 1 s: only
/// blocking calls make events) in `mode`, then runs `scenario` after the prelude.
pub fn run(mode: Dispatch, scenario: &CStr) {
    run_with_threshold(mode, 1_000_000_000, scenario);
}

/// [`run`] with a slow-handle threshold of `threshold_ns`.
pub fn run_with_threshold(mode: Dispatch, threshold_ns: u64, scenario: &CStr) {
    Python::initialize();
    Python::attach(|py| {
        aiocop_hook::install(py, 20).expect("the hook installs");
        aiocop_loop::init(py).expect("the native types are made");
        assert!(config::configure_detection(threshold_ns, mode));
        config::set_active(true);
        let globals = PyDict::new(py);
        for f in [
            wrap_pyfunction!(patch, py),
            wrap_pyfunction!(flush, py),
            wrap_pyfunction!(stats, py),
            wrap_pyfunction!(arm, py),
            wrap_pyfunction!(disarm, py),
            wrap_pyfunction!(exit_now, py),
            wrap_pyfunction!(after_fork_child, py),
            wrap_pyfunction!(start_sampling, py),
            wrap_pyfunction!(gil_free, py),
        ] {
            let f = f.expect("wraps");
            globals
                .set_item(f.getattr("__name__").expect("named"), f)
                .expect("sets");
        }
        py.run(PRELUDE, Some(&globals), None)
            .expect("the prelude runs");
        let events = globals.get_item("events").expect("present").expect("some");
        registry::register_callback(py, &events.getattr("append").expect("a list"));
        if let Err(err) = py.run(scenario, Some(&globals), None) {
            err.display(py);
            panic!("the scenario failed: {err}");
        }
    });
}

/// A short stall limit for the fault tests (the shipped one is [`dispatch::STALL_AFTER`]).
pub fn stall_after(limit: Duration) {
    dispatch::set_stall_after(limit);
}

/// Runs `scenario` in background dispatch with a stall limit of 300 ms and the background
/// thread stalling (the point `dispatch_thread_stall` armed until the scenario disarms it).
pub fn run_stalled(scenario: &CStr) {
    stall_after(Duration::from_millis(300));
    aiocop_hook::fault::arm("dispatch_thread_stall", 4_000_000_000);
    run(Dispatch::Background, scenario);
}
