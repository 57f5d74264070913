"""format_blocking_event on hand-made RawBlockingEvent dicts."""

from __future__ import annotations

import pytest

import aiocop


def raw(name="open", args=("/tmp/x", "r"), stack=(), severity=10):
    return {
        "event_name": name,
        "raw_args": tuple(args),
        "raw_stack": list(stack),
        "timestamp": 1700000000.0,
        "severity": severity,
    }


def test_result_shape():
    out = aiocop.format_blocking_event(raw(stack=[("/home/u/app.py", 3, "handler")]))
    # aiocop 1.2.1's four keys, and ours: the same as a delivered event's (no task)
    assert set(out) == {
        "event", "trace", "entry_point", "severity",
        "event_name", "site", "user_trace", "suggested_rule",
        "origin", "distribution", "distribution_version", "site_key",
    }
    assert out["severity"] == 10
    assert out["event_name"] == "open"
    assert out["site"] == out["user_trace"] == "/home/u/app.py:3:handler"
    assert out["suggested_rule"] == "event=open,path=*/u/app.py"
    assert out["origin"] == "first-party" and out["distribution"] is None


def test_event_string_plain_args():
    assert aiocop.format_blocking_event(raw())["event"] == "open(/tmp/x, r)"
    assert aiocop.format_blocking_event(raw("os.kill", (123, 0)))["event"] == "os.kill(123, 0)"
    assert aiocop.format_blocking_event(raw("os.system", (b"true",)))["event"] == "os.system(b'true')"
    assert aiocop.format_blocking_event(raw("x.y", ()))["event"] == "x.y()"
    assert aiocop.format_blocking_event(raw("x.y", (None, 1.5)))["event"] == "x.y(None, 1.5)"


def test_event_string_args_kwargs_pair_shows_only_the_tuple():
    out = aiocop.format_blocking_event(raw("socket.socket.connect", (("sock", ("127.0.0.1", 80)), {"k": "v"})))
    assert out["event"] == "socket.socket.connect(sock, ('127.0.0.1', 80))"
    assert aiocop.format_blocking_event(raw("time.sleep", ((0.001,), {})))["event"] == "time.sleep(0.001)"


def test_event_string_pair_rule_needs_tuple_and_dict():
    # (tuple, non-dict) and (non-tuple, dict) are shown as two plain arguments
    assert aiocop.format_blocking_event(raw("f", ((1, 2), "x")))["event"] == "f((1, 2), x)"
    assert aiocop.format_blocking_event(raw("f", ("a", {"k": 1})))["event"] == "f(a, {'k': 1})"
    # three arguments: never the pair rule
    assert aiocop.format_blocking_event(raw("f", ((1,), {}, 3)))["event"] == "f((1,), {}, 3)"


@pytest.mark.parametrize("length,shown", [(99, 99), (100, 100), (101, 100), (500, 100)])
def test_long_arguments_are_cut_to_100(length, shown):
    arg = "a" * (length - 1) + "Z"
    out = aiocop.format_blocking_event(raw("open", (arg, "w")))
    assert out["event"] == f"open({arg[:shown]}, w)"


def test_each_argument_is_cut_separately():
    long1, long2 = "x" * 150, "y" * 120
    out = aiocop.format_blocking_event(raw("os.rename", (long1, long2)))
    assert out["event"] == f"os.rename({'x' * 100}, {'y' * 100})"


def test_str_of_argument_is_used():
    class Thing:
        def __str__(self):
            return "THING"

        def __repr__(self):
            return "<repr>"

    assert aiocop.format_blocking_event(raw("f", (Thing(),)))["event"] == "f(THING)"


def test_path_shortening_and_trace():
    stack = [
        ("/home/dev/project/src/app/views.py", 12, "handler"),
        ("/venv/lib/python3.11/site-packages/starlette/routing.py", 80, "app"),
        ("/usr/lib/python3.11/asyncio/events.py", 80, "_run"),
        ("/opt/other/thing.py", 3, "g"),
        ("<frozen os>", 342, "walk"),
    ]
    out = aiocop.format_blocking_event(raw(stack=stack))
    assert out["trace"] == (
        "app/views.py:12:handler <- starlette/routing.py:80:app <- events.py:80:_run "
        "<- /opt/other/thing.py:3:g <- <frozen os>:342:walk"
    )
    assert out["entry_point"] == "app/views.py:12:handler"


def test_path_shortening_precedence():
    stack = [
        # /src/ wins over /site-packages/, and the first /src/ is the split point
        ("/venv/lib/python3.11/site-packages/pkg/src/mod.py", 1, "a"),
        ("/a/src/b/src/c.py", 2, "b"),
        # /site-packages/ wins over /lib/python
        ("/usr/lib/python3.11/site-packages/lib2/x.py", 3, "c"),
        # /lib/python: just the file name
        ("/root/.pyenv/versions/3.11.7/lib/python3.11/concurrent/futures/thread.py", 4, "d"),
    ]
    out = aiocop.format_blocking_event(raw(stack=stack))
    assert out["trace"].split(" <- ") == [
        "mod.py:1:a",
        "b/src/c.py:2:b",
        "lib2/x.py:3:c",
        "thread.py:4:d",
    ]


def test_empty_stack_is_unknown_entry_point():
    out = aiocop.format_blocking_event(raw(stack=[]))
    assert out["trace"] == ""
    assert out["entry_point"] == "unknown"


def test_severity_passes_through():
    assert aiocop.format_blocking_event(raw(severity=None))["severity"] is None
    assert aiocop.format_blocking_event(raw(severity=50))["severity"] == 50
    assert aiocop.format_blocking_event(raw(severity=0))["severity"] == 0


def test_formatted_events_feed_the_score():
    a = aiocop.format_blocking_event(raw(severity=50))
    b = aiocop.format_blocking_event(raw(severity=None))
    assert aiocop.calculate_io_severity_score([a, b]) == 60
    assert aiocop.get_severity_level_from_score(60) == "high"
