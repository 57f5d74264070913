"""``python -m aiocop run``: run a Python program with monitoring on and no code change.

::

    python -m aiocop run [--threshold-ms N] [--report-json PATH] [--flamegraph PATH]
                         [--prometheus-port PORT] [--top N] -- COMMAND...

COMMAND is ``script.py args``, ``-m module args`` or a console script installed in this
environment (``uvicorn app:app``). It runs in this process, its loops monitored from the moment
they start running; at exit the top call sites are printed to stderr, the JSON report and the
flamegraph are written where asked, and the exit code is the program's own. Each setting may
also come from the environment (``AIOCOP_THRESHOLD_MS``, ``AIOCOP_REPORT_JSON``,
``AIOCOP_FLAMEGRAPH``, ``AIOCOP_PROMETHEUS_PORT``) or from ``[tool.aiocop]`` in the working
directory's ``pyproject.toml`` (``threshold_ms``, ``report_json``, ``flamegraph``,
``prometheus_port``); the command line wins, then the environment. Bad input is a usage message
and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import runpy
import shutil
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Optional

import aiocop
from aiocop._pyproject import read_table

logger = logging.getLogger("aiocop")

_USAGE = "python -m aiocop run [options] -- COMMAND..."
_DEFAULT_TOP = 10


class _UsageError(Exception):
    """Bad input: printed with the usage, exit code 2."""


@dataclass(frozen=True)
class _Settings:
    threshold_ms: float
    report_json: Optional[str]
    flamegraph: Optional[str]
    prometheus_port: Optional[int]
    prometheus_addr: str
    top: int
    command: tuple[str, ...]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aiocop",
        description="Run a Python program with aiocop's monitoring on, no code change.",
    )
    commands = parser.add_subparsers(dest="subcommand", metavar="run")
    run = commands.add_parser(
        "run",
        usage=_USAGE,
        help="run COMMAND (script.py args, -m module args, or a console script) monitored",
        description="Run COMMAND (script.py args, -m module args, or an installed console "
        "script such as `uvicorn app:app`) with monitoring on; at exit, print the top call "
        "sites to stderr and write the reports asked for. Exits with the program's code.",
    )
    run.add_argument("--threshold-ms", type=str, default=None, metavar="N",
                     help="slow-task threshold in milliseconds (default 30)")
    run.add_argument("--report-json", default=None, metavar="PATH",
                     help="write the report as JSON to PATH at exit")
    run.add_argument("--flamegraph", default=None, metavar="PATH",
                     help="write a flamegraph SVG of blocking time by stack to PATH at exit")
    run.add_argument("--prometheus-port", type=str, default=None, metavar="PORT",
                     help="serve Prometheus metrics on PORT while the program runs")
    run.add_argument("--prometheus-addr", default="0.0.0.0", metavar="ADDR",
                     help="the address the metrics are served on (default 0.0.0.0)")
    run.add_argument("--top", type=str, default=None, metavar="N",
                     help=f"call sites printed at exit (default {_DEFAULT_TOP})")
    return parser


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """The options before ``--`` and the command after it (or after the first positional)."""
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    # No `--`: the command starts at the first argument after `run` that is not an option or
    # an option's value.
    takes_value = {"--threshold-ms", "--report-json", "--flamegraph", "--prometheus-port",
                   "--prometheus-addr", "--top"}
    i = 1 if argv[:1] == ["run"] else 0
    while i < len(argv):
        arg = argv[i]
        if arg in takes_value:
            i += 2
        elif arg.startswith("-") and arg not in ("-m",):
            i += 1
        else:
            break
    return argv[:i], argv[i:]


def _number(value: Any, name: str, *, integer: bool = False, minimum: float = 0) -> Any:
    if isinstance(value, bool):
        raise _UsageError(f"{name} must be a number, got {value!r}")
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise _UsageError(f"{name} must be {kind}, got {value!r}") from None
    if not math.isfinite(number) or number < minimum:
        raise _UsageError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")
    return number


def _writable(path: Optional[str], name: str) -> Optional[str]:
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise _UsageError(f"{name} must be a file path, got {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise _UsageError(f"{name}: cannot write {path!r} (no writable directory {directory!r})")
    return path


def _settings(args: argparse.Namespace, command: list[str]) -> _Settings:
    try:
        table = read_table(os.path.join(os.getcwd(), "pyproject.toml"))
    except (ValueError, RuntimeError) as exc:
        raise _UsageError(str(exc)) from None

    def pick(option: Optional[str], env: str, key: str) -> Any:
        if option is not None:
            return option, f"--{key.replace('_', '-')}"
        if os.environ.get(env):
            return os.environ[env], env
        if key in table:
            return table[key], f"[tool.aiocop] {key}"
        return None, key

    threshold, where = pick(args.threshold_ms, "AIOCOP_THRESHOLD_MS", "threshold_ms")
    threshold_ms = 30.0 if threshold is None else _number(threshold, where)
    report_json = _writable(*pick(args.report_json, "AIOCOP_REPORT_JSON", "report_json"))
    flamegraph = _writable(*pick(args.flamegraph, "AIOCOP_FLAMEGRAPH", "flamegraph"))
    port, where = pick(args.prometheus_port, "AIOCOP_PROMETHEUS_PORT", "prometheus_port")
    prometheus_port = None if port is None else _number(port, where, integer=True)
    if prometheus_port is not None and prometheus_port > 65535:
        raise _UsageError(f"{where} must be a port number (0-65535), got {port!r}")
    top = _DEFAULT_TOP if args.top is None else _number(args.top, "--top", integer=True, minimum=1)
    if not command:
        raise _UsageError("no command to run: give one after `--` (script.py, -m module, or "
                          "a console script)")
    if command[0] == "-m" and len(command) < 2:
        raise _UsageError("-m needs a module name")
    return _Settings(threshold_ms, report_json, flamegraph, prometheus_port,
                     args.prometheus_addr, top, tuple(command))


def _console_script(name: str) -> Optional[Callable[[], Any]]:
    from importlib.metadata import entry_points

    for entry in entry_points(group="console_scripts"):
        if entry.name == name:
            return entry.load
    return None


def _is_python_script(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return path.endswith(".py") or (first.startswith(b"#!") and b"python" in first)


def _target(command: tuple[str, ...]) -> Callable[[], Any]:
    """What runs the command in this process (checked before monitoring starts)."""
    head, rest = command[0], list(command[1:])
    if head == "-m":
        module, args = rest[0], rest[1:]

        def run_module() -> Any:
            sys.argv = [module, *args]
            runpy.run_module(module, run_name="__main__", alter_sys=True)

        return run_module
    if os.path.isfile(head):
        if not _is_python_script(head):
            raise _UsageError(f"{head!r} is not a Python script")
        return _script(head, rest)
    loader = _console_script(head)
    if loader is not None:

        def run_console_script() -> Any:
            sys.argv = [head, *rest]
            return loader()()

        return run_console_script
    found = shutil.which(head)
    if found and _is_python_script(found):
        return _script(found, rest)
    raise _UsageError(f"{head!r} is not a Python script, `-m module` or a console script of "
                      f"this environment")


def _script(path: str, args: list[str]) -> Callable[[], Any]:
    def run_script() -> Any:
        sys.argv = [path, *args]
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        runpy.run_path(path, run_name="__main__")

    return run_script


def _exit_code(value: Any) -> int:
    """The process exit code of ``sys.exit(value)`` (or a console script's return value)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


def _monitor_every_loop() -> None:
    """Monitors each event loop from the moment it starts running: wraps asyncio's
    ``_set_running_loop``, which asyncio's loops call through ``asyncio.events`` and uvloop
    through ``asyncio`` (it reads it when imported, so this runs before the program)."""
    import asyncio
    import asyncio.events as events

    original = events._set_running_loop

    def _set_running_loop(loop: Any) -> None:
        original(loop)
        if loop is not None:
            try:
                aiocop.activate()
            except Exception:  # noqa: BLE001 - monitoring must never stop the program
                logger.exception("aiocop could not monitor the loop %r", loop)

    events._set_running_loop = _set_running_loop
    asyncio._set_running_loop = _set_running_loop  # type: ignore[attr-defined]


def _start_prometheus(settings: _Settings) -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise _UsageError("--prometheus-port needs prometheus-client (pip install "
                          "'aiocop[prometheus]')") from None
    from aiocop.exporters import prometheus

    registry = prometheus_client.CollectorRegistry()
    prometheus.register(registry)
    try:
        server, _ = prometheus_client.start_http_server(
            settings.prometheus_port, addr=settings.prometheus_addr, registry=registry
        )
    except OSError as exc:
        raise _UsageError(f"--prometheus-port: cannot serve on {settings.prometheus_addr}:"
                          f"{settings.prometheus_port}: {exc.strerror or exc}") from None
    return server


def _finish(settings: _Settings) -> None:
    """At the program's end: the table to stderr, the JSON report and the flamegraph."""
    try:
        aiocop.flush()
    except Exception:  # noqa: BLE001
        pass
    report = aiocop.report(top=settings.top)
    print(report, file=sys.stderr)
    if settings.report_json:
        full = aiocop.report()
        with open(settings.report_json, "w", encoding="utf-8") as f:
            json.dump(full.to_dict(), f, indent=2)
            f.write("\n")
    if settings.flamegraph:
        from aiocop import _aiocop

        svg = _aiocop._flamegraph_svg(" ".join(settings.command))
        with open(settings.flamegraph, "w", encoding="utf-8") as f:
            f.write(svg)


def _usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.print_usage(sys.stderr)
    print(f"python -m aiocop run: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    options, command = _split(argv)
    if not options or options[0] != "run":
        if options[:1] in (["-h"], ["--help"]):
            parser.print_help()
            return 0
        _usage_error(parser, "the only command is `run`: " + _USAGE)
    args = parser.parse_args(options)  # exits 2 with a usage message on an unknown option
    try:
        settings = _settings(args, command)
        target = _target(settings.command)
        server = _start_prometheus(settings) if settings.prometheus_port is not None else None
    except _UsageError as exc:
        _usage_error(parser, str(exc))
    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection()
    aiocop.detect_slow_tasks(threshold_ms=settings.threshold_ms)
    _monitor_every_loop()
    aiocop.activate()
    code = 0
    try:
        code = _exit_code(target())
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - the program's own error, shown as Python would
        traceback.print_exc()
        code = 1
    finally:
        try:
            _finish(settings)
        finally:
            if server is not None:
                server.shutdown()
    return code
