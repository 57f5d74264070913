//! On the interpreter this build was made for, the first check with a Python frame turns
//! GIL-free sampling on, silently; a check from a thread with no Python frame leaves it
//! undecided. Runs a real embedded CPython.

use pyo3::prelude::*;
use pyo3::types::PyDict;

#[pyfunction]
fn settle(py: Python<'_>) {
    aiocop_hook::remote::settle_current(py);
}

#[pyfunction]
fn gil_free() -> Option<bool> {
    aiocop_hook::remote::gil_free_sampling()
}

const PROGRAM: &std::ffi::CStr = c"
import logging

warnings = []

class Collect(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())

logging.getLogger('aiocop').addHandler(Collect())
logging.getLogger('aiocop').setLevel(logging.WARNING)

def caller():
    settle()

caller()
assert gil_free() is True
assert warnings == [], warnings
";

#[test]
fn a_supported_interpreter_turns_gil_free_sampling_on() {
    Python::initialize();
    Python::attach(|py| {
        // No Python frame on this thread yet: nothing to compare, nothing decided.
        aiocop_hook::remote::settle_current(py);
        assert_eq!(aiocop_hook::remote::gil_free_sampling(), None);
        let globals = PyDict::new(py);
        for f in [wrap_pyfunction!(settle, py), wrap_pyfunction!(gil_free, py)] {
            let f = f.expect("wraps");
            globals
                .set_item(f.getattr("__name__").expect("named"), f)
                .expect("sets");
        }
        if let Err(err) = py.run(PROGRAM, Some(&globals), None) {
            panic!("the program failed: {err}");
        }
        assert!(aiocop_hook::remote::reader().is_some());
    });
}
