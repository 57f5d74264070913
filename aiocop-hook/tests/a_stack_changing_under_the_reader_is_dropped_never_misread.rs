//! A thread whose stack keeps changing (calls in and out, its code objects freed and new ones
//! made at the same addresses, under other names; now and then a short sleep, a C call during
//! which its stack stands still) is read without the GIL from another thread, over and over:
//! every sample the reader gives is a stack that thread could have had — one generation's
//! chain `d0 -> d1 -> ... -> dj` called from `worker`, each caller at its call line — and
//! samples that changed under the reader are dropped, never shown. Runs a real embedded
//! CPython.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aiocop_hook::remote::{Reader, RemoteFrame};
use aiocop_hook::{CurrentPython, PythonVersion};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

static WORKER_TSTATE: AtomicUsize = AtomicUsize::new(0);

/// Called by the worker thread: publishes its thread state.
#[pyfunction]
fn publish() {
    // SAFETY: called from Python, so the GIL is held and this thread has a live state.
    WORKER_TSTATE.store(
        unsafe { ffi::PyThreadState_Get() } as usize,
        Ordering::Release,
    );
}

const PROGRAM: &std::ffi::CStr = c"
import threading
import time

stop = False
calls = 0
DEPTH = 8

def spin():
    global calls
    calls += 1
    if calls % 50 == 0:
        time.sleep(0.0005)  # a C call: a stack that stands still for a while
        return 0
    n = 0
    for _ in range(200):
        n += 1
    return n

def make(gen):
    source = ''.join(
        f'def g{gen}_d{i}(n):\\n'
        f'    if n == {i}:\\n'
        f'        return spin()\\n'
        f'    return g{gen}_d{i + 1}(n)\\n'
        for i in range(DEPTH)
    )
    namespace = {'spin': spin}
    exec(compile(source, f'gen{gen}.py', 'exec'), namespace)
    return namespace[f'g{gen}_d0']

def worker():
    publish()
    gen = 0
    while not stop:
        d0 = make(gen)
        for _ in range(20):
            for k in range(DEPTH):
                d0(k)
        del d0
        gen += 1

thread = threading.Thread(target=worker, daemon=True)
thread.start()
";

/// Checks one sample; `Err` says why it is not a stack the worker could have had.
fn check(sample: &[RemoteFrame]) -> Result<bool, String> {
    let names: Vec<String> = sample
        .iter()
        .map(|f| format!("{}:{} {}", f.filename, f.line, f.name))
        .collect();
    let why = |what: &str| Err(format!("{what}: {names:?}"));
    let Some(worker) = sample.iter().position(|f| &*f.name == "worker") else {
        return why("no worker frame");
    };
    // Frames inside `worker`: `dj ... d0` (of one generation), maybe with `spin` innermost; or
    // `make` and what it calls (compile, exec of the definitions).
    let inner = &sample[..worker];
    let mut chain: &[RemoteFrame] = inner;
    if let Some(first) = inner.first() {
        if &*first.name == "spin" {
            chain = &inner[1..];
        } else if inner.iter().any(|f| &*f.name == "make") {
            return Ok(false);
        }
    }
    if chain.is_empty() {
        return if inner.is_empty() {
            Ok(false)
        } else {
            why("spin outside a chain")
        };
    }
    let Some(gen) = chain[0]
        .filename
        .strip_prefix("gen")
        .and_then(|rest| rest.strip_suffix(".py"))
    else {
        return why("not a generated frame");
    };
    let innermost = chain.len() - 1;
    for (pos, frame) in chain.iter().enumerate() {
        let index = innermost - pos;
        if *frame.filename != *format!("gen{gen}.py") || *frame.name != *format!("g{gen}_d{index}")
        {
            return why("a frame of another generation or depth");
        }
        let base = 4 * index as i32;
        let line_ok = if pos == 0 && inner.len() == chain.len() {
            (base + 1..=base + 4).contains(&frame.line)
        } else if pos == 0 {
            frame.line == base + 3 // calling spin
        } else {
            frame.line == base + 4 // calling the next one in
        };
        if !line_ok {
            return why("a line its frame is never at");
        }
    }
    Ok(true)
}

#[test]
fn a_stack_changing_under_the_reader_is_dropped_never_misread() {
    let layout = CurrentPython::REMOTE_LAYOUT.expect("this version has a layout");
    Python::initialize();
    let globals = Python::attach(|py| {
        let globals = PyDict::new(py);
        globals
            .set_item("publish", wrap_pyfunction!(publish, py).expect("wraps"))
            .expect("sets");
        py.run(PROGRAM, Some(&globals), None).expect("runs");
        globals.unbind()
    });
    let (mut good, mut in_chain, mut dropped) = (0u32, 0u32, 0u32);
    Python::attach(|py| {
        py.detach(|| {
            let mut reader = Reader::new(layout);
            let start = Instant::now();
            while WORKER_TSTATE.load(Ordering::Acquire) == 0 {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "worker never started"
                );
                std::thread::yield_now();
            }
            let tstate = WORKER_TSTATE.load(Ordering::Acquire);
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(1500) {
                match reader.sample(tstate, 64) {
                    Ok(sample) => {
                        good += 1;
                        match check(&sample) {
                            Ok(chain) => in_chain += u32::from(chain),
                            Err(why) => panic!("a wrong sample was shown: {why}"),
                        }
                    }
                    Err(_) => dropped += 1,
                }
            }
        });
        let globals = globals.bind(py);
        globals.set_item("stop", true).expect("sets");
        py.run(c"thread.join()", Some(globals), None)
            .expect("joins");
    });
    assert!(good >= 20, "{good} samples read, {dropped} dropped");
    assert!(
        in_chain >= 10,
        "{in_chain} samples inside a chain of {good}"
    );
    assert!(
        dropped >= 10,
        "the stack never changed under the reader: {dropped} dropped"
    );
}
