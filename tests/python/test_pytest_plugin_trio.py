"""The pytest plugin on trio and anyio, in inner pytest sessions run under ``-W error``.

anyio tests parametrised over asyncio and trio report the same blocking bodies on both
backends; a pytest-trio-like ``trio.run`` test is checked; a test on a loop the plugin cannot
check never fails or warns, and is listed under "aiocop: tests not checked".
"""

from __future__ import annotations

import re
import textwrap
from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

pytest.importorskip("anyio")
pytest.importorskip("trio")


def _entry_point_installed() -> bool:
    return any(ep.value == "aiocop.pytest_plugin" for ep in entry_points(group="pytest11"))


PLUGIN_ARGS: tuple[str, ...] = () if _entry_point_installed() else ("-p", "aiocop.pytest_plugin")

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

TESTS = """
import anyio
import pytest
import trio

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
    pytester.makepyfile(blocking_helpers=HELPERS, conftest=CONFTEST, test_sample=TESTS)
    (pytester.path / "data.txt").write_text("data\n")
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        *PLUGIN_ARGS, "-p", "no:cacheprovider", "-W", "error", "-rA", *args, timeout=120
    )


def test_anyio_on_both_backends_and_trio_run_are_checked(inner: pytest.Pytester) -> None:
    result = run(inner, "--aiocop", "--log-level=INFO")
    out = result.stdout.str()
    outcomes = dict(re.findall(r"^(PASSED|FAILED) (\S+)", out, re.M))
    by_test = {nodeid.split("::")[-1]: outcome for outcome, nodeid in re.findall(
        r"^(PASSED|FAILED) (\S+)", out, re.M)}
    assert by_test == {
        "test_blocks[asyncio]": "FAILED",
        "test_blocks[trio]": "FAILED",
        "test_clean[asyncio]": "PASSED",
        "test_clean[trio]": "PASSED",
        "test_trio_run_blocks": "FAILED",
        "test_trio_run_clean": "PASSED",
        "test_other_loop": "PASSED",
    }, out
    assert outcomes
    # The same blocking body is reported on both backends: the same call at the same site.
    line = next(
        n for n, text in enumerate(HELPERS.splitlines(), start=1) if "BLOCK:load_data" in text
    )
    sections = re.split(r"^_{3,} (\S+) _{3,}$", out, flags=re.M)
    reports = {sections[i]: sections[i + 1] for i in range(1, len(sections) - 1, 2)}
    for name in ("test_blocks[asyncio]", "test_blocks[trio]", "test_trio_run_blocks"):
        report = reports[name]
        assert f"blocking_helpers.py:{line}" in report, report
        assert "open(" in report, report
    # Never a warning (the session runs with -W error), and the test not checked is listed.
    assert "PytestWarning" not in out
    assert "aiocop: tests not checked" in out
    summary = out.split("aiocop: tests not checked", 1)[1]
    assert "test_sample.py::test_other_loop" in summary
    assert "test_sample.py::test_blocks" not in summary
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
