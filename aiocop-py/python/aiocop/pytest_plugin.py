"""pytest plugin: fail async tests that block their event loop.

Registered through the ``pytest11`` entry point, so installing aiocop is enough; it stays off
(registers its options, markers and the ``aiocop_strict`` fixture, nothing else) until turned
on with ``--aiocop`` or ``aiocop = true`` in the ini file::

    pytest --aiocop                         # fail async tests that block the loop
    pytest --aiocop --aiocop-mode=warn      # log each blocking call site once instead
    pytest --aiocop --aiocop-threshold-ms=50  # also fail loop steps of 50 ms or more

When on, the body of every async test (pytest-asyncio, anyio on asyncio) runs with aiocop
monitoring the test's own loop; fixture setup and teardown, and sync tests, are not checked.
A test that made a blocking call of weight ``WEIGHT_MODERATE`` or more fails with a report of
each call: what it was, where, how heavy, and the allow rule that would accept it.

Per test, ``@pytest.mark.aiocop(allow=[...], mode=..., at_call=..., min_weight=...)``
configures the check and ``@pytest.mark.no_aiocop`` skips it. The ``aiocop_strict`` fixture
checks only a block (``async with aiocop_strict: ...``), whether or not ``--aiocop`` is given.
Allow rules also come from ``[tool.aiocop] allow = [...]`` in the rootdir's ``pyproject.toml``
and from ``AIOCOP_ALLOW``; the rules that never matched are listed at the end of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import sys
import threading
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Optional, TypeVar, Union

import pytest

import aiocop
from aiocop import _aiocop
from aiocop._rules import make_rule
from aiocop._setup import DEFAULT_THRESHOLD_MS
from aiocop.types.events import BlockingEventInfo

__all__ = ["AiocopStrict", "SettingsError", "Violation", "format_report"]

_T = TypeVar("_T")

#: The logger of warn mode: aiocop's own, so ``logging.getLogger("aiocop")`` configures it.
_LOG = logging.getLogger("aiocop")

_MODES = ("raise", "warn")
_DEFAULT_MODE = "raise"
#: aiocop's own default slow-task threshold.
_DEFAULT_THRESHOLD_MS = float(DEFAULT_THRESHOLD_MS)
#: The ``@pytest.mark.aiocop`` keyword arguments.
_MARKER_KWARGS = frozenset({"allow", "mode", "at_call", "min_weight"})

_INI_HELP = {
    "aiocop": "check async tests for blocking calls on the event loop (like --aiocop)",
    "aiocop_mode": "what a blocking call does to a test: raise (fail it) or warn (log it)",
    "aiocop_threshold_ms": "fail loop steps this many milliseconds or longer (also aiocop's "
    f"slow-task threshold, default {_DEFAULT_THRESHOLD_MS:g}); unset: only blocking calls fail "
    "tests",
}
_MARKERS = (
    "aiocop(allow=[...], mode='raise'|'warn', at_call=False, "
    f"min_weight={aiocop.WEIGHT_MODERATE}): configure aiocop's blocking-call check of this test "
    "(allow: rule specs such as 'event=open,module=app.*')",
    "no_aiocop: do not check this test for blocking calls on the event loop (aiocop)",
)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class _Settings:
    """How one test (or one strict block) is checked."""

    mode: str = _DEFAULT_MODE
    #: Raise ``BlockingCallError`` at the call (raise mode); None: the default of the place
    #: (off for a whole test, on in an ``aiocop_strict`` block).
    at_call: Optional[bool] = None
    min_weight: int = aiocop.WEIGHT_MODERATE
    allow: tuple[Union[str, Mapping[str, Any]], ...] = ()


@dataclass
class _MarkerRuleUse:
    """How often a rule given by ``@pytest.mark.aiocop(allow=...)`` matched, over the session."""

    hits: int = 0
    tests: list[str] = field(default_factory=list)
    tracked: bool = False


@dataclass
class _PluginState:
    """The plugin's per-session state (``config.stash``)."""

    enabled: bool
    mode: str
    threshold_ms: float
    #: The threshold was given (option or ini): loop steps over it fail a test.
    threshold_given: bool = False
    setup_done: bool = False
    detection_done: bool = False
    #: Loop steps this long or longer fail a test (raise mode) or are logged (warn mode);
    #: None: only blocking calls are checked.
    slow_step_ms: Optional[float] = None
    #: Said in the terminal summary: which slow-task threshold is in force, when not the
    #: plugin's own.
    threshold_note: Optional[str] = None
    #: Warn mode: the call sites logged, by event name and site.
    warned_sites: dict[tuple[str, str], Violation] = field(default_factory=dict)
    marker_rules: dict[str, _MarkerRuleUse] = field(default_factory=dict)
    #: Tests deselected (``-k``, ``-m``): their rules' calls did not run.
    deselected: int = 0


_STATE_KEY = pytest.StashKey[_PluginState]()


def _state(config: pytest.Config) -> _PluginState:
    return config.stash[_STATE_KEY]


class SettingsError(ValueError):
    """A bad ``@pytest.mark.aiocop``, ``aiocop_strict(...)`` or aiocop option value."""


def _mode_value(value: object, where: str) -> str:
    if value not in _MODES:
        raise SettingsError(f"{where} must be 'raise' or 'warn', got {value!r}")
    return str(value)


def _threshold_value(value: object, where: str) -> float:
    try:
        threshold = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SettingsError(f"{where} must be a number of milliseconds, got {value!r}") from None
    if not math.isfinite(threshold) or threshold < 0:
        raise SettingsError(f"{where} must be a finite number >= 0, got {value!r}")
    return threshold


def _at_call_value(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{where}: at_call must be True or False, got {value!r}")
    return value


def _read_state(config: pytest.Config) -> _PluginState:
    """The plugin's settings from the command line, falling back to the ini file."""
    try:
        return _read_state_or_raise(config)
    except SettingsError as exc:
        raise pytest.UsageError(f"aiocop: {exc}") from None


def _read_state_or_raise(config: pytest.Config) -> _PluginState:
    enabled = bool(config.getoption("aiocop") or config.getini("aiocop"))
    mode_opt = config.getoption("aiocop_mode")
    if mode_opt is not None:
        mode = _mode_value(mode_opt, "--aiocop-mode")
    else:
        mode = _mode_value(config.getini("aiocop_mode") or _DEFAULT_MODE, "ini option aiocop_mode")
    threshold_opt = config.getoption("aiocop_threshold_ms")
    ini = config.getini("aiocop_threshold_ms")
    if threshold_opt is not None:
        threshold = _threshold_value(threshold_opt, "--aiocop-threshold-ms")
    elif ini:
        threshold = _threshold_value(ini, "ini option aiocop_threshold_ms")
    else:
        threshold = _DEFAULT_THRESHOLD_MS
    return _PluginState(
        enabled=enabled,
        mode=mode,
        threshold_ms=threshold,
        threshold_given=threshold_opt is not None or bool(ini),
    )


def _settings_for(node: pytest.Item, state: _PluginState) -> _Settings:
    """The session defaults overridden by the node's ``aiocop`` markers.

    Allow rules accumulate from every level (module, class, function); ``mode``, ``at_call``
    and ``min_weight`` come from the closest marker that sets them.
    """
    mode: Optional[str] = None
    at_call: Optional[bool] = None
    min_weight: Optional[int] = None
    allow: list[Union[str, Mapping[str, Any]]] = []
    for marker in node.iter_markers("aiocop"):  # closest first
        where = f"@pytest.mark.aiocop on {node.nodeid}"
        if marker.args:
            raise SettingsError(f"{where}: takes keyword arguments only, got {marker.args!r}")
        unknown = set(marker.kwargs) - _MARKER_KWARGS
        if unknown:
            raise SettingsError(
                f"{where}: unknown argument(s) {sorted(unknown)}; expected {sorted(_MARKER_KWARGS)}"
            )
        kwargs = marker.kwargs
        if mode is None and kwargs.get("mode") is not None:
            mode = _mode_value(kwargs["mode"], f"{where}: mode")
        if at_call is None and kwargs.get("at_call") is not None:
            at_call = _at_call_value(kwargs["at_call"], where)
        if min_weight is None and kwargs.get("min_weight") is not None:
            min_weight = _min_weight_value(kwargs["min_weight"], where)
        allow.extend(_allow_specs(kwargs.get("allow"), where))
    return _Settings(
        mode=state.mode if mode is None else mode,
        at_call=at_call,
        min_weight=aiocop.WEIGHT_MODERATE if min_weight is None else min_weight,
        allow=tuple(allow),
    )


def _min_weight_value(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingsError(f"{where}: min_weight must be an int >= 0, got {value!r}")
    return value


def _allow_specs(value: object, where: str) -> list[Union[str, Mapping[str, Any]]]:
    """``allow=`` of a marker: one rule or a list of them (spec strings or field mappings)."""
    if value is None:
        return []
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise SettingsError(f"{where}: allow must be a list of rule specs, got {value!r}")
    for spec in value:
        if not isinstance(spec, (str, Mapping)):
            raise SettingsError(
                f"{where}: an allow rule is a spec string or a dict of fields, got {spec!r}"
            )
        try:
            make_rule(spec, source="marker")  # parses it; not in force, not reported
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{where}: {exc}") from None
    return list(value)


# --------------------------------------------------------------------------- setup


class _RepeatSetupFilter(logging.Filter):
    """Drops aiocop's "called more than once" warnings while the plugin calls the setup."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called more than once" not in record.getMessage()


def _ensure_setup(config: pytest.Config) -> None:
    """Call aiocop's once-per-process setup functions (not ``detect_slow_tasks``: see
    :func:`_ensure_detection`), once, quietly.

    Setup the test suite already did (a conftest calling them first) wins: aiocop ignores the
    repeat calls, and the plugin hides the warnings they would log. A bad ``AIOCOP_ALLOW`` or
    ``AIOCOP_REDACT`` is a usage error.
    """
    state = _state(config)
    if state.setup_done:
        return
    state.setup_done = True
    quiet = _RepeatSetupFilter()
    _LOG.addFilter(quiet)
    try:
        if not aiocop.get_patched_functions():
            aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()  # reads AIOCOP_ALLOW and AIOCOP_REDACT
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"aiocop: {exc}") from None
    finally:
        _LOG.removeFilter(quiet)
    # Suggested `path=` rules are relative to the project: pytest's rootdir.
    _aiocop._set_project_root(str(config.rootpath))


def _ensure_detection(config: pytest.Config) -> None:
    """Configure slow-task detection before the first checked test body runs — after the
    session's fixtures, so that a suite which calls ``detect_slow_tasks()`` itself (in a
    conftest or a session fixture, as aiocop 1.2.1's CI recipe does) keeps its threshold.

    When the threshold was given to the plugin (``--aiocop-threshold-ms``, ini), loop steps of
    that length or longer fail a test (raise mode) or are logged (warn mode); when the suite's
    own threshold is in force instead and differs, the terminal summary says so.
    """
    _ensure_setup(config)
    state = _state(config)
    if state.detection_done:
        return
    state.detection_done = True
    if not _aiocop._detection_configured():
        quiet = _RepeatSetupFilter()
        _LOG.addFilter(quiet)
        try:
            aiocop.detect_slow_tasks(threshold_ms=state.threshold_ms)
        finally:
            _LOG.removeFilter(quiet)
    in_force = aiocop.get_slow_task_threshold_ms()
    if not state.threshold_given:
        return
    # Slower steps are seen only above the threshold in force: the stricter of the two.
    state.slow_step_ms = max(state.threshold_ms, in_force)
    if in_force != state.threshold_ms:
        state.threshold_note = (
            f"the slow-task threshold in force is {in_force:g} ms, set by the suite's own "
            f"aiocop.detect_slow_tasks(); loop steps of {state.slow_step_ms:g} ms or more fail "
            f"tests (asked: {state.threshold_ms:g} ms)"
        )


def _load_pyproject_rules(config: pytest.Config) -> None:
    """Load ``[tool.aiocop] allow = [...]`` from the rootdir's ``pyproject.toml``, if any."""
    pyproject = Path(config.rootpath) / "pyproject.toml"
    if not pyproject.is_file():
        return
    if any(rule.source == "pyproject" for rule in aiocop.allow_rules()):
        return  # the suite loaded them itself
    try:
        aiocop.load_allow_rules(pyproject)
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"aiocop: bad [tool.aiocop] in {pyproject}: {exc}") from None


# --------------------------------------------------------------------------- hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--aiocop``, ``--aiocop-mode``, ``--aiocop-threshold-ms`` and their ini options."""
    group = parser.getgroup("aiocop", "aiocop: blocking calls on the event loop")
    group.addoption(
        "--aiocop",
        action="store_true",
        default=None,
        help="fail async tests whose body blocks the event loop (ini: aiocop = true)",
    )
    group.addoption(
        "--aiocop-mode",
        choices=_MODES,
        default=None,
        help="raise: fail the test (default); warn: log each blocking call site once",
    )
    group.addoption(
        "--aiocop-threshold-ms",
        type=float,
        default=None,
        metavar="MS",
        help="fail loop steps of MS milliseconds or more, not only blocking calls (also "
        f"aiocop's slow-task threshold, default {_DEFAULT_THRESHOLD_MS:g})",
    )
    parser.addini("aiocop", _INI_HELP["aiocop"], type="bool", default=False)
    parser.addini("aiocop_mode", _INI_HELP["aiocop_mode"], default=_DEFAULT_MODE)
    parser.addini("aiocop_threshold_ms", _INI_HELP["aiocop_threshold_ms"], default="")


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; when on, set aiocop up and load the pyproject rules."""
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    state = _read_state(config)
    config.stash[_STATE_KEY] = state
    if state.enabled:
        _ensure_setup(config)
        _load_pyproject_rules(config)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Check the ``aiocop`` markers of the tests the plugin will see: a bad one is a usage error."""
    if _STATE_KEY not in config.stash:
        return
    state = _state(config)
    errors: list[str] = []
    for item in items:
        if state.enabled or "aiocop_strict" in getattr(item, "fixturenames", ()):
            try:
                _settings_for(item, state)
            except SettingsError as exc:
                errors.append(str(exc))
    if errors:
        raise pytest.UsageError("aiocop: bad marker(s):\n  " + "\n  ".join(errors))


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Count deselected tests: the unused-rule report says when part of the suite did not run."""
    if items and _STATE_KEY in items[0].config.stash:
        _state(items[0].config).deselected += len(items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Run the body of an async test wrapped in aiocop's check (fixtures are not in it)."""
    original = _monitoring_target(item)
    if original is None:
        yield
        return
    assert isinstance(item, pytest.Function)
    _ensure_detection(item.config)
    state = _state(item.config)
    # A test with aiocop_strict blocks is checked in them only; otherwise the body is checked
    # (the plugin is on, and no_aiocop is not set: see _monitoring_target).
    check = state.enabled and "aiocop_strict" not in item.fixturenames
    if item.get_closest_marker("no_aiocop") is not None:
        check = False
    item.obj = _monitored(original, item, _settings_for(item, state), check=check)
    try:
        yield
    finally:
        item.obj = original


def _monitoring_target(item: pytest.Item) -> Optional[Callable[..., Awaitable[Any]]]:
    """The test's coroutine function, if the plugin has something to do for this test."""
    if not isinstance(item, pytest.Function) or _STATE_KEY not in item.config.stash:
        return None
    state = _state(item.config)
    uses_strict = "aiocop_strict" in item.fixturenames
    if not state.enabled and not uses_strict:
        return None
    if item.get_closest_marker("no_aiocop") is not None and not uses_strict:
        return None
    obj = item.obj
    if not inspect.iscoroutinefunction(obj):
        return None
    return obj  # type: ignore[no-any-return]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """List the allow rules that never matched (and, in warn mode, how many sites were logged)."""
    if _STATE_KEY not in config.stash:
        return
    state = _state(config)
    if not state.enabled:
        return
    lines: list[str] = []
    try:
        # Marker rules are the plugin's own to report: per spec, over the tests that ran.
        unused = [r for r in aiocop.unused_allow_rules() if r.source != "marker"]
    except Exception:  # noqa: BLE001 - a summary must never break the session's exit
        unused = []
    for rule in unused:
        lines.append(f"{rule.spec}  (from {rule.source})")
    for spec, use in sorted(state.marker_rules.items()):
        if use.tracked and use.hits == 0:
            tests = ", ".join(use.tests[:3]) + (" ..." if len(use.tests) > 3 else "")
            lines.append(f"{spec}  (from @pytest.mark.aiocop on {tests})")
    if lines:
        terminalreporter.write_sep("-", "aiocop: unused allow rules")
        for line in lines:
            terminalreporter.write_line(line)
        if unused and state.deselected:
            terminalreporter.write_line(
                f"(only part of the suite ran: {state.deselected} test(s) deselected; a rule "
                "for their calls shows as unused here)"
            )
    if state.warned_sites:
        terminalreporter.write_sep("-", "aiocop: blocking calls (warn mode)")
        terminalreporter.write_line(
            f"{len(state.warned_sites)} call site(s), each logged once on the 'aiocop' logger:"
        )
        for violation in state.warned_sites.values():
            terminalreporter.write_line(_summary_line(violation))
    if state.threshold_note:
        terminalreporter.write_sep("-", "aiocop: threshold")
        terminalreporter.write_line(state.threshold_note)


# --------------------------------------------------------------------------- violations


@dataclass(frozen=True)
class Violation:
    """One blocking call found on the loop: the report's line and the allow rule for it."""

    event: str
    event_name: str
    weight: int
    #: The user's call site (the innermost frame of the project's own code).
    site: str
    #: The trace up to the project's outermost frame (the test), as aiocop reports it.
    trace: str
    task_name: Optional[str]
    elapsed_ms: float
    suggested_rule: Optional[str]
    #: A loop step over the threshold (``slow_step``), not a blocking call (``call``).
    kind: str = "call"

    @property
    def key(self) -> tuple[str, str]:
        """What makes a call site: the event name and the (user's) stack that made it."""
        return (self.event_name, self.trace or self.site)

    @classmethod
    def from_record(cls, record: BlockingEventInfo, elapsed_ms: float) -> Violation:
        """The violation of one ``blocking_events`` record of a ``SlowTaskEvent``: the fields
        aiocop reports, read as they are (never parsed out of the displayed text)."""
        severity = record.get("severity")
        return cls(
            event=str(record.get("event", "?")),
            event_name=str(record.get("event_name", "?")),
            weight=_aiocop.DEFAULT_WEIGHT if severity is None else int(severity),
            site=str(record.get("site") or record.get("entry_point") or "unknown"),
            trace=str(record.get("user_trace") or record.get("trace") or ""),
            task_name=record.get("task_name"),
            elapsed_ms=elapsed_ms,
            suggested_rule=record.get("suggested_rule"),
        )

    @classmethod
    def slow_step(cls, event: Any, threshold_ms: float) -> Violation:
        """A loop step of ``threshold_ms`` or longer that no reported blocking call explains:
        where the CPU sampler saw it most, else which task ran it."""
        samples = list(event.cpu_stack_samples)
        owner = event.coroutine or "a callback"
        site = samples[0]["entry_point"] if samples else f"{owner} (no stack sample)"
        return cls(
            event=f"a loop step of {float(event.elapsed_ms):.1f} ms, over the "
            f"{threshold_ms:g} ms threshold",
            event_name="slow loop step",
            weight=0,
            site=site,
            trace=samples[0]["trace"] if samples else "",
            task_name=event.task_name,
            elapsed_ms=float(event.elapsed_ms),
            suggested_rule=None,
            kind="slow_step",
        )


def format_report(violations: Iterable[Violation], where: str, settings: _Settings) -> str:
    """The failure message: each blocking call site (with its count), heaviest first."""
    counts: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], Violation] = {}
    for violation in violations:
        counts[violation.key] = counts.get(violation.key, 0) + 1
        first.setdefault(violation.key, violation)
    sites = sorted(first.values(), key=lambda v: (v.kind != "call", -v.weight))
    calls = sum(n for key, n in counts.items() if first[key].kind == "call")
    steps = sum(counts.values()) - calls
    threshold = aiocop.get_slow_task_threshold_ms()
    found = [f"{calls} blocking call(s)"] if calls else []
    if steps:
        found.append(f"{steps} slow loop step(s)")
    lines = [
        f"aiocop: {' and '.join(found)} on the event loop in {where} "
        f"(weight >= {settings.min_weight} is reported)",
    ]
    for number, violation in enumerate(sites, 1):
        times = counts[violation.key]
        lines.append("")
        if violation.kind == "slow_step":
            lines.append(f"{number}. {violation.event}" + (f"  x{times}" if times > 1 else ""))
            lines.append(f"   at:    {violation.site}")
            if violation.trace and violation.trace != violation.site:
                lines.append(f"   trace: {violation.trace}")
            continue
        lines.append(
            f"{number}. {violation.event}  weight {violation.weight} "
            f"({_aiocop.weight_label(violation.weight)})" + (f"  x{times}" if times > 1 else "")
        )
        lines.append(f"   at:    {violation.site}")
        if violation.trace and violation.trace != violation.site:
            lines.append(f"   trace: {violation.trace}")
        task = f"task {violation.task_name}, " if violation.task_name else ""
        lines.append(
            f"   in:    {task}a loop step of {violation.elapsed_ms:.1f} ms "
            f"(slow-task threshold {threshold:g} ms)"
        )
        if violation.suggested_rule:
            lines.append(f"   allow: {violation.suggested_rule!r}")
    lines.append("")
    lines.append(
        "Accept a call with @pytest.mark.aiocop(allow=['<rule>']), [tool.aiocop] allow = [...] "
        "in pyproject.toml or AIOCOP_ALLOW; skip a test with @pytest.mark.no_aiocop."
    )
    return "\n".join(lines)


def _summary_line(violation: Violation) -> str:
    """One warned site in the terminal summary."""
    if violation.kind == "slow_step":
        return f"{violation.event}  at {violation.site}"
    rule = f"  allow: {violation.suggested_rule!r}" if violation.suggested_rule else ""
    return f"{violation.event}  weight {violation.weight}  at {violation.site}{rule}"


def _warn(violation: Violation, where: str, state: _PluginState) -> None:
    """Warn mode: log a blocking call once per call site (event and site) for the session."""
    key = (violation.event_name, violation.site)
    if key in state.warned_sites:
        return
    state.warned_sites[key] = violation
    if violation.kind == "slow_step":
        _LOG.warning(
            "%s in %s\n  at:    %s", violation.event, where, violation.trace or violation.site
        )
        return
    _LOG.warning(
        "blocking call %s (weight %d) on the event loop in %s\n  at:    %s\n  trace: %s%s",
        violation.event,
        violation.weight,
        where,
        violation.site,
        violation.trace or violation.site,
        f"\n  allow: {violation.suggested_rule!r}" if violation.suggested_rule else "",
    )


# --------------------------------------------------------------------------- collecting


class _Collector:
    """Monitoring of the running loop, and the blocking calls of the handles it delivers.

    ``start()`` (inside the loop) activates aiocop, which wraps the running loop; after the
    current loop step has ended, ``collect()`` registers a slow-task callback that keeps the
    ``io_blocking`` records of weight ``min_weight`` or more reaching this loop's thread (in
    warn mode it logs them instead). ``stop()`` delivers what is pending (``aiocop.flush()``),
    unregisters the callback and turns monitoring back off unless it was on before.
    """

    def __init__(self, settings: _Settings, where: str, state: _PluginState) -> None:
        self.settings = settings
        self.where = where
        self.state = state
        self.violations: list[Violation] = []
        self._thread: Optional[int] = None
        self._was_active = False
        self._collecting = False

    def start(self) -> bool:
        """Start on the running asyncio loop; False when there is none (trio, no loop)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._thread = threading.get_ident()
        self._was_active = aiocop.is_monitoring_active()
        aiocop.activate()
        return True

    def collect(self) -> None:
        """Collect from now on; what was delivered before (earlier loop steps) is not ours."""
        aiocop.flush()
        aiocop.register_slow_task_callback(self._on_event)
        self._collecting = True

    def stop(self) -> None:
        """Deliver pending events, stop collecting, restore the activation state."""
        if self._thread is None:
            return
        try:
            if self._collecting:
                aiocop.flush()
        finally:
            if self._collecting:
                aiocop.unregister_slow_task_callback(self._on_event)
                self._collecting = False
            if not self._was_active:
                aiocop.deactivate()
            self._thread = None

    def _on_event(self, event: Any) -> None:
        if threading.get_ident() != self._thread:
            return
        found: list[Violation] = []
        for record in event.blocking_events:  # empty for a CPU-bound step
            severity = record.get("severity")
            weight = _aiocop.DEFAULT_WEIGHT if severity is None else severity
            if weight >= self.settings.min_weight:
                found.append(Violation.from_record(record, float(event.elapsed_ms)))
        slow = self.state.slow_step_ms
        if not found and slow is not None and event.elapsed_ms >= slow:
            found.append(Violation.slow_step(event, slow))
        for violation in found:
            if self.settings.mode == "warn":
                _warn(violation, self.where, self.state)
            else:
                self.violations.append(violation)

    def report(self) -> Optional[str]:
        """The failure message, if anything was collected (raise mode)."""
        if not self.violations:
            return None
        return format_report(self.violations, self.where, self.settings)


@contextlib.contextmanager
def _allowing(settings: _Settings, state: _PluginState, where: str) -> Generator[None, None, None]:
    """Enter the marker's allow rules (scoped to the current context), and count their hits."""
    with contextlib.ExitStack() as stack:
        entered: list[tuple[str, Any]] = []
        for spec in settings.allow:
            rule = stack.enter_context(aiocop.allowing(spec, source="marker"))
            entered.append((str(rule.spec), rule))
        try:
            yield
        finally:
            for spec, rule in entered:
                use = state.marker_rules.setdefault(spec, _MarkerRuleUse())
                use.tests.append(where)
                hits = getattr(rule, "hits", None)
                if isinstance(hits, int):
                    use.tracked = True
                    use.hits += hits


def _at_call(settings: _Settings, default: bool) -> contextlib.AbstractContextManager[Any]:
    """``raise_on_violations(at_call=True)`` when on (raise mode only), else nothing.

    Warn mode never raises: its collector logs the calls once the loop delivers them.
    """
    at_call = default if settings.at_call is None else settings.at_call
    if at_call and settings.mode == "raise":
        return aiocop.raise_on_violations(
            at_call=True, min_weight=settings.min_weight, mode="raise"
        )
    return contextlib.nullcontext()


async def _next_handle() -> None:
    """End the current loop step: what follows runs in a new (monitored) handle."""
    await asyncio.sleep(0)


def _monitored(
    original: Callable[..., Awaitable[_T]],
    item: pytest.Function,
    settings: _Settings,
    *,
    check: bool,
) -> Callable[..., Awaitable[_T]]:
    """``original`` wrapped so that its body runs monitored on the test's own loop.

    With ``check`` the blocking calls of the body fail the test (raise mode) or are logged
    (warn mode); without it the body only runs monitored (the ``aiocop_strict`` blocks of the
    test do the checking).
    """
    state = _state(item.config)
    where = item.nodeid

    @functools.wraps(original)
    async def _aiocop_monitored_test(*args: Any, **kwargs: Any) -> _T:
        __tracebackhide__ = True
        collector = _Collector(settings, where, state)
        if not collector.start():
            if check:
                item.warn(
                    pytest.PytestWarning(
                        "aiocop checks asyncio loops only: this test ran without a running "
                        "asyncio loop and was not checked"
                    )
                )
            return await original(*args, **kwargs)
        raised: Optional[BaseException] = None
        try:
            await _next_handle()  # the body starts in a monitored handle
            if not check:  # its aiocop_strict blocks do the checking
                return await original(*args, **kwargs)
            collector.collect()
            with _allowing(settings, state, where), _at_call(settings, default=False):
                return await original(*args, **kwargs)
        except BaseException as exc:
            raised = exc
            raise
        finally:
            try:
                if not _exiting_hard(raised):
                    await _next_handle()  # the body's last handle ends, its events are sent
            finally:
                collector.stop()
            report = collector.report()
            if report is not None:
                if raised is not None:
                    item.add_report_section("call", "aiocop", report)
                else:
                    pytest.fail(report, pytrace=False)

    return _aiocop_monitored_test


def _exiting_hard(exc: Optional[BaseException]) -> bool:
    """Whether ``exc`` forbids awaiting on the way out (cancellation, interpreter exit)."""
    return isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit))


# --------------------------------------------------------------------------- aiocop_strict


class AiocopStrict:
    """Checks only the code inside its block for blocking calls on the running loop.

    Use it inside the test's running loop, preferably as ``async with``::

        async def test_view(client, aiocop_strict):
            async with aiocop_strict:
                response = await client.get("/items")

    In raise mode a blocking call made by the block's own code (its task and the tasks it
    starts) raises :class:`aiocop.BlockingCallError` where it happens (unless ``at_call=False``),
    and at the end of the block the blocking calls of every loop step that ended inside it (a
    server task's too) fail the test with the report. In warn mode they are logged once per
    call site. The test's ``@pytest.mark.aiocop`` settings apply; ``aiocop_strict(allow=[...],
    mode=..., at_call=..., min_weight=...)`` returns a copy with other settings.

    ``async with`` ends the loop step on entry and on exit, so the block is exactly what is
    checked. With a plain ``with`` the step running at entry is checked whole, and the one
    still running at exit only through ``at_call`` (its events come after the block).
    """

    def __init__(self, item: pytest.Item, settings: _Settings, state: _PluginState) -> None:
        self._item = item
        self._settings = settings
        self._state = state
        self._collector: Optional[_Collector] = None
        self._stack: Optional[contextlib.ExitStack] = None
        self._where = item.nodeid

    def __call__(
        self,
        *,
        allow: Union[str, Mapping[str, Any], Iterable[Union[str, Mapping[str, Any]]], None] = None,
        mode: Optional[str] = None,
        at_call: Optional[bool] = None,
        min_weight: Optional[int] = None,
    ) -> AiocopStrict:
        """A strict block with these settings over the test's (``allow`` is added)."""
        where = f"aiocop_strict() in {self._item.nodeid}"
        extra = _allow_specs(list(allow) if isinstance(allow, (set, frozenset)) else allow, where)
        base = self._settings
        settings = _Settings(
            mode=base.mode if mode is None else _mode_value(mode, f"{where}: mode"),
            at_call=base.at_call if at_call is None else _at_call_value(at_call, where),
            min_weight=(
                base.min_weight if min_weight is None else _min_weight_value(min_weight, where)
            ),
            allow=base.allow + tuple(extra),
        )
        return AiocopStrict(self._item, settings, self._state)

    # -- the block

    def _enter(self, caller: str) -> None:
        if self._collector is not None:
            raise RuntimeError("aiocop_strict blocks do not nest; use one block at a time")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "aiocop_strict must be entered inside the running asyncio loop "
                "(in an async test, or a coroutine the test runs)"
            ) from None
        self._where = f"the aiocop_strict block at {caller} ({self._item.nodeid})"
        collector = _Collector(self._settings, self._where, self._state)
        collector.start()
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(_allowing(self._settings, self._state, self._item.nodeid))
            stack.enter_context(_at_call(self._settings, default=True))
        except BaseException:
            stack.close()
            collector.stop()
            raise
        self._collector, self._stack = collector, stack

    def _exit(self, exc: Optional[BaseException]) -> None:
        __tracebackhide__ = True
        collector, stack = self._collector, self._stack
        self._collector = self._stack = None
        assert collector is not None and stack is not None
        try:
            stack.close()
        finally:
            collector.stop()
        report = collector.report()
        if report is None:
            return
        if exc is not None:
            self._item.add_report_section("call", "aiocop", report)
        else:
            pytest.fail(report, pytrace=False)

    def __enter__(self) -> AiocopStrict:
        self._enter(_caller(2))
        assert self._collector is not None
        self._collector.collect()
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        __tracebackhide__ = True
        self._exit(exc)

    async def __aenter__(self) -> AiocopStrict:
        self._enter(_caller(2))
        await _next_handle()  # the block starts in a new handle
        assert self._collector is not None
        self._collector.collect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        __tracebackhide__ = True
        if not _exiting_hard(exc):
            await _next_handle()  # the block's last handle ends before the check
        self._exit(exc)


def _caller(depth: int) -> str:
    """``file:line`` of the frame ``depth`` levels up (where the block is entered)."""
    frame = sys._getframe(depth)
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"


@pytest.fixture
def aiocop_strict(request: pytest.FixtureRequest) -> AiocopStrict:
    """A context manager that checks only its block for blocking calls on the running loop.

    Works with or without ``--aiocop`` (aiocop is set up on first use); the test's
    ``@pytest.mark.aiocop`` settings apply. See :class:`AiocopStrict`.
    """
    __tracebackhide__ = True
    config = request.config
    if _STATE_KEY not in config.stash:  # plugin configured late (pytester in-process runs)
        config.stash[_STATE_KEY] = _read_state(config)
    _ensure_detection(config)
    state = _state(config)
    item = request.node
    try:
        settings = _settings_for(item, state)
    except SettingsError as exc:
        pytest.fail(str(exc), pytrace=False)
    return AiocopStrict(item, settings, state)
