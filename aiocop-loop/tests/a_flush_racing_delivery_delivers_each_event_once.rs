//! `flush()` called while the background thread is assembling slices and the loop thread is
//! picking events up: every event is delivered exactly once, in the order its handle ran.
//! Embedded CPython, a real asyncio loop, the background thread running for real.

mod common;

use aiocop_loop::Dispatch;

#[test]
fn a_flush_racing_delivery_delivers_each_event_once() {
    common::run(
        Dispatch::Background,
        c"
SITES = 300

async def main():
    patch()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    for i in range(SITES):
        # Each a new call site: assembled on the background thread.
        loop.call_soon(site(i))
        if i % 7 == 0:
            loop.call_soon(flush)
    loop.call_soon(done.set_result, None)
    await done
    await until(lambda: len(events) >= SITES, 'every event')
    flush()

asyncio.run(main())
order = [site_of(e) for e in events]
assert order == list(range(SITES)), order
assert stats()['lost_events'] == 0 and stats()['dropped_events'] == 0, stats()
",
    );
}
