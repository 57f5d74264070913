//! `dispatch="inline"`: a handle's event is delivered on the loop thread right after the
//! handle, before the loop runs its next one — with no background thread and nothing to wait
//! for. Embedded CPython, a real asyncio loop.

mod common;

use aiocop_loop::Dispatch;

#[test]
fn inline_dispatch_delivers_right_after_the_handle() {
    common::run(
        Dispatch::Inline,
        c"
seen = []

async def main():
    patch()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    for i in range(3):
        loop.call_soon(site(i))
        # The next handle sees the event of the one before it already delivered.
        loop.call_soon(lambda: seen.append([site_of(e) for e in events]))
    loop.call_soon(done.set_result, None)
    await done

asyncio.run(main())
assert seen == [[0], [0, 1], [0, 1, 2]], seen
assert stats()['lost_events'] == 0
",
    );
}
