"""Event types handed to slow-task callbacks."""

from __future__ import annotations

import inspect

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, List, Optional, TypedDict


class RawBlockingEvent(TypedDict):
    """A blocking call as captured, before formatting (input of ``format_blocking_event``)."""

    event_name: str
    raw_args: tuple
    raw_stack: list[tuple[str, int, str]]
    timestamp: float
    severity: Optional[int]


class _BlockingEventInfoBase(TypedDict):
    #: ``name(arg1, arg2)``, each argument cut to 100 characters.
    event: str
    #: ``file:line:function`` frames joined by `` <- ``, innermost first.
    trace: str
    #: The first frame of the trace, or ``"unknown"``.
    entry_point: str
    #: The event's weight.
    severity: Optional[int]


class BlockingEventInfo(_BlockingEventInfoBase, total=False):
    """One blocking call of a slow handle (the first four keys are aiocop 1.2.1's)."""

    #: The name of the asyncio task that made the call, or None for a plain callback.
    task_name: Optional[str]
    #: The qualified name of the task's coroutine, or of the callback.
    coroutine: Optional[str]
    #: The audit event's name (``open``).
    event_name: str
    #: The user's call site: the innermost frame of the project's own code (not the standard
    #: library, not an installed package), as ``file:line:function``.
    site: str
    #: The trace up to the outermost frame of the project's own code (what called it — the
    #: loop, a server, a test runner — left out); the whole trace when no frame is the project's.
    user_trace: str
    #: An allow rule that accepts this call and no broader (``None`` without frames).
    suggested_rule: Optional[str]
    #: Who the call is attributed to: the innermost frame of the call that is not the standard
    #: library's — ``"first-party"`` (the project's code), ``"third-party"`` (an installed
    #: package) — or ``"stdlib"`` when every frame of the call is the standard library's.
    origin: str
    #: The installed distribution of that frame (third-party calls), from ``importlib.metadata``.
    distribution: Optional[str]
    #: Its installed version.
    distribution_version: Optional[str]
    #: The call site's key, stable across edits that move lines: the distribution (an installed
    #: package's site) or the module, and the qualified function name (``app.config:load``);
    #: ``None`` without frames. With ``event_name`` it keys a site in a pytest baseline.
    site_key: Optional[str]


class _CpuStackSampleBase(TypedDict):
    trace: str
    entry_point: str
    count: int


class CpuStackSample(_CpuStackSampleBase, total=False):
    """A stack seen by the CPU sampler during a slow handle, with how often it was seen (the
    first three keys are aiocop 1.2.1's)."""

    #: Whether the loop thread was on CPU (runnable) when these samples were taken; a stack seen
    #: both on and off CPU is two entries. None where that is not known (off Linux).
    on_cpu: Optional[bool]
    #: The native (C) frames the loop thread was running under the innermost Python frame,
    #: innermost first, each ``"function (library)"``; they also lead ``trace``, marked
    #: ``[native]``. Empty when none were captured (off CPU, stack read under the GIL, platform).
    native_frames: List[str]


@dataclass(frozen=True)
class SlowTaskEvent:
    """A handle that blocked the loop: it made blocking calls, or ran past the threshold.

    aiocop 1.2.1's frozen dataclass, field for field (the task identity added last). At run
    time the name is the native class ``aiocop._aiocop.SlowTaskEvent``, which carries this
    dataclass's metadata and generated methods (see ``_adopt``): ``dataclasses.fields``,
    ``asdict``, ``replace``, ``==``, ``repr``, ``hash``, ``vars``, ``copy``, pickling and
    ``match`` behave as on the dataclass. An event the monitor delivers builds each field on
    first read, so a callback only pays for what it looks at.
    """

    elapsed_ms: float
    threshold_ms: float
    exceeded_threshold: bool
    severity_score: int
    severity_level: str
    reason: str
    blocking_events: list[BlockingEventInfo]
    context: dict[str, Any] = field(default_factory=dict)
    cpu_stack_samples: list[CpuStackSample] = field(default_factory=list)
    #: The name of the asyncio task the handle stepped, or None for a plain callback.
    task_name: Optional[str] = None
    #: The qualified name of the task's coroutine, or of the plain callback.
    coroutine: Optional[str] = None
    #: The loop thread's CPU time during the handle, in ms. None when not measured: off Linux,
    #: CPU sampling off, or a handle over before the sampler's watchdog first saw it.
    cpu_ms: Optional[float] = None
    #: ``elapsed_ms - cpu_ms``, never negative: time spent waiting (IO, locks, sleeps, the GIL).
    wait_ms: Optional[float] = None
    #: The system call the thread was seen waiting in most (``"futex"``, ``"read"``,
    #: ``"clock_nanosleep"``, ...); None when never seen waiting (or not measured).
    blocked_in: Optional[str] = None
    #: Time in the garbage collector during the handle, in ms (None when not measured).
    gc_ms: Optional[float] = None
    #: Times the handle was reported as stuck while it still ran (``detect_stuck_loops``).
    stuck_reports: int = 0


def _adopt(native: type, spec: type) -> type:
    """Gives the native class the dataclass ``spec``'s metadata and generated methods."""
    for name in (
        "__dataclass_fields__",
        "__dataclass_params__",
        "__match_args__",
        "__annotations__",
        "__repr__",
        "__eq__",
        "__hash__",
        "__replace__",  # Python 3.13+ (copy.replace)
    ):
        if name in spec.__dict__:
            setattr(native, name, spec.__dict__[name])
    native.__doc__ = spec.__doc__
    native.__signature__ = inspect.signature(spec)  # type: ignore[attr-defined]
    return native


if not TYPE_CHECKING:
    from aiocop import _aiocop

    SlowTaskEvent = _adopt(_aiocop.SlowTaskEvent, SlowTaskEvent)


__all__ = ["RawBlockingEvent", "BlockingEventInfo", "CpuStackSample", "SlowTaskEvent"]
