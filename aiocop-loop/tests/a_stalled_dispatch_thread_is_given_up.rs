//! Fault injection: the background (dispatch) thread stalls with a slice waiting. The loop is
//! never blocked: its handles run on, and `flush()` waits no longer than the stall limit; the
//! thread is then given up, the slice it held is lost and counted (`lost_events`,
//! `dispatch_thread_failures`), exactly one warning is logged, and the next new call site goes
//! to a new thread. Embedded CPython, a real asyncio loop.

mod common;

#[test]
fn a_stalled_dispatch_thread_is_given_up() {
    common::run_stalled(
        c"

async def main():
    patch()
    loop = asyncio.get_running_loop()
    loop.call_soon(site(0))
    # The loop keeps running its handles while the thread is stuck.
    ticks = []
    for _ in range(5):
        loop.call_soon(ticks.append, 1)
        await asyncio.sleep(0)
    assert len(ticks) == 5
    started = time.monotonic()
    flush()
    waited = time.monotonic() - started
    assert waited < 5, f'flush waited {waited:.1f} s on a stalled thread'
    s = stats()
    assert s['lost_events'] == 1 and s['dispatch_thread_failures'] == 1, s
    disarm()  # the old thread wakes up, given up: it takes nothing more
    loop.call_soon(site(1))
    await until(lambda: len(events) == 1, 'the event of the new thread')

asyncio.run(main())
assert [site_of(e) for e in events] == [1], events
logged = [w for w in warnings if 'dispatch thread stalled' in w]
assert len(logged) == 1 and len(warnings) == 1, warnings
assert stats()['lost_events'] == 1, stats()
",
    );
}
