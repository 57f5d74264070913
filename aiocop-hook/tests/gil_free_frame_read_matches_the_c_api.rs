//! The GIL-free frame reader (`aiocop_hook::remote`) reads, through `process_vm_readv`, what
//! the C API's walk (`PyThreadState_GetFrame`, `PyFrame_GetBack`, `PyFrame_GetLineNumber`)
//! gives on every stack shape: the same code objects, file names, `co_name`, `co_qualname`
//! (3.11+) and lines, for plain calls, recursion deeper than the read, generators, coroutines
//! stepped by asyncio, async generators, comprehensions, `exec`, exception handlers, lambdas,
//! methods, names and files that are latin-1, UCS-2 and UCS-4 strings, and another thread
//! (read from a thread that is not the one running). Runs a real embedded CPython.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Compares the reader's read of the calling thread's stack with the C API's: `None` when
/// they agree, else what differs.
#[pyfunction]
fn check(py: Python<'_>, depth: usize) -> Option<String> {
    // SAFETY: the GIL is held (`py`): this thread has a live thread state.
    let tstate = unsafe { ffi::PyThreadState_Get() };
    // SAFETY: the GIL is held and `tstate` is this thread's live state.
    match unsafe { aiocop_hook::remote::compare_with_c_api(py, tstate, depth) } {
        Ok(0) => Some("no frame read".to_owned()),
        Ok(_) => None,
        Err(why) => Some(why),
    }
}

const PROGRAM: &std::ffi::CStr = c"
import asyncio
import threading

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

    class Inner:
        @staticmethod
        def deep():
            def local():
                probe()
            local()

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

def \u{3bb}_caf\u{e9}():
    probe()

nested(0)
nested(50)
list(gen())
Thing().method()
Thing.Inner.deep()
(lambda: probe())()
exec('probe()', {'probe': probe})
in_handler()
\u{3bb}_caf\u{e9}()
for filename in ('caf\u{e9}.py', '\u{3bb}\u{3bb}.py', '\u{1f40d}.py'):
    exec(compile('def f():\\n    probe()\\nf()\\n', filename, 'exec'), {'probe': probe})

async def main():
    await asyncio.gather(coro(0), coro(30))

asyncio.run(main())

worker = threading.Thread(target=nested, args=(5,))
worker.start()
worker.join()
";

#[test]
fn gil_free_frame_read_matches_the_c_api() {
    Python::initialize();
    Python::attach(|py| {
        let globals = PyDict::new(py);
        globals
            .set_item("check", wrap_pyfunction!(check, py).expect("wraps"))
            .expect("sets");
        py.run(PROGRAM, Some(&globals), None).expect("runs");
        let results: Vec<Option<String>> = globals
            .get_item("results")
            .expect("present")
            .expect("some")
            .extract()
            .expect("a list");
        assert!(results.len() > 60, "{}", results.len());
        for (i, result) in results.iter().enumerate() {
            assert_eq!(result.as_deref(), None, "probe {i}");
        }
    });
}
