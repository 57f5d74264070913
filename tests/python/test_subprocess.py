"""Process families: subprocess.Popen, os.system, os.kill."""

from __future__ import annotations

import os
import subprocess

from conftest import assert_record, run_monitored


def spawn_true() -> int:
    return subprocess.run(["true"]).returncode


def system_true() -> int:
    return os.system("true")


def signal_self() -> None:
    os.kill(os.getpid(), 0)


def test_subprocess_run_is_reported(loop_kind):
    async def body():
        return spawn_true()

    result = run_monitored(body, loop_kind)
    assert result.value == 0
    rec = assert_record(result, "subprocess.Popen", 50, "spawn_true")
    assert "true" in rec["event"]
    assert result.events_with("subprocess.Popen")[0].severity_level == "high"


def test_os_system_is_reported(loop_kind):
    async def body():
        return system_true()

    result = run_monitored(body, loop_kind)
    assert result.value == 0
    rec = assert_record(result, "os.system", 50, "system_true", entry=True)
    assert "true" in rec["event"]


def test_os_kill_is_reported(loop_kind):
    async def body():
        signal_self()

    result = run_monitored(body, loop_kind)
    rec = assert_record(result, "os.kill", 1, "signal_self", entry=True)
    assert rec["event"] == f"os.kill({os.getpid()}, 0)"
