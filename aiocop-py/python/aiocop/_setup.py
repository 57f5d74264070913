"""The setup functions, with aiocop 1.2.1's signatures and defaults; the checks and the work
happen natively (a bad argument is a TypeError/ValueError naming it)."""

from __future__ import annotations

import os
import sys

from typing import Literal, Optional, Union

from aiocop import _aiocop
from aiocop.types.events import SlowTaskEvent
from collections.abc import Callable

Number = Union[int, float]

#: ``detect_slow_tasks()``'s default threshold, in milliseconds (aiocop 1.2.1's).
DEFAULT_THRESHOLD_MS = 30

#: What ``detect_slow_tasks(dispatch=None)`` means: ``None`` is the library's default
#: (``"background"``); the pytest plugin sets ``"inline"`` for the test process (tests assert
#: right after a handle ends). ``AIOCOP_DISPATCH`` wins over both.
_default_dispatch: Optional[Literal["background", "inline"]] = None


def _set_default_dispatch(value: Optional[Literal["background", "inline"]]) -> None:
    """Set what ``dispatch=None`` means for the process (the pytest plugin: ``"inline"``)."""
    global _default_dispatch
    if value not in (None, "background", "inline"):
        raise ValueError(f"dispatch must be 'background' or 'inline', got {value!r}")
    _default_dispatch = value


def start_blocking_io_detection(trace_depth: int = 20) -> None:
    """Register the native audit hook; ``trace_depth`` frames are kept per blocking call.

    Call once, after ``patch_audit_functions()``; a repeat call logs a warning and does nothing.
    The allow rules of the ``AIOCOP_ALLOW`` environment variable are put in force (a malformed
    one is a ``ValueError`` naming it, and nothing is installed).
    """
    from aiocop._rules import parse_rule_list

    if isinstance(trace_depth, bool) or not isinstance(trace_depth, int):
        raise TypeError(f"trace_depth must be an int, got {type(trace_depth).__name__}")
    first = not _aiocop._hook_installed()
    env_rules = parse_rule_list(os.environ.get("AIOCOP_ALLOW", ""), "env") if first else []
    if first:
        from aiocop import _distributions

        _distributions.load()  # before the first record: each code's distribution is cached
    _aiocop.start_blocking_io_detection(trace_depth)
    if first:
        # Suggested `path=` rules are relative to the project root: the working directory.
        _aiocop._set_project_root(os.getcwd())
    for rule in env_rules:
        _aiocop._activate_rule(rule)


def detect_slow_tasks(
    threshold_ms: Number = DEFAULT_THRESHOLD_MS,
    on_slow_task: Optional[Callable[[SlowTaskEvent], None]] = None,
    cpu_sampling: bool = True,
    dispatch: Optional[Literal["background", "inline"]] = None,
    mode: Literal["raise", "warn"] = "raise",
) -> None:
    """Configure slow-task detection; inside a running loop, wrap that loop at once.

    Every handle with a blocking call is reported (``reason="io_blocking"``), and every handle
    that ran ``threshold_ms`` or longer without one (``reason="cpu_blocking"``).
    ``cpu_sampling`` starts stack sampling (arming at half the threshold) unless it was started
    already. ``dispatch`` is ``"background"`` (default: callbacks run on the loop's thread
    shortly after the handle) or ``"inline"`` (right after the handle; the default in a pytest
    process, where aiocop's plugin is loaded); the environment variable ``AIOCOP_DISPATCH`` wins
    over it. ``mode`` is what a violation does where raising is
    enabled: ``"raise"`` or ``"warn"`` (log once per call site). A repeat call logs a warning
    and does nothing.
    """
    if dispatch is None:
        dispatch = _default_dispatch
    _aiocop.detect_slow_tasks(threshold_ms, on_slow_task, cpu_sampling, dispatch, mode)
    _follow_trio_run()


def activate() -> None:
    """Turn monitoring on. Inside a running asyncio/uvloop loop, also wrap that loop; inside
    ``trio.run``, also add an :class:`aiocop.trio.AiocopInstrument` to the run (once)."""
    _aiocop.activate()
    _follow_trio_run()


def _follow_trio_run() -> None:
    """Inside a trio run (trio imported, and detection configured): monitor it."""
    if "trio" in sys.modules and _aiocop._detection_configured():
        from aiocop.trio import attach_to_current_run

        attach_to_current_run()


def start_cpu_sampling(
    interval_ms: Number = 10,
    arm_after_ms: Optional[Number] = None,
    idle_interval_ms: Optional[Number] = None,
    max_samples_per_slice: int = 32,
    trace_depth: int = 20,
    native_frames: bool = False,
) -> None:
    """Start the CPU stack-sampling watchdog (``detect_slow_tasks`` does, unless told not to).

    ``arm_after_ms`` defaults to half the slow-task threshold and ``idle_interval_ms`` to
    ``min(50, max(arm_after_ms, interval_ms))``. Call before ``detect_slow_tasks()`` to
    customise; a repeat call logs a warning and does nothing.

    ``native_frames=True`` (or ``AIOCOP_NATIVE_FRAMES=1``) also puts the C functions a loop
    thread on CPU is running under the Python frames of its samples (Linux, x86-64 and
    aarch64); naming them loads CPython's and the C library's debug information once (tens of
    megabytes), which is why it is off by default.
    """
    _aiocop.start_cpu_sampling(
        interval_ms,
        arm_after_ms,
        idle_interval_ms,
        max_samples_per_slice,
        trace_depth,
        native_frames,
    )


def detect_stuck_loops(
    after_ms: Number = 1000,
    on_stuck_loop: Optional[Callable[[_aiocop.StuckLoopEvent], None]] = None,
    report_path: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> None:
    """Report a loop stuck in one handle while that handle still runs.

    A monitored handle (monitoring on: ``activate()``, ``python -m aiocop run``) still
    running ``after_ms`` after it began is reported, then again at 2x, 4x, 8x ``after_ms``
    while it stays stuck: a ``StuckLoopEvent`` (thread, task, coroutine, how long, the loop
    thread's stack, on CPU or waiting in which system call) is logged at WARNING on the
    ``aiocop`` logger and passed to ``on_stuck_loop``. The callback runs on a thread of
    aiocop's, never on the stuck loop's thread (that thread is busy): keep it thread-safe, and
    do not touch the loop from it except through ``call_soon_threadsafe``.

    With ``report_path``, each report is also appended to that file as one JSON line, written
    by aiocop's watchdog thread without the GIL: a stall that holds the GIL (a C call such as a
    regex) is still written while it lasts, and another process can read it. The callback and
    the log line wait for the GIL.

    The slow-task event at the end of a reported handle has ``stuck_reports`` > 0. Stop with
    ``stop_detecting_stuck_loops()``; a repeat call while on logs a warning and does nothing.
    ``after_ms`` <= 0, a non-callable ``on_stuck_loop`` or a ``report_path`` that cannot be
    opened for appending raise ``ValueError``/``TypeError`` naming the argument.
    """
    _aiocop.detect_stuck_loops(after_ms, on_stuck_loop, report_path)


def stop_detecting_stuck_loops() -> None:
    """Stop reporting stuck loops (reports already made are still delivered)."""
    _aiocop.stop_detecting_stuck_loops()
