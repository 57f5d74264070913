//! Each hook of aiocop's trio instrument (`_TrioSteps`) made to panic (its fault-injection
//! point armed): the panic stays inside the hook, which returns `None` as usual (trio removes an
//! instrument that raises), and the next steps are monitored again — a step whose end the
//! panicking `after_task_step` missed is ended by the next `before_task_step`, so the thread
//! does not stay marked as inside a handle. The run is simulated: a token whose `run_sync_soon`
//! collects the callables, task objects with a `context`.

use aiocop_hook::fault::run_with_point;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Whether this thread is inside a monitored handle.
#[pyfunction]
fn in_handle() -> bool {
    aiocop_hook::in_handle()
}

fn setup(globals: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = globals.py();
    aiocop_loop::init(py)?;
    aiocop_loop::config::set_active(true);
    globals.set_item("in_handle", wrap_pyfunction!(in_handle, py)?)?;
    globals.set_item("TrioSteps", py.get_type::<aiocop_loop::TrioSteps>())?;
    py.run(
        c"
import contextvars


class Token:
    def __init__(self):
        self.soon = []

    def run_sync_soon(self, fn, *args):
        self.soon.append((fn, args))


class Task:
    name = 'task'

    def __init__(self):
        self.context = contextvars.Context()


def step(steps, task):
    assert steps.before_task_step(task) is None
    inside = in_handle()
    assert steps.after_task_step(task) is None
    return inside


def new_steps():
    steps = TrioSteps()
    steps._bind(Token())
    assert steps._bound
    return steps
",
        Some(globals),
        None,
    )
}

#[test]
fn a_panicking_before_task_step_leaves_that_step_unmonitored() {
    run_with_point(
        "trio before_task_step",
        c"
steps = new_steps()
task = Task()
arm(POINT)
assert step(steps, task) is False
assert step(steps, task) is True
assert not in_handle()
",
        setup,
    );
}

#[test]
fn a_panicking_after_task_step_is_ended_by_the_next_step() {
    run_with_point(
        "trio after_task_step",
        c"
steps = new_steps()
task = Task()
assert steps.before_task_step(task) is None
assert in_handle()
arm(POINT)
assert steps.after_task_step(task) is None  # panicked: the step is still open
assert in_handle()
assert step(steps, task) is True  # ended first, then a step of its own
assert not in_handle()
",
        setup,
    );
}

#[test]
fn a_panicking_after_run_returns() {
    run_with_point(
        "trio after_run",
        c"
steps = new_steps()
task = Task()
assert step(steps, task) is True
arm(POINT)
assert steps.after_run() is None
assert step(steps, task) is True
",
        setup,
    );
}

#[test]
fn a_panicking_bind_raises_runtime_error() {
    run_with_point(
        "trio instrument bind",
        c"
steps = TrioSteps()
arm(POINT)
expect_runtime_error(lambda: steps._bind(Token()))
steps._bind(Token())
assert steps._bound
",
        setup,
    );
}
