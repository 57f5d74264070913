//! A regex that holds the GIL for its whole run (catastrophic backtracking, ~100-200 ms) in a
//! monitored handle is sampled at (nearly) every interval of the CPU sampler — read without
//! the GIL — and each sample names the Python function that called it; under the GIL the
//! sampler could take one sample at most. Embedded CPython, a real asyncio loop, the real
//! sampler thread (interval 10 ms, armed after 5 ms).

mod common;

use aiocop_loop::Dispatch;

#[test]
fn a_regex_holding_the_gil_is_sampled_every_interval() {
    common::run_with_threshold(
        Dispatch::Inline,
        30_000_000,
        c"
import re

start_sampling()
assert gil_free() is True, warnings

PATTERN = re.compile(r'(a+)+$')

def backtrack(n):
    return PATTERN.match('a' * n + 'b')

def tune():
    n = 18
    while True:
        started = time.perf_counter()
        backtrack(n)
        if time.perf_counter() - started > 0.12:
            return n
        n += 1

n = tune()

async def main():
    patch()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(backtrack, n)
    loop.call_soon(done.set_result, None)
    await done

asyncio.run(main())
flush()

slow = [e for e in events if e.elapsed_ms >= 60]
assert len(slow) == 1, [(e.elapsed_ms, e.cpu_stack_samples) for e in events]
event = slow[0]
intervals = int((event.elapsed_ms - 5) // 10)
naming = sum(s['count'] for s in event.cpu_stack_samples if 'backtrack' in s['trace'])
assert naming >= 0.8 * intervals, (naming, intervals, event.elapsed_ms, event.cpu_stack_samples)
assert warnings == [], warnings
",
    );
}
