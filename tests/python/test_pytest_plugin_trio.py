"""The pytest plugin on trio and anyio, in inner pytest sessions run under ``-W error``.

anyio tests parametrised over asyncio and trio report the same blocking bodies on both
backends; a pytest-trio-like ``trio.run`` test is checked; a test on a loop the plugin cannot
check never fails or warns, and is listed under "aiocop: tests not checked".
"""

from __future__ import annotations

import re
import textwrap

import pytest

from conftest import PLUGIN_ARGS

pytest_plugins = ["pytester"]

pytest.importorskip("anyio")
pytest.importorskip("trio")


INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

HELPERS = """
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def load_data():
    with open(os.path.join(HERE, "data.txt")) as f:  # BLOCK:load_data
        return f.read()
"""

#: A pytest-trio-like runner (``@pytest.mark.trio`` tests run in ``trio.run``), and a runner of
#: a loop the plugin does not know (the coroutine driven by hand, as an exotic loop would).
CONFTEST = """
import functools
import inspect

import pytest
import trio


def pytest_configure(config):
    config.addinivalue_line("markers", "trio: run in trio.run")
    config.addinivalue_line("markers", "bare: run by a loop aiocop does not know")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    args = {n: pyfuncitem.funcargs[n] for n in pyfuncitem._fixtureinfo.argnames}
    if pyfuncitem.get_closest_marker("trio") is not None:
        trio.run(functools.partial(pyfuncitem.obj, **args))
        return True
    if pyfuncitem.get_closest_marker("bare") is not None:
        coro = pyfuncitem.obj(**args)
        try:
            while True:
                coro.send(None)
        except StopIteration:
            pass
        return True
    return None
"""

#: anyio tests, parametrised over both backends.
ANYIO_TESTS = """
import anyio
import pytest

from blocking_helpers import load_data

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


async def test_blocks():
    await anyio.sleep(0)
    assert load_data() == "data\\n"


async def test_clean():
    await anyio.sleep(0)
"""

#: pytest-trio-like tests, and one on a loop the plugin does not know.
TRIO_TESTS = """
import pytest
import trio

from blocking_helpers import load_data


@pytest.mark.trio
async def test_trio_run_blocks():
    await trio.sleep(0)
    load_data()


@pytest.mark.trio
async def test_trio_run_clean():
    await trio.sleep(0)


@pytest.mark.bare
async def test_other_loop():
    load_data()
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("AIOCOP_ALLOW", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makeini(INI)
    pytester.makepyfile(
        blocking_helpers=HELPERS, conftest=CONFTEST, test_anyio=ANYIO_TESTS, test_trio=TRIO_TESTS
    )
    (pytester.path / "data.txt").write_text("data\n")
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        *PLUGIN_ARGS, "-p", "no:cacheprovider", "-W", "error", "-rA", *args, timeout=120
    )


def test_anyio_on_both_backends_and_trio_run_are_checked(inner: pytest.Pytester) -> None:
    result = run(inner, "--aiocop")
    out = result.stdout.str()
    outcomes = {
        nodeid: outcome for outcome, nodeid in re.findall(r"^(PASSED|FAILED) (\S+)", out, re.M)
    }
    assert outcomes == {
        "test_anyio.py::test_blocks[asyncio]": "FAILED",
        "test_anyio.py::test_blocks[trio]": "FAILED",
        "test_anyio.py::test_clean[asyncio]": "PASSED",
        "test_anyio.py::test_clean[trio]": "PASSED",
        "test_trio.py::test_trio_run_blocks": "FAILED",
        "test_trio.py::test_trio_run_clean": "PASSED",
        "test_trio.py::test_other_loop": "PASSED",
    }, out
    # The same blocking body is reported on both backends: the same call, site and trace.
    helpers = (inner.path / "blocking_helpers.py").read_text().splitlines()
    line = next(n for n, text in enumerate(helpers, start=1) if "BLOCK:load_data" in text)
    sections = re.split(r"^_{3,} (\S+) _{3,}$", out, flags=re.M)
    reports = {sections[i]: sections[i + 1] for i in range(1, len(sections) - 1, 2)}

    def shown(name: str) -> list[str]:
        lines = reports[name].splitlines()
        return [ln.strip() for ln in lines if ln.strip().startswith(("1. open(", "at:", "trace:", "allow:"))]

    assert len(shown("test_blocks[asyncio]")) == 4, reports["test_blocks[asyncio]"]
    assert shown("test_blocks[asyncio]") == shown("test_blocks[trio]")
    assert f"blocking_helpers.py:{line}:load_data" in reports["test_blocks[trio]"]
    # trio.run: the trace ends at the test, not at the conftest that ran trio.run.
    trace = next(ln for ln in shown("test_trio_run_blocks") if ln.startswith("trace:"))
    written = (inner.path / "test_trio.py").read_text().splitlines()
    call = 1 + next(
        n for n, text in enumerate(written) if text.strip() == "load_data()" and
        written[n - 2].startswith("async def test_trio_run_blocks")
    )
    assert trace.endswith(f"test_trio.py:{call}:test_trio_run_blocks"), trace
    # Never a warning (the session runs with -W error), and the test not checked is listed.
    assert "Warning" not in out
    assert "aiocop: tests not checked" in out
    # The section ends at the next one (the session's top blocking sites, or pytest's own).
    summary = re.split(r"\n[-=]{3,} ", out.split("aiocop: tests not checked", 1)[1], maxsplit=1)[0]
    assert "test_trio.py::test_other_loop" in summary
    assert "test_blocks" not in summary
    assert result.ret == 1


def test_a_loop_the_plugin_cannot_check_is_logged_at_info(inner: pytest.Pytester) -> None:
    result = run(inner, "--aiocop", "-k", "other_loop", "--log-level=INFO", "-o", "log_cli=true")
    out = result.stdout.str()
    assert result.ret == 0, out
    assert re.search(r"INFO .*aiocop.*test_other_loop ran on another and was not checked", out), (
        out
    )
    assert "aiocop: tests not checked" in out


def test_without_aiocop_nothing_is_listed(inner: pytest.Pytester) -> None:
    result = run(inner, "-k", "other_loop or clean")
    out = result.stdout.str()
    assert result.ret == 0, out
    assert "aiocop: tests not checked" not in out
