//! On CPython 3.11 captures walk the interpreter's frames directly (no frame objects created);
//! on every stack shape they must give exactly what the public C API's walk gives: plain calls,
//! recursion deeper than the capture, generators, coroutines stepped by asyncio, async
//! generators, comprehensions, `exec`, exception handlers, lambdas. Runs a real embedded
//! CPython.

use pyo3::prelude::*;
use pyo3::types::PyDict;

#[pyfunction]
fn check(py: Python<'_>, depth: usize) -> Option<bool> {
    aiocop_hook::stack::check_direct_walk(py, depth)
}

const PROGRAM: &std::ffi::CStr = c"
import asyncio

results = []

def probe():
    for depth in (1, 3, 20, 200):
        results.append(check(depth))

def nested(n):
    if n == 0:
        probe()
    else:
        nested(n - 1)

def gen():
    probe()
    yield 1
    probe()
    yield 2

class Thing:
    def method(self):
        return [probe() for _ in range(2)]

async def agen():
    probe()
    yield 1

async def coro(n):
    if n:
        return await coro(n - 1)
    probe()
    await asyncio.sleep(0)
    probe()
    async for _ in agen():
        probe()

def in_handler():
    try:
        raise ValueError
    except ValueError:
        probe()
    finally:
        probe()

nested(0)
nested(50)
list(gen())
Thing().method()
(lambda: probe())()
exec('probe()', {'probe': probe})
in_handler()
async def main():
    await asyncio.gather(coro(0), coro(30))

asyncio.run(main())
";

#[test]
fn direct_frame_walk_matches_the_c_api() {
    Python::initialize();
    Python::attach(|py| {
        let globals = PyDict::new(py);
        globals
            .set_item("check", wrap_pyfunction!(check, py).expect("wraps"))
            .expect("sets");
        py.run(PROGRAM, Some(&globals), None).expect("runs");
        let results: Vec<Option<bool>> = globals
            .get_item("results")
            .expect("present")
            .expect("some")
            .extract()
            .expect("a list");
        assert!(results.len() > 40, "{}", results.len());
        let direct = cfg!(all(Py_3_11, not(Py_3_12)));
        for (i, result) in results.iter().enumerate() {
            let expected = direct.then_some(true);
            assert_eq!(*result, expected, "probe {i}");
        }
    });
}
