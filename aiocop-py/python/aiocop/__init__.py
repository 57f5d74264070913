"""aiocop: find what freezes your asyncio/uvloop event loop, natively.

A drop-in replacement for the pure-Python ``aiocop`` 1.2.1 API, with the hot path in Rust::

    import aiocop

    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection(trace_depth=20)
    aiocop.detect_slow_tasks(threshold_ms=30, on_slow_task=print)
    aiocop.activate()  # inside the running loop (or trio.run): also monitors it

By default events are assembled on a background thread and the callbacks run on the loop's
own thread shortly after the slow handle; ``aiocop.flush()`` delivers everything pending now.
``detect_slow_tasks(dispatch="inline")`` (or ``AIOCOP_DISPATCH=inline``) runs them right after
the handle instead, as aiocop 1.2.1 does.
"""

from __future__ import annotations

import atexit as _atexit
import os as _os
from collections.abc import Callable
from typing import Any

from aiocop._interpreter import require_supported_interpreter as _require_supported_interpreter

_require_supported_interpreter()

from aiocop import _aiocop  # noqa: E402  (after the interpreter check, on purpose)
from aiocop._aiocop import (
    calculate_io_severity_score,
    clear_context_providers,
    clear_slow_task_callbacks,
    deactivate,
    flush,
    format_blocking_event,
    get_blocking_events_dict,
    get_severity_level_from_score,
    get_slow_task_threshold_ms,
    is_cpu_sampling_started,
    is_monitoring_active,
    register_context_provider,
    register_slow_task_callback,
    reset_blocking_events,
    set_redactor,
    stats,
    StuckFrame,
    StuckLoopEvent,
    unregister_context_provider,
    unregister_slow_task_callback,
)
from aiocop._patch import get_patched_functions, patch_audit_functions
from aiocop._report import (
    Durations,
    Report,
    SiteStats,
    SlowTaskCount,
    configure_report,
    report,
    reset_report,
)
from aiocop._setup import (
    activate,
    detect_slow_tasks,
    detect_stuck_loops,
    start_blocking_io_detection,
    start_cpu_sampling,
    stop_detecting_stuck_loops,
)
from aiocop._default_rules import default_allow_rules
from aiocop._rules import (
    AllowRule,
    _scoped_rules,
    allow,
    allow_rules,
    allowing,
    clear_allow_rules,
    disallow,
    load_allow_rules,
    suggest_allow_rule,
    unused_allow_rules,
)
from aiocop._state import (
    _mode,
    _raise_at_call,
    _raise_on_violations,
    disable_raise_on_violations,
    enable_raise_on_violations,
    get_mode,
    is_raise_on_violations_enabled,
    raise_on_violations,
    set_mode,
)
from aiocop.exceptions import BlockingCallError, HighSeverityBlockingIoException
from aiocop.types.events import BlockingEventInfo, CpuStackSample, RawBlockingEvent, SlowTaskEvent
from aiocop.types.severity import (
    THRESHOLD_HIGH,
    THRESHOLD_LOW,
    THRESHOLD_MEDIUM,
    WEIGHT_HEAVY,
    WEIGHT_LIGHT,
    WEIGHT_MODERATE,
    WEIGHT_TRIVIAL,
    IoSeverityLevel,
)

# The extension's own version (its crate's, which maturin gives the distribution): no
# `importlib.metadata` at import, which would scan sys.path for distributions.
__version__: str = _aiocop.__version__

SlowTaskCallback = Callable[[SlowTaskEvent], None]
ContextProvider = Callable[[], "dict[str, Any]"]

_aiocop._set_python_types(HighSeverityBlockingIoException, _raise_on_violations)
_aiocop._set_enforcement(_raise_at_call, _mode, _scoped_rules, BlockingCallError)
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_aiocop._after_fork_child)
_atexit.register(_aiocop._shutdown)
# Frames of aiocop's own Python code (the pytest plugin's) are not the user's call site.
_aiocop._set_own_package_dir(_os.path.dirname(_os.path.abspath(__file__)))

__all__ = [
    # Setup
    "patch_audit_functions",
    "start_blocking_io_detection",
    "detect_slow_tasks",
    "start_cpu_sampling",
    "is_cpu_sampling_started",
    "detect_stuck_loops",
    "stop_detecting_stuck_loops",
    # Activation
    "activate",
    "deactivate",
    "is_monitoring_active",
    # Raise on violations
    "enable_raise_on_violations",
    "disable_raise_on_violations",
    "is_raise_on_violations_enabled",
    "raise_on_violations",
    "set_mode",
    "get_mode",
    # Allow rules
    "AllowRule",
    "allow",
    "allowing",
    "allow_rules",
    "clear_allow_rules",
    "default_allow_rules",
    "disallow",
    "load_allow_rules",
    "suggest_allow_rule",
    "unused_allow_rules",
    # Callbacks
    "register_slow_task_callback",
    "unregister_slow_task_callback",
    "clear_slow_task_callbacks",
    # Context providers
    "register_context_provider",
    "unregister_context_provider",
    "clear_context_providers",
    "ContextProvider",
    # Utilities
    "reset_blocking_events",
    "format_blocking_event",
    "get_patched_functions",
    "get_blocking_events_dict",
    "get_slow_task_threshold_ms",
    "calculate_io_severity_score",
    "get_severity_level_from_score",
    "flush",
    "stats",
    "set_redactor",
    # Per-call-site totals
    "report",
    "reset_report",
    "configure_report",
    "Report",
    "SiteStats",
    "SlowTaskCount",
    "Durations",
    # Types
    "BlockingEventInfo",
    "CpuStackSample",
    "RawBlockingEvent",
    "SlowTaskEvent",
    "SlowTaskCallback",
    "StuckLoopEvent",
    "StuckFrame",
    "IoSeverityLevel",
    # Exceptions
    "HighSeverityBlockingIoException",
    "BlockingCallError",
    # Constants
    "WEIGHT_HEAVY",
    "WEIGHT_MODERATE",
    "WEIGHT_LIGHT",
    "WEIGHT_TRIVIAL",
    "THRESHOLD_HIGH",
    "THRESHOLD_MEDIUM",
    "THRESHOLD_LOW",
]
