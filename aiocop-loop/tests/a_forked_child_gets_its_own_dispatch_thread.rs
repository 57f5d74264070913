//! After `fork()`, the child does not use the parent's background thread (which the child does
//! not have): its first new call site starts a dispatch thread of its own, and its events are
//! delivered. Embedded CPython, real asyncio loops in the parent and the child.

mod common;

use aiocop_loop::Dispatch;

#[test]
fn a_forked_child_gets_its_own_dispatch_thread() {
    common::run(
        Dispatch::Background,
        c"
import warnings as _warnings
_warnings.simplefilter('ignore', DeprecationWarning)  # fork() with threads running
os.register_at_fork(after_in_child=after_fork_child)

async def one_event(i):
    patch()
    asyncio.get_running_loop().call_soon(site(i))
    await until(lambda: any(site_of(e) == i for e in events), f'the event of site {i}')

# The parent's background thread is running.
asyncio.run(one_event(0))

read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    status = 1
    try:
        asyncio.run(one_event(1))
        os.write(write_end, repr([site_of(e) for e in events]).encode())
        status = 0
    finally:
        os._exit(status)

os.close(write_end)
deadline = time.monotonic() + 60
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    assert time.monotonic() < deadline, 'the child did not finish'
    time.sleep(0.01)
child_saw = os.read(read_end, 1000).decode()
assert os.waitstatus_to_exitcode(status) == 0, status
assert child_saw == '[0, 1]', child_saw
assert [site_of(e) for e in events] == [0]
",
    );
}
