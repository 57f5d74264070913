"""The plugin's settings: its options, ini values and markers, their checks, and the session state.

Session defaults come from the command line and the ini file (:func:`_read_state`); a test's
``@pytest.mark.aiocop`` markers override them (:func:`_settings_for`), and so do the
arguments of ``aiocop_strict(...)``. A bad value is a :class:`SettingsError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import pytest

import aiocop
from aiocop._rules import make_rule
from aiocop._setup import DEFAULT_THRESHOLD_MS
from aiocop.pytest_plugin._sites import SitesState
from aiocop.pytest_plugin._violation import Violation

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


def _add_options(parser: pytest.Parser) -> None:
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
    #: The blocking sites seen, the baseline and the report (see ``_sites``); None when off.
    sites: Optional[SitesState] = None


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
