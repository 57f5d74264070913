//! Each `extern "C"` entry of aiocop-hook — the audit hook and the `AuditedFunction` slots —
//! made to panic (its fault-injection point armed) while real Python code drives it: the panic
//! stays inside the entry, Python goes on with the entry's fallback (the audited call still
//! made, a `RuntimeError`, a plain repr, nothing visited or cleared, a leaked object), and the
//! next call works as usual.

use aiocop_hook::fault::run_with_point;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Calls `f()` inside a monitored handle: `(its result, how many blocking calls were
/// recorded)`.
#[pyfunction]
fn in_handle<'py>(f: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, usize)> {
    let token = aiocop_hook::enter_handle().expect("not inside a handle yet");
    let result = f.call0();
    let records = aiocop_hook::exit_handle(token).map_or(0, |r| r.records.len());
    Ok((result?, records))
}

/// An `AuditedFunction` raising the audit event `event` around `original`.
#[pyfunction]
fn audited<'py>(original: &Bound<'py, PyAny>, event: &str) -> PyResult<Bound<'py, PyAny>> {
    aiocop_hook::audited(original, event, false)
}

/// Installs the hook and gives the program `in_handle` and `audited`.
fn setup(globals: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = globals.py();
    aiocop_hook::install(py, 20)?;
    globals.set_item("in_handle", wrap_pyfunction!(in_handle, py)?)?;
    globals.set_item("audited", wrap_pyfunction!(audited, py)?)?;
    py.run(
        c"
import gc

def original(*args, **kwargs):
    return args, kwargs

",
        Some(globals),
        None,
    )
}

#[test]
fn the_audit_hook_lets_the_audited_call_go_on() {
    run_with_point(
        "audit hook",
        c"
def blocking():
    with open('/dev/null', 'rb') as f:
        return f.read()

arm(POINT)
assert in_handle(blocking) == (b'', 0)  # the open happened; its record was dropped
assert fired(POINT) == 1
assert in_handle(blocking) == (b'', 1)
",
        setup,
    );
}

#[test]
fn an_audited_call_is_made_without_its_event() {
    run_with_point(
        "AuditedFunction call",
        c"
w = audited(original, 'time.sleep')
arm(POINT)
assert in_handle(lambda: w(1, y=2)) == (((1,), {'y': 2}), 0)
assert fired(POINT) == 1
assert in_handle(lambda: w(1, y=2)) == (((1,), {'y': 2}), 1)
assert w(3) == ((3,), {})
",
        setup,
    );
}

#[test]
fn binding_an_audited_method_raises_runtime_error() {
    run_with_point(
        "AuditedFunction.__get__",
        c"
class C:
    m = audited(original, 'time.sleep')

c = C()
arm(POINT)
expect_runtime_error(lambda: c.m)
assert c.m(1) == ((c, 1), {})
",
        setup,
    );
}

#[test]
fn an_attribute_of_an_audited_function_raises_runtime_error() {
    run_with_point(
        "AuditedFunction attribute lookup",
        c"
w = audited(original, 'time.sleep')
arm(POINT)
expect_runtime_error(lambda: w.__name__)
assert w.__name__ == 'original'
assert w.__wrapped__ is original
",
        setup,
    );
}

#[test]
fn the_repr_of_an_audited_function_falls_back_to_a_plain_one() {
    run_with_point(
        "AuditedFunction repr",
        c"
w = audited(original, 'time.sleep')
arm(POINT)
assert repr(w) == '<aiocop audited>', repr(w)
assert repr(w).startswith('<aiocop audited <function original'), repr(w)
",
        setup,
    );
}

#[test]
fn the_collector_survives_a_panicking_traverse() {
    run_with_point(
        "AuditedFunction traverse",
        c"
w = audited(original, 'time.sleep')
assert gc.is_tracked(w)
arm(POINT)
gc.collect()
assert fired(POINT) == 1
gc.collect()
assert w(1) == ((1,), {})
",
        setup,
    );
}

#[test]
fn the_collector_survives_a_panicking_clear() {
    run_with_point(
        "AuditedFunction clear",
        c"
import functools, weakref

gc.collect()
d = {}
w = audited(functools.partial(original, d), 'time.sleep')
d['w'] = w  # a cycle: w -> partial -> d -> w
del w, d
arm(POINT)
gc.collect()
assert fired(POINT) == 1
w = audited(original, 'time.sleep')
assert w(1) == ((1,), {})
gc.collect()
",
        setup,
    );
}

#[test]
fn a_panicking_dealloc_leaks_the_object_untracked() {
    run_with_point(
        "AuditedFunction dealloc",
        c"
w = audited(original, 'time.sleep')
arm(POINT)
del w
assert fired(POINT) == 1
gc.collect()  # the leaked object is off the collector's lists
w = audited(original, 'time.sleep')
assert w(1) == ((1,), {})
del w
",
        setup,
    );
}
