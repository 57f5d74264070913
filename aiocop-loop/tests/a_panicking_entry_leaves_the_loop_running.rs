//! Each `extern "C"` entry of aiocop-loop — the four scheduling replacements and the
//! `MonitoredCallback` slots — and the `__call__` of its pyo3 loop methods (`close`, a reader's
//! registration) made to panic (its fault-injection point armed) on a real,
//! patched asyncio loop: the panic stays inside the entry, Python goes on with the entry's
//! fallback (a `RuntimeError` to the caller or the loop's exception handler, a plain repr,
//! nothing visited or cleared, a leaked object), and the loop runs the callbacks scheduled
//! after it.

use aiocop_hook::fault::run_with_point;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Patches `event_loop` (running on this thread) as aiocop does.
#[pyfunction]
fn patch(event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
    aiocop_loop::patch_loop(event_loop)
}

/// Turns monitoring on, gives the program `patch` and `run(body)`: `body(loop, ran)` runs as a
/// coroutine on a new patched asyncio loop whose exception handler collects into `errors`;
/// then a callback scheduled afterwards must run.
fn setup(globals: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = globals.py();
    aiocop_loop::init(py)?;
    aiocop_loop::config::set_active(true);
    globals.set_item("patch", wrap_pyfunction!(patch, py)?)?;
    py.run(
        c"
import asyncio, gc

errors = []


def run(body):
    async def main():
        loop = asyncio.get_running_loop()
        assert patch(loop)
        loop.set_exception_handler(lambda loop, context: errors.append(context))
        ran = []
        await body(loop, ran)
        loop.call_soon(ran.append, 'after')
        await asyncio.sleep(0)
        assert ran[-1] == 'after', ran
        assert fired(POINT) == 1
    asyncio.run(main())
",
        Some(globals),
        None,
    )
}

#[test]
fn call_soon_raises_runtime_error_to_its_caller() {
    run_with_point(
        "call_soon",
        c"
async def body(loop, ran):
    arm(POINT)
    expect_runtime_error(lambda: loop.call_soon(ran.append, 1))
    loop.call_soon(ran.append, 2)
    await asyncio.sleep(0)
    assert ran == [2], ran

run(body)
",
        setup,
    );
}

#[test]
fn call_later_raises_runtime_error_to_its_caller() {
    run_with_point(
        "call_later",
        c"
async def body(loop, ran):
    arm(POINT)
    expect_runtime_error(lambda: loop.call_later(0, ran.append, 1))
    loop.call_later(0, ran.append, 2)
    await asyncio.sleep(0.01)
    assert ran == [2], ran

run(body)
",
        setup,
    );
}

#[test]
fn call_at_raises_runtime_error_to_its_caller() {
    run_with_point(
        "call_at",
        c"
async def body(loop, ran):
    arm(POINT)
    expect_runtime_error(lambda: loop.call_at(loop.time(), ran.append, 1))
    loop.call_at(loop.time(), ran.append, 2)
    await asyncio.sleep(0.01)
    assert ran == [2], ran

run(body)
",
        setup,
    );
}

#[test]
fn call_soon_threadsafe_raises_runtime_error_to_its_caller() {
    run_with_point(
        "call_soon_threadsafe",
        c"
async def body(loop, ran):
    arm(POINT)
    expect_runtime_error(lambda: loop.call_soon_threadsafe(ran.append, 1))
    loop.call_soon_threadsafe(ran.append, 2)
    await asyncio.sleep(0)
    assert ran == [2], ran

run(body)
",
        setup,
    );
}

#[test]
fn a_panicking_callback_call_reaches_the_exception_handler() {
    run_with_point(
        "MonitoredCallback call",
        c"
async def body(loop, ran):
    arm(POINT)
    loop.call_soon(ran.append, 1)  # runs first: its call panics
    loop.call_soon(ran.append, 2)
    await asyncio.sleep(0)
    assert ran == [2], ran
    [context] = errors
    assert isinstance(context['exception'], RuntimeError), context
    assert 'panic inside aiocop' in str(context['exception']), context

run(body)
",
        setup,
    );
}

#[test]
fn the_collector_survives_a_panicking_traverse() {
    run_with_point(
        "MonitoredCallback traverse",
        c"
async def body(loop, ran):
    handle = loop.call_later(1000, ran.append, 1)
    assert gc.is_tracked(handle._callback)
    arm(POINT)
    gc.collect()
    assert fired(POINT) == 1
    gc.collect()
    handle.cancel()

run(body)
",
        setup,
    );
}

#[test]
fn the_collector_survives_a_panicking_clear() {
    run_with_point(
        "MonitoredCallback clear",
        c"
async def body(loop, ran):
    gc.collect()
    gc.disable()  # the cycle's objects stay in the order they were made
    d = {}
    assert not gc.is_tracked(d)  # an empty dict is tracked once it holds a container
    handle = loop.call_later(1000, ran.append, d)
    callback = handle._callback
    handle.cancel()  # the handle lets go of its callback
    d['callback'] = callback  # a cycle: callback -> d -> callback, the callback made first
    del handle, callback, d
    gc.enable()
    arm(POINT)
    gc.collect()  # clears the callback first: it panics, then clearing d frees both
    assert fired(POINT) == 1

run(body)
",
        setup,
    );
}

#[test]
fn a_panicking_dealloc_leaks_the_callback_untracked() {
    run_with_point(
        "MonitoredCallback dealloc",
        c"
async def body(loop, ran):
    handle = loop.call_later(1000, ran.append, 1)
    callback = handle._callback
    handle.cancel()
    del handle
    arm(POINT)
    del callback
    assert fired(POINT) == 1
    gc.collect()  # the leaked object is off the collector's lists

run(body)
",
        setup,
    );
}

#[test]
fn the_repr_of_a_callback_falls_back_to_a_plain_one() {
    run_with_point(
        "MonitoredCallback repr",
        c"
async def body(loop, ran):
    handle = loop.call_later(1000, ran.append, 1)
    arm(POINT)
    assert repr(handle._callback) == '<aiocop monitored callback>', repr(handle._callback)
    assert repr(handle._callback).startswith('<aiocop monitored <built-in method append')
    handle.cancel()

run(body)
",
        setup,
    );
}

#[test]
fn wrapped_raises_runtime_error() {
    run_with_point(
        "MonitoredCallback.__wrapped__",
        c"
async def body(loop, ran):
    handle = loop.call_later(1000, ran.append, 1)
    arm(POINT)
    expect_runtime_error(lambda: handle._callback.__wrapped__)
    assert handle._callback.__wrapped__ == ran.append
    handle.cancel()

run(body)
",
        setup,
    );
}

#[test]
fn a_panicking_close_raises_runtime_error_and_closing_again_works() {
    run_with_point(
        "loop close",
        c"
loop = asyncio.new_event_loop()

async def patched():
    assert patch(asyncio.get_running_loop())

loop.run_until_complete(patched())
arm(POINT)
expect_runtime_error(loop.close)
assert not loop.is_closed()
loop.close()
assert loop.is_closed()
",
        setup,
    );
}

#[test]
fn a_panicking_reader_registration_raises_runtime_error_to_its_caller() {
    run_with_point(
        "reader registration",
        c"
import socket

async def body(loop, ran):
    a, b = socket.socketpair()
    try:
        arm(POINT)
        expect_runtime_error(lambda: loop.add_reader(a.fileno(), ran.append, 1))
        loop.add_reader(a.fileno(), lambda: (ran.append(2), loop.remove_reader(a.fileno())))
        b.send(b'x')
        while 2 not in ran:
            await asyncio.sleep(0.001)
    finally:
        a.close()
        b.close()

run(body)
",
        setup,
    );
}
