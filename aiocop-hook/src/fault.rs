//! Fault injection for tests: named points where a test build can make aiocop fail on purpose
//! (a panic inside an `extern "C"` entry, a stalled or dead background thread, a frame layout
//! check that disagrees) to check that Python and the loop survive it.
//!
//! Only with the cargo feature `fault-injection`, which the crates' own test builds turn on
//! (each dev-depends on itself with it). Without it [`fires`] is a constant `false` that the
//! compiler removes: no shipped build pays for a point.

/// Whether the point `name` fires now; each firing uses up one of the times it was armed for.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn fires(name: &str) -> bool {
    let _ = name;
    false
}

#[cfg(feature = "fault-injection")]
pub use armed::{arm, disarm_all, fired, fires};
#[cfg(feature = "fault-injection")]
pub use embedded::run_with_point;

#[cfg(feature = "fault-injection")]
mod armed {
    use std::sync::Mutex;

    /// One armed point: its name, how many more times it fires, how many times it fired.
    struct Point {
        name: String,
        remaining: u32,
        fired: u32,
    }

    static POINTS: Mutex<Vec<Point>> = Mutex::new(Vec::new());

    fn with_points<R>(f: impl FnOnce(&mut Vec<Point>) -> R) -> R {
        let mut points = POINTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut points)
    }

    /// Arms the point `name` to fire the next `times` times it is reached.
    pub fn arm(name: &str, times: u32) {
        with_points(|points| match points.iter_mut().find(|p| p.name == name) {
            Some(point) => point.remaining = times,
            None => points.push(Point {
                name: name.to_owned(),
                remaining: times,
                fired: 0,
            }),
        });
    }

    /// Disarms every point and forgets how often each fired.
    pub fn disarm_all() {
        with_points(Vec::clear);
    }

    /// How many times the point `name` fired since it was first armed.
    pub fn fired(name: &str) -> u32 {
        with_points(|points| {
            points
                .iter()
                .find(|p| p.name == name)
                .map_or(0, |p| p.fired)
        })
    }

    /// Whether the point `name` fires now; each firing uses up one of the times it was armed
    /// for.
    pub fn fires(name: &str) -> bool {
        with_points(|points| match points.iter_mut().find(|p| p.name == name) {
            Some(point) if point.remaining > 0 => {
                point.remaining -= 1;
                point.fired += 1;
                true
            }
            _ => false,
        })
    }
}

/// What the tests that make an `extern "C"` entry panic on purpose share (in `aiocop-hook` and
/// `aiocop-loop`): a real embedded CPython runs a program with `arm(point)` / `fired(point)`
/// and the test's own functions in its globals. The points are process-global and the tests of
/// one binary run in parallel threads, so each program runs alone, under a lock.
#[cfg(feature = "fault-injection")]
mod embedded {
    use std::ffi::CStr;
    use std::sync::Mutex;

    use super::armed as fault;
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

    /// Run before each program: `expect_runtime_error(f)` calls `f` and checks that it raised
    /// the `RuntimeError` a panicking entry leaves.
    const PRELUDE: &CStr = c"
def expect_runtime_error(f):
    try:
        f()
    except RuntimeError as e:
        assert 'panic inside aiocop' in str(e), e
    else:
        raise AssertionError('no RuntimeError')
";

    /// Runs `program` in the embedded interpreter with `arm`, `fired`, `expect_runtime_error`
    /// and what `setup` adds in its globals, then checks that the point `point` fired exactly
    /// once: an entry that did not run its body through the guard never reaches its point (and
    /// a panic that escaped it would have aborted the process).
    pub fn run_with_point(
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
                py.run(PRELUDE, Some(&globals), None)?;
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
}
