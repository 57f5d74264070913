//! Fault injection: a loop's `close()` delivers the loop's pending events first, which waits
//! for the background thread; with that thread stalled, the wait ends at the stall limit
//! (the slice is counted as lost) and the loop closes. Embedded CPython, a real asyncio loop.

mod common;

#[test]
fn closing_a_loop_is_not_blocked_by_a_stalled_dispatch_thread() {
    common::run_stalled(
        c"

async def main():
    patch()
    asyncio.get_running_loop().call_soon(site(0))
    await asyncio.sleep(0)

loop = asyncio.new_event_loop()
loop.run_until_complete(main())
started = time.monotonic()
loop.close()
waited = time.monotonic() - started
assert loop.is_closed()
assert waited < 5, f'close waited {waited:.1f} s on a stalled thread'
s = stats()
assert s['lost_events'] == 1 and s['dispatch_thread_failures'] == 1, s
assert len([w for w in warnings if 'dispatch thread stalled' in w]) == 1, warnings
disarm()
",
    );
}
