//! Before the first direct walk of the interpreter's frames (CPython 3.11 only), a layout check
//! compares the fields the walk starts from with the public C API. Forced to disagree (the
//! fault-injection point `frame_layout_check`), it turns the direct walk off with one warning
//! on the `aiocop` logger, and every capture goes through the C API, with the same stacks. On
//! the other versions nothing is walked directly, nothing checked and nothing logged. Runs a
//! real embedded CPython; alone in its binary, as the walk's state is process-wide.

use aiocop_hook::fault;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Calls `f()` inside a monitored handle: the `(function, line)` frames of its first record.
#[pyfunction]
fn first_stack(py: Python<'_>, f: &Bound<'_, PyAny>) -> PyResult<Vec<(String, i32)>> {
    let token = aiocop_hook::enter_handle().expect("not inside a handle yet");
    let result = f.call0();
    let recorded = aiocop_hook::exit_handle(token).expect("a blocking call was recorded");
    result?;
    let record = recorded.records[0].resolve(py);
    Ok(record
        .stack
        .frames()
        .iter()
        .map(|frame| (frame.function.to_string(), frame.line))
        .collect())
}

const PROGRAM: &std::ffi::CStr = c"
import logging

class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        if record.levelno == logging.WARNING:
            self.messages.append(record.getMessage())

collect = Collect()
logging.getLogger('aiocop').addHandler(collect)

def open_devnull():
    with open('/dev/null', 'rb'):
        pass

def deeper(n):
    if n:
        return deeper(n - 1)
    return first_stack(open_devnull)

for n in (0, 5, 2, 0):
    frames = deeper(n)
    assert frames[0] == ('open_devnull', 17), frames
    assert [f for f, _ in frames[1:n + 2]] == ['deeper'] * (n + 1), frames
    assert frames[1][1] == 23 and all(line == 22 for _, line in frames[2:n + 2]), frames
warnings = collect.messages
";

#[test]
fn a_frame_layout_mismatch_keeps_the_c_api_with_one_warning() {
    Python::initialize();
    Python::attach(|py| {
        aiocop_hook::install(py, 20).expect("the hook installs");
        fault::arm("frame_layout_check", 1);
        let globals = PyDict::new(py);
        globals
            .set_item(
                "first_stack",
                wrap_pyfunction!(first_stack, py).expect("wraps"),
            )
            .expect("sets");
        if let Err(err) = py.run(PROGRAM, Some(&globals), None) {
            let traceback = err
                .traceback(py)
                .and_then(|tb| tb.format().ok())
                .unwrap_or_default();
            panic!("the program failed: {err}\n{traceback}");
        }
        let warnings: Vec<String> = globals
            .get_item("warnings")
            .expect("present")
            .expect("some")
            .extract()
            .expect("a list of str");
        assert!(!aiocop_hook::stack::walks_frames_directly());
        if cfg!(all(Py_3_11, not(Py_3_12))) {
            assert_eq!(fault::fired("frame_layout_check"), 1);
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].contains("frame layout differs")
                    && warnings[0].contains("through the C API"),
                "{warnings:?}"
            );
        } else {
            // No direct walk here: no layout to check, nothing to warn about.
            assert_eq!(fault::fired("frame_layout_check"), 0);
            assert!(warnings.is_empty(), "{warnings:?}");
        }
    });
}
