"""Allow rules: blocking calls that are accepted — not reported, never raised.

A rule matches on any of the event name, and the module, file path or function (qualname, or
``module.qualname``) of the calling frame; every field is a glob. ``distribution`` names an
installed distribution with an optional PEP 440 specifier set (``"botocore<2"``): the rule
matches when any frame of the call belongs to it, at a version the specifier accepts. Frame fields are checked
against the first frame that is not library code (``frames="first"``, the default) or against
any frame (``frames="any"``). As a string: ``"event=open,module=myapp.legacy.*"``; a bare value
is an event glob (``"time.sleep"``).

Rules come from ``aiocop.allow(...)``, from ``aiocop.allowing(...)`` (scoped to the current
context), from the ``AIOCOP_ALLOW`` environment variable (specs separated by ``;``, read by
``start_blocking_io_detection()``) and from ``[tool.aiocop] allow = [...]`` in
``pyproject.toml`` (``load_allow_rules``, which the pytest plugin calls).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Optional, Union

from aiocop import _aiocop
from aiocop._aiocop import AllowRule, allow_rules, clear_allow_rules, disallow, suggest_allow_rule
from aiocop._aiocop import unused_allow_rules
from aiocop._pyproject import read_table

#: Rules scoped to the current context (``allowing``), read natively by the audit hook.
_scoped_rules: ContextVar[tuple[AllowRule, ...]] = ContextVar("aiocop_scoped_rules", default=())

_FIELDS = ("event", "module", "path", "function", "distribution")


def make_rule(
    spec: Union[str, Mapping[str, Any], AllowRule, None] = None,
    *,
    event: Optional[str] = None,
    module: Optional[str] = None,
    path: Optional[str] = None,
    function: Optional[str] = None,
    frames: str = "first",
    source: str = "api",
    distribution: Optional[str] = None,
) -> AllowRule:
    """An ``AllowRule`` (not in force). ``spec`` may be a spec string, a mapping of fields or a
    rule. A malformed rule is a ``ValueError`` naming it (a bad specifier: ``distribution``)."""
    if isinstance(spec, AllowRule):
        return spec
    if isinstance(spec, Mapping):
        unknown = set(spec) - {*_FIELDS, "frames"}
        if unknown:
            raise ValueError(
                f"malformed allow rule {dict(spec)!r}: unknown keys {sorted(unknown)}; "
                f"expected some of {[*_FIELDS, 'frames']}"
            )
        fields = {k: spec.get(k) for k in _FIELDS}
        for key, value in fields.items():
            if value is not None and not isinstance(value, str):
                raise ValueError(f"malformed allow rule {dict(spec)!r}: {key} must be a string")
        scope = _frames_value(spec.get("frames", "first"), f"allow rule {dict(spec)!r}: frames")
        return _aiocop._make_rule(None, {**fields, "frames": scope, "source": source})
    if spec is not None and not isinstance(spec, str):
        raise TypeError(f"rule must be a spec string, a mapping or an AllowRule, got {type(spec).__name__}")
    fields = {
        "event": event,
        "module": module,
        "path": path,
        "function": function,
        "distribution": distribution,
    }
    for key, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{key} must be a string, got {type(value).__name__}")
    return _aiocop._make_rule(spec, {**fields, "frames": _frames_value(frames), "source": source})


def _frames_value(value: object, name: str = "frames") -> str:
    """``frames``: ``"first"`` or ``"any"``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be 'first' or 'any', got {type(value).__name__}")
    if value not in ("first", "any"):
        raise ValueError(f"{name} must be 'first' or 'any', got {value!r}")
    return value


def allow(
    spec: Union[str, Mapping[str, Any], AllowRule, None] = None,
    *,
    event: Optional[str] = None,
    module: Optional[str] = None,
    path: Optional[str] = None,
    function: Optional[str] = None,
    frames: str = "first",
    source: str = "api",
    distribution: Optional[str] = None,
) -> AllowRule:
    """Allow the blocking calls a rule matches, on every thread, from now on."""
    rule = make_rule(
        spec,
        event=event,
        module=module,
        path=path,
        function=function,
        frames=frames,
        source=source,
        distribution=distribution,
    )
    _aiocop._activate_rule(rule)
    return rule


@contextmanager
def allowing(
    spec: Union[str, Mapping[str, Any], AllowRule, None] = None,
    *,
    event: Optional[str] = None,
    module: Optional[str] = None,
    path: Optional[str] = None,
    function: Optional[str] = None,
    frames: str = "first",
    source: str = "api",
    distribution: Optional[str] = None,
) -> Iterator[AllowRule]:
    """Allow the blocking calls a rule matches inside the ``with`` block, in the current
    context only (other tasks are not affected)."""
    rule = make_rule(
        spec,
        event=event,
        module=module,
        path=path,
        function=function,
        frames=frames,
        source=source,
        distribution=distribution,
    )
    _aiocop._enforcement_in_use()  # before the first set: the audit hook skips unused variables
    _aiocop._enter_scoped_rule(rule)  # in force now: it joins the unused-rule report
    token = _scoped_rules.set(_scoped_rules.get() + (rule,))
    try:
        yield rule
    finally:
        _scoped_rules.reset(token)


def parse_rule_list(text: str, source: str) -> list[AllowRule]:
    """Rules from ``;``- or newline-separated specs (the ``AIOCOP_ALLOW`` format), parsed by
    aiocop-events' ``rules::parse_rule_list``; a malformed spec is a ``ValueError`` naming it."""
    return _aiocop._parse_rule_list(text, source)


def allow_from_env(source: str = "env") -> list[AllowRule]:
    """Put the rules of ``AIOCOP_ALLOW`` in force (all or none: a malformed one raises)."""
    rules = parse_rule_list(os.environ.get("AIOCOP_ALLOW", ""), source)
    for rule in rules:
        _aiocop._activate_rule(rule)
    return rules


def load_allow_rules(pyproject: Union[str, "os.PathLike[str]"]) -> list[AllowRule]:
    """Put the rules of ``[tool.aiocop] allow = [...]`` of a ``pyproject.toml`` in force
    (specs or tables of fields). Returns them; a missing file or table gives none."""
    path = Path(pyproject)
    table = read_table(path)
    entries = table.get("allow", [])
    if not isinstance(entries, list):
        raise ValueError(f"[tool.aiocop] allow in {path} must be a list, got {type(entries).__name__}")
    rules = [make_rule(entry, source="pyproject") for entry in _as_rules(entries, path)]
    for rule in rules:
        _aiocop._activate_rule(rule)
    return rules


def _as_rules(entries: Iterable[Any], path: Path) -> Iterator[Union[str, Mapping[str, Any]]]:
    for entry in entries:
        if not isinstance(entry, (str, Mapping)):
            raise ValueError(f"malformed allow rule {entry!r} in {path}: expected a string or a table")
        yield entry


__all__ = [
    "AllowRule",
    "allow",
    "allowing",
    "allow_rules",
    "clear_allow_rules",
    "disallow",
    "load_allow_rules",
    "make_rule",
    "suggest_allow_rule",
    "unused_allow_rules",
]
