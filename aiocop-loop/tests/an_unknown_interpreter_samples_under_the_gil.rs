//! On an interpreter the GIL-free reader does not support (the fault point
//! `gil_free_sampling_unsupported`), the CPU sampler says so once and samples as before, under
//! the GIL: a busy Python slice is sampled, a regex that holds the GIL for its whole run gives
//! at most one sample. Embedded CPython, a real asyncio loop, the real sampler thread.

mod common;

use aiocop_loop::Dispatch;

#[test]
fn an_unknown_interpreter_samples_under_the_gil() {
    common::run_with_threshold(
        Dispatch::Inline,
        30_000_000,
        c"
import re

arm('gil_free_sampling_unsupported', 1)
start_sampling()
assert gil_free() is False
off = [w for w in warnings if 'GIL-free CPU sampling is off' in w]
assert len(off) == 1, warnings

def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass

PATTERN = re.compile(r'(a+)+$')

def backtrack(n):
    return PATTERN.match('a' * n + 'b')

def tune():
    n = 18
    while True:
        started = time.perf_counter()
        backtrack(n)
        if time.perf_counter() - started > 0.1:
            return n
        n += 1

n = tune()

async def main():
    patch()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(spin, 0.15)
    loop.call_soon(backtrack, n)
    loop.call_soon(done.set_result, None)
    await done

asyncio.run(main())
flush()

def sampled(name):
    return [e for e in events if any(name in s['trace'] for s in e.cpu_stack_samples)]

def count(event):
    return sum(s['count'] for s in event.cpu_stack_samples)

spun = sampled('spin')
assert spun and count(spun[0]) >= 3, [(e.elapsed_ms, e.cpu_stack_samples) for e in events]
regex = [e for e in events if e not in spun and e.elapsed_ms >= 100]
assert regex, [(e.elapsed_ms, e.cpu_stack_samples) for e in events]
assert all(count(e) <= 1 for e in regex), [(e.elapsed_ms, e.cpu_stack_samples) for e in regex]
assert len([w for w in warnings if 'GIL-free CPU sampling is off' in w]) == 1, warnings
",
    );
}
