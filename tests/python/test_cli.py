"""``python -m aiocop run``: a script, ``-m module`` and uvicorn (a console script) serving a
real app hit by real requests run monitored with no code change; the report's counts equal the
blocking calls made; the exit code is the program's; settings come from the command line, the
environment or ``pyproject.toml``; bad input is a usage message and exit code 2."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

SCRIPT = """
import asyncio, os, sys

async def handle():
    os.stat(".")

async def main():
    for _ in range({n}):
        await asyncio.ensure_future(handle())

asyncio.run(main())
sys.exit({code})
"""


def aiocop_run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AIOCOP_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "aiocop", "run", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def write_script(tmp_path: Path, n: int = 5, code: int = 0, name: str = "prog.py") -> Path:
    path = tmp_path / name
    path.write_text(SCRIPT.format(n=n, code=code))
    return path


def site_counts(report_path: Path) -> dict[str, int]:
    data = json.loads(report_path.read_text())
    return {f"{s['event']}@{s['site'].rsplit(':', 1)[-1]}": s["count"] for s in data["sites"]}


def test_a_script_runs_monitored_with_its_exit_code(tmp_path: Path) -> None:
    write_script(tmp_path, n=7, code=3)
    out = aiocop_run("--report-json", "r.json", "--flamegraph", "f.svg", "--", "prog.py",
                     cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    assert site_counts(tmp_path / "r.json")["os.stat@handle"] == 7
    assert "aiocop report:" in out.stderr and "os.stat" in out.stderr
    svg = (tmp_path / "f.svg").read_text()
    assert svg.startswith("<?xml") and "handle" in svg and "os.stat" in svg


def test_a_module_runs_with_its_arguments(tmp_path: Path) -> None:
    pkg = tmp_path / "app"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        "import sys\n" + SCRIPT.format(n=4, code="len(sys.argv[1:])").replace(
            "asyncio.run(main())", "assert sys.argv[1:] == ['a', 'b'], sys.argv\nasyncio.run(main())"
        )
    )
    out = aiocop_run("--report-json", "r.json", "--", "-m", "app", "a", "b", cwd=tmp_path)
    assert out.returncode == 2, out.stderr  # the program's own code: two arguments
    assert site_counts(tmp_path / "r.json")["os.stat@handle"] == 4
    assert "usage" not in out.stderr


def test_settings_from_the_environment_and_pyproject(tmp_path: Path) -> None:
    write_script(tmp_path, n=2)
    (tmp_path / "pyproject.toml").write_text('[tool.aiocop]\nreport_json = "from-pyproject.json"\n')
    out = aiocop_run("prog.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert site_counts(tmp_path / "from-pyproject.json")["os.stat@handle"] == 2
    out = aiocop_run("prog.py", cwd=tmp_path, env={"AIOCOP_REPORT_JSON": "from-env.json"})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "from-env.json").is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_uvicorn_serving_real_requests(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import os
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        async def stat(request):
            os.stat(".")
            return PlainTextResponse("ok")

        app = Starlette(routes=[Route("/stat", stat)])
    """))
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiocop", "run", "--report-json", "r.json",
         "--prometheus-port", str(metrics_port), "--prometheus-addr", "127.0.0.1", "--",
         "uvicorn", "app:app", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("AIOCOP_")},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/stat", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        for _ in range(24):
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/stat", timeout=5).read() == b"ok"
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert b"aiocop_blocking_calls_total" in metrics.read()
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert site_counts(tmp_path / "r.json")["os.stat@stat"] == 25
    assert "aiocop report:" in stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--bogus", "--", "prog.py"], ["unrecognized arguments", "--bogus"]),
        ([], ["no command"]),
        (["--"], ["no command"]),
        (["--threshold-ms", "fast", "--", "prog.py"], ["--threshold-ms", "'fast'"]),
        (["--top", "0", "--", "prog.py"], ["--top"]),
        (["--", "no-such-command-xyz"], ["'no-such-command-xyz'"]),
        (["--report-json", "/no/such/dir/r.json", "--", "prog.py"], ["--report-json"]),
    ],
)
def test_bad_input_is_a_usage_error(tmp_path: Path, args: list[str], words: list[str]) -> None:
    write_script(tmp_path)
    out = aiocop_run(*args, cwd=tmp_path)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and "usage:" in out.stderr, out.stderr
    for word in words:
        assert word in out.stderr, (word, out.stderr)


def test_a_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    write_script(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = aiocop_run("--prometheus-port", str(port), "--prometheus-addr", "127.0.0.1",
                         "--", "prog.py", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and str(port) in out.stderr


def test_a_bad_pyproject_setting_is_a_usage_error(tmp_path: Path) -> None:
    write_script(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.aiocop]\nthreshold_ms = "slow"\n')
    out = aiocop_run("prog.py", cwd=tmp_path)
    assert out.returncode == 2 and "[tool.aiocop] threshold_ms" in out.stderr, out.stderr
