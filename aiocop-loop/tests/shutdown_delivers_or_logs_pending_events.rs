//! At interpreter exit, events still pending are never lost silently: those of a loop of the
//! exiting thread are delivered there; those of a loop whose thread has ended are logged at
//! WARNING with their content. Embedded CPython, real asyncio loops on two threads.

mod common;

use aiocop_loop::Dispatch;

#[test]
fn shutdown_delivers_or_logs_pending_events() {
    common::run(
        Dispatch::Background,
        c"
import threading

def leave_an_event_pending(i):
    # A loop that runs the blocking handle, then stops before it picks the event up.
    loop = asyncio.new_event_loop()
    async def start():
        patch()
        asyncio.get_running_loop().call_soon(site(i))
        await asyncio.sleep(0)
    loop.run_until_complete(start())
    return loop  # not closed: closing would deliver

here = leave_an_event_pending(0)
worker = threading.Thread(target=leave_an_event_pending, args=(1,))
worker.start()
worker.join()
assert events == [], events

exit_now()

assert [site_of(e) for e in events] == [0], events
logged = [w for w in warnings if 'could not deliver a slow-task event' in w]
assert len(logged) == 1 and '<site 1>' in logged[0], warnings
assert stats()['undelivered_events'] == 0 and stats()['lost_events'] == 0, stats()
",
    );
}
