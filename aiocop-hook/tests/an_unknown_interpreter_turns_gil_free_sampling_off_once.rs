//! On an interpreter this build does not read (the fault point `gil_free_sampling_unsupported`
//! pretends the running CPython is one), GIL-free sampling turns off at the first check, with
//! one warning on the `aiocop` logger, and stays off: no reader is handed out, later checks
//! change nothing and log nothing. Runs a real embedded CPython.

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

#[pyfunction]
fn reader_handed_out() -> bool {
    aiocop_hook::remote::reader().is_some()
}

#[pyfunction]
fn arm(name: &str) {
    aiocop_hook::fault::arm(name, 1);
}

#[pyfunction]
fn fired(name: &str) -> u32 {
    aiocop_hook::fault::fired(name)
}

const PROGRAM: &std::ffi::CStr = c"
import logging

warnings = []

class Collect(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())

logging.getLogger('aiocop').addHandler(Collect())
logging.getLogger('aiocop').setLevel(logging.WARNING)

assert gil_free() is None, 'undecided before the first check'
arm('gil_free_sampling_unsupported')

def caller():
    settle()

caller()
assert fired('gil_free_sampling_unsupported') == 1
assert gil_free() is False
assert not reader_handed_out()
caller()
caller()
assert gil_free() is False
assert len(warnings) == 1, warnings
assert 'GIL-free CPU sampling is off' in warnings[0], warnings
assert 'takes the GIL to sample instead' in warnings[0], warnings
";

#[test]
fn an_unknown_interpreter_turns_gil_free_sampling_off_once() {
    Python::initialize();
    Python::attach(|py| {
        let globals = PyDict::new(py);
        for f in [
            wrap_pyfunction!(settle, py),
            wrap_pyfunction!(gil_free, py),
            wrap_pyfunction!(reader_handed_out, py),
            wrap_pyfunction!(arm, py),
            wrap_pyfunction!(fired, py),
        ] {
            let f = f.expect("wraps");
            globals
                .set_item(f.getattr("__name__").expect("named"), f)
                .expect("sets");
        }
        if let Err(err) = py.run(PROGRAM, Some(&globals), None) {
            panic!("the program failed: {err}");
        }
    });
}
