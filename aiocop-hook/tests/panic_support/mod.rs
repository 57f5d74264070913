//! Scaffolding for the tests that make an `extern "C"` entry panic on purpose: a real embedded
//! CPython runs a program with `arm(point)` / `fired(point)` (the fault-injection points of
//! `aiocop_hook::fault`) and the test's own functions in its globals. The points are
//! process-global and the tests of one binary run in parallel threads, so each program runs
//! alone, under a lock.

use std::ffi::CStr;
use std::sync::Mutex;

use aiocop_hook::fault;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Arms the point `name` to fire once.
#[pyfunction]
fn arm(name: &str) {
    fault::arm(name, 1);
}

/// How many times the point `name` fired.
#[pyfunction]
fn fired(name: &str) -> u32 {
    fault::fired(name)
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `program` with `arm`, `fired` and what `setup` adds in its globals, then checks that
/// the point `point` fired exactly once: an entry that did not run its body through the guard
/// never reaches its point (and a panic that escaped it would have aborted the process).
pub(crate) fn run_with_point(
    point: &str,
    program: &CStr,
    setup: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
) {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Python::initialize();
    Python::attach(|py| {
        fault::disarm_all();
        let globals = PyDict::new(py);
        let prepared = (|| {
            globals.set_item("arm", wrap_pyfunction!(arm, py)?)?;
            globals.set_item("fired", wrap_pyfunction!(fired, py)?)?;
            globals.set_item("POINT", point)?;
            setup(&globals)
        })();
        prepared.expect("the program's globals are set up");
        let outcome = py.run(program, Some(&globals), None);
        let fired = fault::fired(point);
        fault::disarm_all();
        if let Err(err) = outcome {
            let traceback = err
                .traceback(py)
                .and_then(|tb| tb.format().ok())
                .unwrap_or_default();
            panic!("the program failed: {err}\n{traceback}");
        }
        assert_eq!(fired, 1, "the point {point:?} fired {fired} times");
    });
}
