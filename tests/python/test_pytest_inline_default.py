"""In a pytest process aiocop delivers events inline by default (tests written for aiocop 1.2.1
assert right after a handle ends); ``dispatch=`` and ``AIOCOP_DISPATCH`` still choose.

The inner sessions run in fresh processes: the plugin is loaded through its entry point, as
users get it, without ``--aiocop``.
"""

from __future__ import annotations

import pytest

from conftest import describe, run_python
from conftest import PLUGIN_ARGS

pytest_plugins = ["pytester"]

INNER = """
import asyncio
import os

import aiocop

WANT = os.environ["WANT_DISPATCH"]
ARGS = {} if os.environ.get("ASK_DISPATCH") is None else {"dispatch": os.environ["ASK_DISPATCH"]}


def test_delivered_right_after_the_handle():
    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection()
    aiocop.detect_slow_tasks(threshold_ms=10, **ARGS)
    assert aiocop.stats()["dispatch"] == WANT
    seen = []
    aiocop.register_slow_task_callback(seen.append)

    async def blocks():
        with open(os.devnull) as f:
            f.read()

    async def main():
        aiocop.activate()
        await asyncio.get_running_loop().create_task(blocks())
        aiocop.deactivate()

    asyncio.run(main())
    if WANT == "inline":  # no flush(): already delivered, as aiocop 1.2.1 does
        assert [e.reason for e in seen] == ["io_blocking"]
"""


@pytest.mark.parametrize(
    ("env", "ask", "want"),
    [
        (None, None, "inline"),
        ("background", None, "background"),
        (None, "background", "background"),
        ("inline", "background", "inline"),
    ],
)
def test_inline_by_default_in_a_pytest_process(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    ask: str | None,
    want: str,
) -> None:
    monkeypatch.delenv("AIOCOP_DISPATCH", raising=False)
    monkeypatch.delenv("ASK_DISPATCH", raising=False)
    if env is not None:
        monkeypatch.setenv("AIOCOP_DISPATCH", env)
    if ask is not None:
        monkeypatch.setenv("ASK_DISPATCH", ask)
    monkeypatch.setenv("WANT_DISPATCH", want)
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS, "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1)


def test_outside_pytest_background_stays_the_default() -> None:
    proc = run_python(
        "import aiocop; aiocop.patch_audit_functions(); aiocop.start_blocking_io_detection(); "
        "aiocop.detect_slow_tasks(); print(aiocop.stats()['dispatch'])",
    )
    assert proc.stdout.strip() == "background", describe(proc)
