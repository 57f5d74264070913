"""Task identity: SlowTaskEvent.task_name / .coroutine, and the same keys in every record.

For a handle that steps an asyncio task: the task's name and its coroutine's qualname. For a
plain callback (``loop.call_soon`` & co.): ``task_name=None`` and the callback's qualname.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time

import pytest

import aiocop

from conftest import busy_wait, check_event_invariants, entry_function, new_loop, close_loop, run_monitored


def assert_identity(result, function: str, task_name, coroutine) -> None:
    """The events with an ``open`` from ``function`` carry (task_name, coroutine), as do their
    records."""
    events = [e for e in result.events
              if any(entry_function(r) == function for r in e.blocking_events)]
    assert events, [r["entry_point"] for r in result.records()]
    for evt in events:
        check_event_invariants(evt)
        assert (evt.task_name, evt.coroutine) == (task_name, coroutine)
        for rec in evt.blocking_events:
            assert (rec["task_name"], rec["coroutine"]) == (task_name, coroutine), rec


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "identity.txt"
    path.write_text("identity")
    return path


# --------------------------------------------------------------------------- tasks


def test_named_task(loop_kind, config):
    async def my_worker():
        with open(config) as f:
            return f.read()

    async def body():
        return await asyncio.create_task(my_worker(), name="my-task")

    result = run_monitored(body, loop_kind)
    assert result.value == "identity"
    assert_identity(result, "my_worker", "my-task", my_worker.__qualname__)
    assert my_worker.__qualname__ == "test_named_task.<locals>.my_worker"


def test_default_task_name(loop_kind, config):
    async def anonymous():
        open(config).close()

    async def body():
        task = asyncio.create_task(anonymous())
        await task
        return task.get_name()

    result = run_monitored(body, loop_kind)
    assert result.value.startswith("Task-")
    assert_identity(result, "anonymous", result.value, anonymous.__qualname__)


def test_the_coroutine_is_the_tasks_not_the_awaited_one(loop_kind, config):
    async def inner():
        open(config).close()

    async def outer():
        await asyncio.sleep(0)
        await inner()

    async def body():
        await asyncio.create_task(outer(), name="outer-task")

    result = run_monitored(body, loop_kind)
    events = result.events_with("open")
    assert len(events) == 1
    assert (events[0].task_name, events[0].coroutine) == ("outer-task", outer.__qualname__)


def test_method_coroutine_qualname(loop_kind, config):
    class Service:
        async def handle(self):
            open(config).close()

    async def body():
        await asyncio.create_task(Service().handle(), name="service")

    result = run_monitored(body, loop_kind)
    assert_identity(result, "handle", "service", Service.handle.__qualname__)
    assert Service.handle.__qualname__.endswith("Service.handle")


def test_renamed_task_reports_its_current_name(loop_kind, config):
    async def worker():
        asyncio.current_task().set_name("renamed")
        await asyncio.sleep(0)
        open(config).close()

    async def body():
        await asyncio.create_task(worker(), name="original")

    assert_identity(run_monitored(body, loop_kind), "worker", "renamed", worker.__qualname__)


def test_concurrent_tasks_are_told_apart(loop_kind, config):
    async def reader(turns):
        for _ in range(turns):
            open(config).close()
            await asyncio.sleep(0)

    async def writer(turns):
        for _ in range(turns):
            with open(config, "a") as f:
                f.write(".")
            await asyncio.sleep(0)

    async def body():
        await asyncio.gather(
            asyncio.create_task(reader(3), name="reader-task"),
            asyncio.create_task(writer(3), name="writer-task"),
        )

    result = run_monitored(body, loop_kind)
    seen = {(e.task_name, e.coroutine, entry_function(r))
            for e in result.events for r in e.blocking_events}
    assert seen == {
        ("reader-task", reader.__qualname__, "reader"),
        ("writer-task", writer.__qualname__, "writer"),
    }
    assert len(result.events_with("open")) == 6


def test_cpu_event_of_a_named_task(loop_kind):
    async def cruncher():
        busy_wait(0.03)

    async def body():
        await asyncio.create_task(cruncher(), name="crunch")

    result = run_monitored(body, loop_kind)
    cpu = result.cpu_events
    assert cpu, [(e.reason, e.task_name) for e in result.events]
    assert any((e.task_name, e.coroutine) == ("crunch", cruncher.__qualname__) for e in cpu)


def test_gathered_coroutines_get_their_own_tasks(loop_kind, config):
    async def one():
        open(config).close()

    async def two():
        await asyncio.sleep(0)
        open(config).close()

    async def body():
        await asyncio.gather(one(), two())

    result = run_monitored(body, loop_kind)
    names = {e.coroutine: e.task_name for e in result.events_with("open")}
    assert set(names) == {one.__qualname__, two.__qualname__}
    assert all(name.startswith("Task-") for name in names.values())
    assert names[one.__qualname__] != names[two.__qualname__]


def test_high_severity_exception_records_carry_the_task(loop_kind):
    async def sleeper():
        with aiocop.raise_on_violations():
            time.sleep(0.03)
            await asyncio.sleep(0)

    async def body():
        await asyncio.create_task(sleeper(), name="sleepy")

    with pytest.raises(aiocop.HighSeverityBlockingIoException) as info:
        run_monitored(body, loop_kind)
    recs = [e for e in info.value.events if e["event"] == "time.sleep(0.03)"]
    assert recs
    assert (recs[0]["task_name"], recs[0]["coroutine"]) == ("sleepy", sleeper.__qualname__)


def test_named_task_on_a_loop_in_another_thread(loop_kind, config):
    events = []
    aiocop.register_slow_task_callback(events.append)

    async def threaded_worker():
        open(config).close()

    async def main():
        aiocop.activate()
        await asyncio.sleep(0)
        await asyncio.create_task(threaded_worker(), name="thread-task")
        await asyncio.sleep(0)
        aiocop.flush()

    def run():
        loop = new_loop(loop_kind)
        try:
            loop.run_until_complete(main())
        finally:
            close_loop(loop)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    mine = [e for e in events
            if any(entry_function(r) == "threaded_worker" for r in e.blocking_events)]
    assert len(mine) == 1
    assert (mine[0].task_name, mine[0].coroutine) == ("thread-task", threaded_worker.__qualname__)


# --------------------------------------------------------------------------- plain callbacks


BLOCKING_PATH: list = []


def blocking_function():
    open(BLOCKING_PATH[0]).close()


class Component:
    def on_tick(self):
        open(BLOCKING_PATH[0]).close()


@pytest.fixture
def blocking_path(config):
    BLOCKING_PATH[:] = [config]
    yield config
    BLOCKING_PATH.clear()


def test_call_soon_callback(loop_kind, blocking_path):
    async def body():
        asyncio.get_running_loop().call_soon(blocking_function)
        await asyncio.sleep(0.005)

    result = run_monitored(body, loop_kind)
    assert_identity(result, "blocking_function", None, "blocking_function")


def test_call_soon_bound_method(loop_kind, blocking_path):
    async def body():
        asyncio.get_running_loop().call_soon(Component().on_tick)
        await asyncio.sleep(0.005)

    assert_identity(run_monitored(body, loop_kind), "on_tick", None, "Component.on_tick")


def test_call_soon_partial_reports_the_wrapped_function(loop_kind, blocking_path):
    def read(path):
        open(path).close()

    async def body():
        asyncio.get_running_loop().call_soon(functools.partial(read, blocking_path))
        await asyncio.sleep(0.005)

    assert_identity(run_monitored(body, loop_kind), "read", None, read.__qualname__)


@pytest.mark.parametrize("how", ["call_soon", "call_soon_threadsafe", "call_later", "call_at"])
def test_every_scheduling_method_reports_the_callback(loop_kind, blocking_path, how):
    async def body():
        loop = asyncio.get_running_loop()
        if how == "call_later":
            loop.call_later(0.001, blocking_function)
        elif how == "call_at":
            loop.call_at(loop.time() + 0.001, blocking_function)
        else:
            getattr(loop, how)(blocking_function)
        await asyncio.sleep(0.02)

    assert_identity(run_monitored(body, loop_kind), "blocking_function", None, "blocking_function")


def test_callback_scheduled_by_a_task_is_not_the_task(loop_kind, blocking_path):
    async def scheduler():
        asyncio.get_running_loop().call_soon(blocking_function)
        await asyncio.sleep(0.005)

    async def body():
        await asyncio.create_task(scheduler(), name="scheduler-task")

    assert_identity(run_monitored(body, loop_kind), "blocking_function", None, "blocking_function")
