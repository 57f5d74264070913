"""The pytest plugin (``aiocop.pytest_plugin``), driven with ``pytester``.

Each inner session runs in a fresh ``python -m pytest`` process
(``runpytest_subprocess``): aiocop's setup is once per process, and this
suite's own conftest has set it up already in this one. The inner sessions
load the plugin the way users get it, through the ``pytest11`` entry point
(or ``-p aiocop.pytest_plugin`` on a checkout whose install predates it),
alongside the real pytest-asyncio and anyio plugins.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from conftest import PLUGIN_ARGS

pytest_plugins = ["pytester"]

pytest.importorskip("pytest_asyncio")
pytest.importorskip("anyio")


#: The inner sessions' ini: pytest-asyncio in strict mode with function-scoped loops.
INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

#: A helper module the inner tests import: the blocking calls, on known lines.
HELPERS = """
import asyncio
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load_data():
    with open(os.path.join(HERE, "data.txt")) as f:  # BLOCK:load_data
        return f.read()


def nap():
    time.sleep(0.001)  # BLOCK:nap
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester directory with the ini, the helpers and their data file."""
    monkeypatch.delenv("AIOCOP_ALLOW", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makeini(INI)
    pytester.makepyfile(blocking_helpers=HELPERS)
    (pytester.path / "data.txt").write_text("data\n")
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run the inner session in a fresh process, with the plugin."""
    return pytester.runpytest_subprocess(*PLUGIN_ARGS, "-p", "no:cacheprovider", *args, timeout=120)


def line_of(source: str, tag: str) -> int:
    """The 1-based line of ``source`` holding ``# BLOCK:<tag>``."""
    # makepyfile drops the leading and trailing blank lines
    for number, line in enumerate(textwrap.dedent(source).strip("\n").splitlines(), 1):
        if f"# BLOCK:{tag}" in line:
            return number
    raise AssertionError(f"no BLOCK:{tag} in source")


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


BLOCKING_TEST = """
import asyncio
import pytest
from blocking_helpers import load_data


@pytest.mark.asyncio
async def test_reads_config():
    await asyncio.sleep(0)
    assert load_data() == "data\\n"  # BLOCK:call
"""


# --------------------------------------------------------------------------- the report


@pytest.mark.parametrize("dispatch", ["background", "inline"])
def test_blocking_async_test_fails_with_the_report(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, dispatch: str
) -> None:
    monkeypatch.setenv("AIOCOP_DISPATCH", dispatch)
    inner.makepyfile(test_blocking=BLOCKING_TEST)
    result = run(inner, "--aiocop")
    result.assert_outcomes(failed=1)
    text = output(result)
    assert (
        "aiocop: 1 blocking call(s) on the event loop in test_blocking.py::test_reads_config"
        in text
    )
    # the call, where it was made (file:line:function, then the test's line) and its weight
    assert "1. open(" in text and "data.txt, r" in text
    assert "weight 10 (moderate)" in text
    helper_frame = f"blocking_helpers.py:{line_of(HELPERS, 'load_data')}:load_data"
    test_frame = f"test_blocking.py:{line_of(BLOCKING_TEST, 'call')}:test_reads_config"
    assert re.search(rf"at:\s+\S*{re.escape(helper_frame)}", text), text
    assert re.search(rf"trace: \S*{re.escape(helper_frame)} <- \S*{re.escape(test_frame)}", text), (
        text
    )
    # the rule that would allow it
    assert re.search(r"allow: 'event=open,\S+'", text), text
    # the report is the failure, not a traceback into the plugin
    assert "pytest_plugin" not in text


def test_the_suggested_rule_allows_the_call(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_blocking=BLOCKING_TEST)
    first = run(inner, "--aiocop")
    first.assert_outcomes(failed=1)
    match = re.search(r"allow: '([^']+)'", output(first))
    assert match, output(first)
    rule = match.group(1)
    inner.makepyfile(
        test_blocking=BLOCKING_TEST.replace(
            "@pytest.mark.asyncio\n",
            f"@pytest.mark.asyncio\n@pytest.mark.aiocop(allow=[{rule!r}])\n",
        )
    )
    run(inner, "--aiocop").assert_outcomes(passed=1)


def test_a_marker_allow_rule_lets_it_pass(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_allowed="""
        import pytest
        from blocking_helpers import load_data, nap

        @pytest.mark.asyncio
        @pytest.mark.aiocop(allow=["event=open"])
        async def test_reads_config():
            load_data()

        @pytest.mark.asyncio
        @pytest.mark.aiocop(allow="event=open")
        @pytest.mark.aiocop(allow=[{"event": "time.sleep", "function": "blocking_helpers.*"}])
        async def test_two_markers_add_up():
            load_data()
            nap()

        @pytest.mark.asyncio
        @pytest.mark.aiocop(allow=["event=time.sleep"])
        async def test_other_rule_does_not_cover_it():
            load_data()
        """
    )
    result = run(inner, "--aiocop")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_allowed.py::test_other_rule_does_not_cover_it*"])


def test_light_calls_are_below_the_default_weight(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_light="""
        import os
        import pytest

        @pytest.mark.asyncio
        async def test_stat():
            os.stat(".")  # weight 1

        @pytest.mark.asyncio
        @pytest.mark.aiocop(min_weight=1)
        async def test_stat_strict():
            os.stat(".")
        """
    )
    result = run(inner, "--aiocop")
    result.assert_outcomes(passed=1, failed=1)
    assert "weight 1 (light)" in output(result)


def test_a_failing_test_keeps_its_own_error_and_gets_the_report_as_a_section(
    inner: pytest.Pytester,
) -> None:
    inner.makepyfile(
        test_fails="""
        import pytest
        from blocking_helpers import load_data

        @pytest.mark.asyncio
        async def test_wrong():
            load_data()
            assert 1 == 2, "the test's own failure"
        """
    )
    result = run(inner, "--aiocop")
    result.assert_outcomes(failed=1)
    text = output(result)
    assert "the test's own failure" in text
    assert "Captured aiocop call" in text
    assert "1. open(" in text


# --------------------------------------------------------------------------- what is not checked


def test_sync_tests_and_fixture_setup_are_not_checked(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_not_checked="""
        import asyncio
        import pytest
        import pytest_asyncio
        from blocking_helpers import load_data, nap

        @pytest.fixture
        def sync_fixture():
            load_data()
            yield
            load_data()

        @pytest_asyncio.fixture
        async def async_fixture():
            load_data()
            nap()
            await asyncio.sleep(0)
            load_data()
            yield "ready"
            load_data()
            await asyncio.sleep(0)
            nap()

        def test_sync():
            load_data()
            nap()

        @pytest.mark.asyncio
        async def test_uses_blocking_fixtures(sync_fixture, async_fixture):
            assert async_fixture == "ready"
            await asyncio.sleep(0)

        class TestInAClass:
            @pytest.mark.asyncio
            async def test_method(self, async_fixture):
                await asyncio.sleep(0)

            @pytest.mark.asyncio
            async def test_method_blocks(self):
                load_data()
        """
    )
    result = run(inner, "--aiocop", "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_method_blocks FAILED*"])


def test_without_the_option_the_plugin_does_nothing(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_off="""
        import pytest
        import aiocop
        from blocking_helpers import load_data

        @pytest.mark.asyncio
        @pytest.mark.aiocop(mode="raise", at_call=True)
        async def test_blocks():
            load_data()
            # aiocop was not even set up
            assert aiocop.get_patched_functions() == []
            assert not aiocop.is_monitoring_active()
        """
    )
    result = run(inner)
    result.assert_outcomes(passed=1)
    assert "aiocop:" not in result.stdout.str()


def test_no_aiocop_marker_skips_the_check(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_skipped="""
        import pytest
        from blocking_helpers import load_data

        pytestmark = pytest.mark.no_aiocop

        @pytest.mark.asyncio
        async def test_blocks():
            load_data()
        """
    )
    run(inner, "--aiocop").assert_outcomes(passed=1)


def test_the_ini_turns_it_on(inner: pytest.Pytester) -> None:
    inner.makeini(INI + "aiocop = true\n")
    inner.makepyfile(test_blocking=BLOCKING_TEST)
    result = run(inner)
    result.assert_outcomes(failed=1)
    assert "1. open(" in output(result)


def test_pyproject_ini_and_options(inner: pytest.Pytester) -> None:
    (inner.path / "tox.ini").unlink()  # makeini writes tox.ini
    inner.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        asyncio_mode = "auto"
        asyncio_default_fixture_loop_scope = "function"
        aiocop = true
        aiocop_mode = "warn"
        aiocop_threshold_ms = "12.5"
        """
    )
    inner.makepyfile(
        test_settings="""
        import aiocop
        from blocking_helpers import load_data

        async def test_auto_mode_and_threshold():
            assert aiocop.is_monitoring_active()
            assert aiocop.get_slow_task_threshold_ms() == 12.5
            load_data()
        """
    )
    run(inner).assert_outcomes(passed=1)  # warn mode from the ini
    result = run(inner, "--aiocop-mode=raise", "--aiocop-threshold-ms=12.5")
    result.assert_outcomes(failed=1)
    assert "slow-task threshold 12.5 ms" in output(result)


def test_bad_settings_are_usage_errors(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_bad="""
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.aiocop(mode="loud")
        async def test_bad_mode():
            pass

        @pytest.mark.asyncio
        @pytest.mark.aiocop(allow=["colour=blue"])
        async def test_bad_rule():
            pass
        """
    )
    result = run(inner, "--aiocop")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = output(result)
    bad_mode = "mode must be 'raise' or 'warn', got 'loud'"
    assert f"@pytest.mark.aiocop on test_bad.py::test_bad_mode: {bad_mode}" in text
    assert "@pytest.mark.aiocop on test_bad.py::test_bad_rule: malformed allow rule" in text
    assert "colour=blue" in text
    # without --aiocop the markers are not looked at
    run(inner).assert_outcomes(passed=2)
    bad_option = run(inner, "--aiocop", "--aiocop-mode=loud")
    assert bad_option.ret == pytest.ExitCode.USAGE_ERROR


# --------------------------------------------------------------------------- modes


def test_warn_mode_logs_once_per_call_site(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_warn="""
        import asyncio
        import logging
        import aiocop
        import pytest
        from blocking_helpers import load_data

        def aiocop_warnings(caplog):
            return [
                r for r in caplog.records if r.name == "aiocop" and r.levelno == logging.WARNING
            ]

        @pytest.mark.asyncio
        async def test_same_site_three_times(caplog):
            for _ in range(3):
                load_data()  # BLOCK:loop
                await asyncio.sleep(0)
            load_data()  # BLOCK:other (another path to the same site)
            await asyncio.sleep(0)
            aiocop.flush()
            records = aiocop_warnings(caplog)
            assert len(records) == 1, [r.getMessage() for r in records]
            first = records[0].getMessage()
            assert "blocking call open(" in first and "(weight 10)" in first
            assert "test_warn.py::test_same_site_three_times" in first
            assert "trace:" in first and "allow: 'event=open," in first

        @pytest.mark.asyncio
        @pytest.mark.aiocop(mode="raise")
        async def test_marker_mode_wins():
            load_data()
        """
    )
    result = run(inner, "--aiocop", "--aiocop-mode=warn")
    result.assert_outcomes(passed=1, failed=1)
    # the sites are in the terminal summary too: pytest's log capture hides the log lines
    result.stdout.fnmatch_lines(
        [
            "*aiocop: blocking calls (warn mode)*",
            "1 call site(s), each logged once on the 'aiocop' logger:",
            "open(*data.txt, r, *)  weight 10  at *blocking_helpers.py:9:load_data"
            "  allow: 'event=open,function=blocking_helpers.load_data'",
        ]
    )


BUSY_TEST = """
import asyncio
import time
import pytest


def busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:  # BLOCK:busy
        pass


@pytest.mark.asyncio
async def test_busy():
    await asyncio.sleep(0)
    busy(0.08)
"""


def test_the_threshold_option_fails_a_slow_loop_step(inner: pytest.Pytester) -> None:
    """--aiocop-threshold-ms does what it says: a loop step that long fails the test (a
    CPU-bound step has no blocking call to report), showing where the sampler saw it."""
    inner.makepyfile(test_busy=BUSY_TEST)
    result = run(inner, "--aiocop", "--aiocop-threshold-ms=10")
    result.assert_outcomes(failed=1)
    text = output(result)
    assert "1 slow loop step(s) on the event loop in test_busy.py::test_busy" in text, text
    assert "a loop step of " in text and "over the 10 ms threshold" in text, text
    assert f"at:    {inner.path}/test_busy.py:{line_of(BUSY_TEST, 'busy')}:busy" in text, text
    # the same in the ini file; in warn mode it is logged and listed instead
    warned = run(inner, "--aiocop", "--aiocop-threshold-ms=10", "--aiocop-mode=warn")
    warned.assert_outcomes(passed=1)
    warned.stdout.fnmatch_lines(["*aiocop: blocking calls (warn mode)*", "a loop step of *"])


def test_without_a_threshold_only_blocking_calls_fail(inner: pytest.Pytester) -> None:
    """Timing depends on the machine: a slow step fails a test only when a threshold is given."""
    inner.makepyfile(test_busy=BUSY_TEST)
    run(inner, "--aiocop").assert_outcomes(passed=1)


SUITE_SETUP = """
import aiocop
import pytest


@pytest.fixture(scope="session", autouse=True)
def monitoring():
    # aiocop 1.2.1's CI recipe: the suite sets aiocop up itself
    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection()
    aiocop.detect_slow_tasks(threshold_ms=50)
"""


def test_the_suites_own_setup_keeps_its_threshold(inner: pytest.Pytester) -> None:
    inner.makeconftest(SUITE_SETUP)
    inner.makepyfile(
        test_threshold="""
        import aiocop
        import pytest

        @pytest.mark.asyncio
        async def test_threshold():
            assert aiocop.get_slow_task_threshold_ms() == 50
        """
    )
    run(inner, "--aiocop").assert_outcomes(passed=1)
    # a threshold given to the plugin as well: the summary says which one is in force
    result = run(inner, "--aiocop", "--aiocop-threshold-ms=10")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*aiocop: threshold*",
            "the slow-task threshold in force is 50 ms, set by the suite's own "
            "aiocop.detect_slow_tasks(); loop steps of 50 ms or more fail tests (asked: 10 ms)",
        ]
    )


def test_at_call_raises_blocking_call_error_at_the_call(inner: pytest.Pytester) -> None:
    target = inner.path / "never-written.txt"
    inner.makepyfile(
        test_at_call=f"""
        import pytest
        import aiocop

        @pytest.mark.asyncio
        @pytest.mark.aiocop(at_call=True)
        async def test_writes():
            with open({str(target)!r}, "w") as f:  # BLOCK:open
                f.write("x")

        @pytest.mark.asyncio
        @pytest.mark.aiocop(at_call=True)
        async def test_catches():
            with pytest.raises(aiocop.BlockingCallError) as info:
                open({str(target)!r}, "w")
            assert info.value.event_name == "open"
            assert info.value.suggested_rule
        """
    )
    result = run(inner, "--aiocop")
    result.assert_outcomes(failed=1, passed=1)
    text = output(result)
    assert "BlockingCallError" in text
    result.stdout.fnmatch_lines([">*with open(*never-written.txt*"])
    assert not target.exists(), "the blocking call was not stopped"


# --------------------------------------------------------------------------- anyio


ANYIO_TESTS = """
import anyio
import pytest
from blocking_helpers import load_data

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return {backend!r}


@pytest.fixture
async def blocking_setup():
    load_data()
    yield
    load_data()


async def test_fixture_setup_is_not_checked(blocking_setup):
    await anyio.sleep(0)


async def test_blocks():
    load_data()


@pytest.mark.aiocop(allow=["event=open"])
async def test_allowed():
    load_data()
"""


@pytest.mark.parametrize(
    "backend", ["asyncio", ("asyncio", {"use_uvloop": True})], ids=["asyncio", "uvloop"]
)
def test_anyio_tests_are_checked(inner: pytest.Pytester, backend: object) -> None:
    if backend != "asyncio":
        pytest.importorskip("uvloop")
    inner.makepyfile(test_anyio=ANYIO_TESTS.format(backend=backend))
    result = run(inner, "--aiocop", "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_blocks FAILED*"])
    assert "1. open(" in output(result)


# --------------------------------------------------------------------------- aiocop_strict


STRICT_TESTS = """
import asyncio
import pytest
import aiocop
from blocking_helpers import load_data, nap


@pytest.mark.asyncio
async def test_only_the_block_is_checked(aiocop_strict):
    load_data()  # before the block: not checked
    async with aiocop_strict:
        await asyncio.sleep(0)
    load_data()  # after it: not checked
    await asyncio.sleep(0)  # a plain `with` checks the loop step it starts in whole
    with aiocop_strict:
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_own_code_raises_at_the_call(aiocop_strict):
    async with aiocop_strict:
        await asyncio.sleep(0)
        load_data()  # BLOCK:own


@pytest.mark.asyncio
async def test_other_tasks_are_reported_at_exit(aiocop_strict):
    go = asyncio.Event()

    async def server():
        await go.wait()
        nap()  # BLOCK:server

    task = asyncio.create_task(server())  # started before the block: its own context
    await asyncio.sleep(0)
    async with aiocop_strict:
        go.set()
        await task


@pytest.mark.asyncio
@pytest.mark.aiocop(allow=["event=open"])
async def test_marker_rules_apply(aiocop_strict):
    async with aiocop_strict:
        load_data()
    async with aiocop_strict(allow=["event=time.sleep"]):
        nap()


def test_needs_a_running_loop(aiocop_strict):
    with pytest.raises(RuntimeError, match="running asyncio loop"):
        with aiocop_strict:
            pass
"""


@pytest.mark.parametrize("option", [[], ["--aiocop"]], ids=["plugin-off", "plugin-on"])
def test_aiocop_strict_checks_only_its_block(inner: pytest.Pytester, option: list[str]) -> None:
    inner.makepyfile(test_strict=STRICT_TESTS)
    result = run(inner, "-v", *option)
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*test_only_the_block_is_checked PASSED*",
            "*test_own_code_raises_at_the_call FAILED*",
            "*test_other_tasks_are_reported_at_exit FAILED*",
            "*test_marker_rules_apply PASSED*",
            "*test_needs_a_running_loop PASSED*",
        ]
    )
    text = output(result)
    assert "BlockingCallError: blocking call open(" in text
    server_frame = f"test_strict.py:{line_of(STRICT_TESTS, 'server')}:server"
    assert "in the aiocop_strict block at test_strict.py:" in text
    assert "1. time.sleep(0.001)  weight 50 (heavy)" in text
    assert server_frame in text


def test_aiocop_strict_settings(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        test_strict_settings="""
        import asyncio
        import logging
        import pytest
        import aiocop
        from blocking_helpers import load_data

        @pytest.mark.asyncio
        async def test_collected_not_raised(aiocop_strict):
            async with aiocop_strict(at_call=False):
                load_data()  # BLOCK:collected
                reached = True
            assert reached

        @pytest.mark.asyncio
        async def test_warn(aiocop_strict, caplog):
            async with aiocop_strict(mode="warn"):
                for _ in range(2):
                    load_data()
                    await asyncio.sleep(0)
            warnings = [r for r in caplog.records if r.name == "aiocop"]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            message = warnings[0].getMessage()
            assert "in the aiocop_strict block at test_strict_settings.py:" in message

        @pytest.mark.asyncio
        @pytest.mark.aiocop(mode="warn")
        async def test_marker_mode_applies(aiocop_strict):
            async with aiocop_strict:
                load_data()

        @pytest.mark.asyncio
        async def test_bad_settings(aiocop_strict):
            with pytest.raises(ValueError, match="mode must be 'raise' or 'warn'"):
                aiocop_strict(mode="loud")
        """
    )
    result = run(inner, "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_collected_not_raised FAILED*"])
    text = output(result)
    assert "BlockingCallError" not in text
    line = line_of(inner.path.joinpath("test_strict_settings.py").read_text(), "collected")
    assert f"test_strict_settings.py:{line}:test_collected_not_raised" in text


ASGI_TESTS = """
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from blocking_helpers import load_data

# httpx's ASGI transport tries `import sniffio` on every request: a real import on the loop.
pytestmark = pytest.mark.aiocop(allow=["event=import,module=httpx.*,frames=any"])


async def items(request):
    return PlainTextResponse(load_data())  # BLOCK:view


app = Starlette(routes=[Route("/items", items)])


@pytest.fixture
async def client():
    load_data()  # fixture setup: not checked
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_view_raises_at_the_call(client, aiocop_strict):
    async with aiocop_strict:
        await client.get("/items")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_view_reported_at_exit(client, aiocop_strict):
    async with aiocop_strict(at_call=False):
        response = await client.get("/items")
    assert response.text == "data\\n"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.aiocop(allow=["event=open,function=blocking_helpers.load_data"])
async def test_view_allowed(client, aiocop_strict):
    async with aiocop_strict:
        response = await client.get("/items")
    assert response.text == "data\\n"
"""


def test_aiocop_strict_around_an_asgi_request(inner: pytest.Pytester) -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    inner.makepyfile(test_asgi=ASGI_TESTS)
    result = run(inner, "-v")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*test_view_raises_at_the_call*FAILED*",
            "*test_view_reported_at_exit*FAILED*",
            "*test_view_allowed*PASSED*",
        ]
    )
    text = output(result)
    assert "BlockingCallError: blocking call open(" in text
    assert f"test_asgi.py:{line_of(ASGI_TESTS, 'view')}:items" in text


# --------------------------------------------------------------------------- rules


def test_unused_rules_are_listed_at_the_end(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOCOP_ALLOW", "event=subprocess.Popen;event=open,function=*.load_data")
    inner.makepyprojecttoml(
        """
        [tool.aiocop]
        allow = ["event=time.sleep", {event = "socket.connect", module = "legacy.*"}]
        """
    )
    inner.makepyfile(
        test_rules="""
        import pytest
        import aiocop
        from blocking_helpers import load_data, nap

        @pytest.mark.asyncio
        async def test_env_and_pyproject_rules_apply():
            load_data()  # the AIOCOP_ALLOW rule
            nap()  # the pyproject rule
            assert {r.source for r in aiocop.allow_rules()} >= {"env", "pyproject"}

        @pytest.mark.asyncio
        @pytest.mark.aiocop(allow=["event=shutil.rmtree"])
        async def test_marker_rule_never_used():
            pass
        """
    )
    result = run(inner, "--aiocop")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*aiocop: unused allow rules*",
            "event=subprocess.Popen  (from env)",
            "event=socket.connect,module=legacy.*  (from pyproject)",
            "event=shutil.rmtree  (from @pytest.mark.aiocop on "
            "test_rules.py::test_marker_rule_never_used)",
        ]
    )
    summary = result.stdout.str().split("unused allow rules")[-1]
    assert "event=time.sleep" not in summary
    assert "load_data" not in summary


UNUSED_RULES_TESTS = """
import pytest
from blocking_helpers import load_data


@pytest.mark.asyncio
@pytest.mark.aiocop(allow=["event=open,module=blocking_helpers"])
async def test_uses_its_rule():
    load_data()


@pytest.mark.aiocop(allow=["event=os.listdir"])
class TestShared:
    @pytest.mark.asyncio
    async def test_one(self):
        pass

    @pytest.mark.asyncio
    async def test_two(self):
        pass


@pytest.mark.asyncio
@pytest.mark.aiocop(allow=["event=shutil.copytree"])
async def test_deselected():
    pass
"""


def test_the_unused_rule_report_is_true(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule that matched is not unused; a rule of a test that did not run is not reported;
    a rule shared by several tests is listed once; a rule blocking calls were checked against
    in vain is listed once, with where it came from."""
    monkeypatch.setenv("AIOCOP_ALLOW", "event=time.sleep,module=nowhere")
    inner.makepyfile(test_rules=UNUSED_RULES_TESTS)
    result = run(inner, "--aiocop", "-k", "not deselected")
    result.assert_outcomes(passed=3)
    summary = result.stdout.str().split("aiocop: unused allow rules")[-1]
    lines = [line for line in summary.splitlines() if "(from " in line]
    assert lines == [
        "event=time.sleep,module=nowhere  (from env)",
        "event=os.listdir  (from @pytest.mark.aiocop on test_rules.py::TestShared::test_one, "
        "test_rules.py::TestShared::test_two)",
    ], summary
    assert "1 test(s) deselected" in summary


def test_no_unused_rule_report_when_every_rule_matched(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_rules=UNUSED_RULES_TESTS)
    result = run(inner, "--aiocop", "-k", "uses_its_rule")
    result.assert_outcomes(passed=1)
    assert "unused allow rules" not in result.stdout.str()


def test_a_bad_pyproject_rule_is_a_usage_error(inner: pytest.Pytester) -> None:
    inner.makepyprojecttoml(
        """
        [tool.aiocop]
        allow = ["colour=blue"]
        """
    )
    inner.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = run(inner, "--aiocop")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "colour=blue" in output(result)
    assert "pyproject.toml" in output(result)


def test_the_plugin_module_is_registered_as_an_entry_point() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert (
        '[project.entry-points.pytest11]\naiocop = "aiocop.pytest_plugin"' in pyproject.read_text()
    )
