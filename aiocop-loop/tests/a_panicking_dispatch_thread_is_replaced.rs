//! Fault injection: the background (dispatch) thread panics while it assembles a slice. The
//! panic stays on that thread; the loop keeps running; the slice is lost and counted
//! (`lost_events`, `dispatch_thread_failures`); exactly one warning is logged; the next new
//! call site starts a new thread, whose events are delivered. Embedded CPython, a real asyncio
//! loop.

mod common;

use aiocop_loop::Dispatch;

#[test]
fn a_panicking_dispatch_thread_is_replaced() {
    common::run(
        Dispatch::Background,
        c"
arm('dispatch_thread_panic', 1)

async def main():
    patch()
    loop = asyncio.get_running_loop()
    loop.call_soon(site(0))
    await until(lambda: stats()['lost_events'] == 1, 'the slice lost with the thread')
    # The loop runs on, and the next new call site goes to a new thread.
    loop.call_soon(site(1))
    await until(lambda: len(events) == 1, 'the event of the new thread')
    flush()

asyncio.run(main())
assert [site_of(e) for e in events] == [1], events
s = stats()
assert s['lost_events'] == 1 and s['dispatch_thread_failures'] == 1, s
assert s['dropped_events'] == 0 and s['undelivered_events'] == 0, s
logged = [w for w in warnings if 'dispatch thread panicked' in w]
assert len(logged) == 1 and len(warnings) == 1, warnings
",
    );
}
