"""``SlowTaskEvent`` behaves as aiocop 1.2.1's frozen dataclass, whether a user builds it or the
monitor delivers it (fields built on first read).

The reference is a real ``@dataclass(frozen=True)`` made from the same field specs: every
behaviour is compared with it, not with hand-written expectations.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import os
import pickle
import threading
import weakref

import pytest

import aiocop
from aiocop.types.events import SlowTaskEvent

from conftest import run_monitored

FIELDS = [f.name for f in dataclasses.fields(SlowTaskEvent)]

Reference = dataclasses.make_dataclass(
    "SlowTaskEvent",
    [(f.name, f.type, f) for f in dataclasses.fields(SlowTaskEvent)],
    frozen=True,
)

REQUIRED = dict(
    elapsed_ms=12.5,
    threshold_ms=10.0,
    exceeded_threshold=True,
    severity_score=10,
    severity_level="medium",
    reason="io_blocking",
    blocking_events=[{"event": "os.stat(.)", "trace": "", "entry_point": "unknown", "severity": 10}],
)


def both(*args, **kwargs):
    return SlowTaskEvent(*args, **kwargs), Reference(*args, **kwargs)


def error_of(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the exception is what is compared
        return type(exc), str(exc)
    raise AssertionError("no exception")


def delivered(loop_kind, tmp_path, *, context=None):
    """One real io_blocking event from a monitored loop (os.stat in a task)."""
    if context is not None:
        aiocop.register_context_provider(lambda: context)

    async def body():
        os.stat(tmp_path)

    (evt,) = run_monitored(body, loop_kind).io_events
    return evt


# --------------------------------------------------------------------------- the class


def test_is_a_dataclass_with_the_incumbents_metadata():
    # The field names and order are pinned by test_api_surface.
    assert dataclasses.is_dataclass(SlowTaskEvent)
    assert SlowTaskEvent.__dataclass_params__.frozen
    assert SlowTaskEvent.__match_args__ == tuple(FIELDS)
    assert SlowTaskEvent.__module__ == "aiocop.types.events"
    assert SlowTaskEvent.__qualname__ == "SlowTaskEvent"
    assert str(__import__("inspect").signature(SlowTaskEvent)) == str(
        __import__("inspect").signature(Reference)
    )


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((), REQUIRED),
        (tuple(REQUIRED.values()), {}),
        (tuple(REQUIRED.values()), {"context": {"request_id": "r1"}, "task_name": "t"}),
        (tuple(REQUIRED.values()) + ({"a": 1}, [{"trace": "x", "entry_point": "x", "count": 2}], "n", "c"), {}),
        ((), {**REQUIRED, "context": None, "cpu_stack_samples": None}),
    ],
)
def test_constructed_like_the_dataclass(args, kwargs):
    ours, ref = both(*args, **kwargs)
    assert [getattr(ours, n) for n in FIELDS] == [getattr(ref, n) for n in FIELDS]
    assert repr(ours) == repr(ref)
    assert vars(ours) == vars(ref)
    assert dataclasses.asdict(ours) == dataclasses.asdict(ref)
    assert dataclasses.astuple(ours) == dataclasses.astuple(ref)


def test_defaults_are_fresh_per_event():
    a, b = SlowTaskEvent(**REQUIRED), SlowTaskEvent(**REQUIRED)
    assert a.context == {} and a.cpu_stack_samples == []
    assert a.context is not b.context
    assert a.cpu_stack_samples is not b.cpu_stack_samples
    assert a.task_name is None and a.coroutine is None


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((), {}),
        ((1.0,), {}),
        ((1.0, 2.0, True, 1, "low", "io_blocking"), {}),
        (tuple(range(len(FIELDS) + 1)), {}),  # one too many
        ((1.0,), {"elapsed_ms": 2.0}),
        ((), {**REQUIRED, "bogus": 1}),
    ],
)
def test_bad_arguments_raise_the_dataclass_errors(args, kwargs):
    assert error_of(lambda: SlowTaskEvent(*args, **kwargs)) == error_of(lambda: Reference(*args, **kwargs))


def test_frozen_like_the_dataclass():
    ours, ref = both(**REQUIRED)
    for name in ("elapsed_ms", "context", "not_a_field"):
        assert error_of(lambda: setattr(ours, name, 1)) == error_of(lambda: setattr(ref, name, 1))
        assert error_of(lambda: delattr(ours, name)) == error_of(lambda: delattr(ref, name))
    assert isinstance(error_of(lambda: setattr(ours, "reason", "x")), tuple)
    assert ours.reason == "io_blocking"


def test_equality_and_hash_like_the_dataclass():
    a, b = SlowTaskEvent(**REQUIRED), SlowTaskEvent(**REQUIRED)
    assert a == b
    assert a != SlowTaskEvent(**{**REQUIRED, "elapsed_ms": 1.0})
    assert a != Reference(**REQUIRED)  # a dataclass only equals its own class
    assert error_of(lambda: hash(a)) == error_of(lambda: hash(Reference(**REQUIRED)))
    hashable = {**REQUIRED, "blocking_events": ()}
    ctx_free = SlowTaskEvent(**hashable, context=None, cpu_stack_samples=None)
    ref = Reference(**hashable, context=None, cpu_stack_samples=None)
    assert hash(ctx_free) == hash(ref)


def test_replace_copy_pickle_and_match():
    evt = SlowTaskEvent(**REQUIRED, context={"request_id": "r1"})
    changed = dataclasses.replace(evt, elapsed_ms=99.0)
    assert type(changed) is SlowTaskEvent
    assert changed.elapsed_ms == 99.0 and changed.context == {"request_id": "r1"}
    shallow = copy.copy(evt)
    assert shallow == evt and shallow.context is evt.context
    deep = copy.deepcopy(evt)
    assert deep == evt and deep.context is not evt.context
    assert pickle.loads(pickle.dumps(evt)) == evt
    match evt:
        case SlowTaskEvent(elapsed_ms, threshold_ms, reason="io_blocking"):
            assert (elapsed_ms, threshold_ms) == (12.5, 10.0)
        case _:
            raise AssertionError("positional and keyword patterns must match")


def test_weak_references_and_subclasses():
    evt = SlowTaskEvent(**REQUIRED)
    ref = weakref.ref(evt)
    assert ref() is evt

    class Tagged(SlowTaskEvent):
        pass

    tagged = Tagged(**REQUIRED)
    tagged.tag = "mine"  # a subclass may set its own attributes, as on the dataclass
    assert tagged.tag == "mine"
    assert isinstance(error_of(lambda: setattr(tagged, "reason", "x")), tuple)


# --------------------------------------------------------------------------- delivered events


def test_delivered_event_reads_like_a_constructed_one(loop_kind, tmp_path):
    evt = delivered(loop_kind, tmp_path)
    rebuilt = SlowTaskEvent(**{name: getattr(evt, name) for name in FIELDS})
    assert rebuilt == evt and repr(rebuilt) == repr(evt)
    assert list(vars(evt)) == FIELDS
    assert pickle.loads(pickle.dumps(evt)) == evt
    assert dataclasses.replace(evt, reason="cpu_blocking").blocking_events == evt.blocking_events
    assert evt.reason == "io_blocking" and evt.exceeded_threshold in (True, False)
    assert type(evt.elapsed_ms) is float and type(evt.severity_score) is int


def test_delivered_fields_are_built_once_and_keep_changes(loop_kind, tmp_path):
    evt = delivered(loop_kind, tmp_path)
    assert evt.blocking_events is evt.blocking_events
    assert evt.context is evt.context
    assert evt.cpu_stack_samples is evt.cpu_stack_samples
    evt.blocking_events.append({"event": "added"})
    evt.blocking_events[0]["event"] = "mutated"
    evt.context["note"] = "kept"
    assert [r["event"] for r in evt.blocking_events] == ["mutated", "added"]
    assert vars(evt)["context"] == {"note": "kept"}
    assert dataclasses.asdict(evt)["blocking_events"][1] == {"event": "added"}


def test_fields_read_after_the_callback_and_on_another_thread(loop_kind, tmp_path):
    """A callback may keep the event and read it later, anywhere: the fields are there."""
    evt = delivered(loop_kind, tmp_path)
    seen = []
    reader = threading.Thread(target=lambda: seen.append(dataclasses.asdict(evt)))
    reader.start()
    reader.join()
    (record,) = seen[0]["blocking_events"]
    assert record["event"].startswith("os.stat(")
    assert record["entry_point"] != "unknown"
    assert seen[0]["task_name"] == evt.task_name


def test_delivered_context_is_the_providers_dict(loop_kind, tmp_path):
    evt = delivered(loop_kind, tmp_path, context={"request_id": "r-42"})
    assert evt.context == {"request_id": "r-42"}


def test_a_cycle_through_the_event_is_collected(loop_kind, tmp_path):
    """An event stored in its own context (e.g. on a span the context holds) is freed by the
    cycle collector, as a dataclass instance is."""
    evt = delivered(loop_kind, tmp_path)
    evt.context["self"] = evt
    evt.blocking_events.append(evt)
    ref = weakref.ref(evt)
    del evt
    gc.collect()
    assert ref() is None


def test_a_kept_event_reads_its_task_at_delivery(loop_kind, tmp_path):
    """A callback that keeps the event gets the task's name as it was when the event was
    delivered, and the event does not keep the task (or its coroutine) alive."""
    import asyncio

    kept = []
    refs = {}

    async def work():
        os.stat(tmp_path)
        await asyncio.sleep(0)

    async def body():
        aiocop.register_slow_task_callback(kept.append)
        try:
            task = asyncio.get_running_loop().create_task(work(), name="original-name")
            await task
            aiocop.flush()
            task.set_name("renamed-later")
            refs["task"] = weakref.ref(task)
        finally:
            aiocop.unregister_slow_task_callback(kept.append)

    run_monitored(body, loop_kind)
    gc.collect()
    (evt,) = [e for e in kept if e.reason == "io_blocking"]
    assert refs["task"]() is None, "a kept event must not keep its task alive"
    assert evt.task_name == "original-name"
    assert evt.coroutine.endswith("work")
    assert evt.blocking_events[0]["task_name"] == "original-name"


def test_call_text_is_made_when_read_or_at_delivery(loop_kind, tmp_path):
    """The text of a call (``os.stat(<path>)``) is made from the argument objects when
    ``blocking_events`` is read; a kept event makes it right after delivery, then lets the
    arguments go."""

    class Where:
        def __init__(self, label):
            self.label = label

        def __fspath__(self):
            return str(tmp_path)

        def __str__(self):
            return self.label

    kept = []
    where = Where("first-label")

    async def body():
        os.stat(where)

    aiocop.register_slow_task_callback(kept.append)
    try:
        run_monitored(body, loop_kind)
    finally:
        aiocop.unregister_slow_task_callback(kept.append)
    where.label = "changed-after-delivery"
    ref = weakref.ref(where)
    del where
    gc.collect()
    assert ref() is None, "a kept event must not keep the call's arguments alive"
    (evt,) = [e for e in kept if e.reason == "io_blocking"]
    assert [r["event"] for r in evt.blocking_events] == ["os.stat(first-label)"]


def test_call_text_read_inside_the_callback(loop_kind, tmp_path):
    seen = []

    def read_now(evt):
        if evt.reason == "io_blocking":
            seen.append([r["event"] for r in evt.blocking_events])

    async def body():
        os.stat(tmp_path)
        open(os.devnull).close()

    aiocop.register_slow_task_callback(read_now)
    try:
        run_monitored(body, loop_kind)
    finally:
        aiocop.unregister_slow_task_callback(read_now)
    (events,) = seen
    assert events[0] == f"os.stat({tmp_path})"
    assert events[1].startswith(f"open({os.devnull}")
