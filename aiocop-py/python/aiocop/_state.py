"""Raise-on-violations and the violation mode: ContextVars, so they are scoped to the task (and
context) that set them."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Optional

from aiocop import _aiocop
from aiocop.types.severity import WEIGHT_MODERATE

#: After-the-handle raising (aiocop 1.2.1's behaviour).
_raise_on_violations: ContextVar[bool] = ContextVar("aiocop_raise_on_violations", default=False)
#: Raising at the blocking call: the minimum weight, or None.
_raise_at_call: ContextVar[Optional[int]] = ContextVar("aiocop_raise_at_call", default=None)
#: "raise" or "warn" for this context, or None for the process-wide mode.
_mode: ContextVar[Optional[str]] = ContextVar("aiocop_mode", default=None)


def _check(at_call: object, min_weight: object, mode: object) -> tuple[bool, int, Optional[str]]:
    if not isinstance(at_call, bool):
        raise TypeError(f"at_call must be a bool, got {type(at_call).__name__}")
    if isinstance(min_weight, bool) or not isinstance(min_weight, int):
        raise TypeError(f"min_weight must be an int, got {type(min_weight).__name__}")
    if min_weight < 0:
        raise ValueError(f"min_weight must be >= 0, got {min_weight}")
    checked_mode = None if mode is None else _aiocop._check_mode(mode)
    return at_call, min_weight, checked_mode


def enable_raise_on_violations(
    at_call: bool = False, min_weight: int = WEIGHT_MODERATE, mode: Optional[str] = None
) -> None:
    """Raise on violations in the current context.

    By default (as aiocop 1.2.1) a handle that exceeded the threshold with a severity score of
    at least ``THRESHOLD_HIGH`` raises ``HighSeverityBlockingIoException`` out of the loop run.
    With ``at_call=True``, a blocking call weighing at least ``min_weight`` is stopped where it
    is made: it raises ``BlockingCallError`` inside the coroutine, and does not happen.
    ``mode="warn"`` logs each violation once per call site instead of raising.
    """
    at_call, min_weight, mode = _check(at_call, min_weight, mode)
    _aiocop._enforcement_in_use()  # before the first set: the audit hook skips unused variables
    _raise_on_violations.set(True)
    _raise_at_call.set(min_weight if at_call else None)
    _mode.set(mode)


def disable_raise_on_violations() -> None:
    """Stop raising for the current context."""
    _raise_on_violations.set(False)
    _raise_at_call.set(None)
    _mode.set(None)


def is_raise_on_violations_enabled() -> bool:
    """Whether raising is enabled in the current context."""
    return _raise_on_violations.get() is True


class raise_on_violations:
    """Context manager enabling raise-on-violations for the code inside it (see
    ``enable_raise_on_violations`` for the arguments)."""

    def __init__(
        self, at_call: bool = False, min_weight: int = WEIGHT_MODERATE, mode: Optional[str] = None
    ) -> None:
        self._at_call, self._min_weight, self._mode = _check(at_call, min_weight, mode)
        self._tokens: Optional[tuple[Token[bool], Token[Optional[int]], Token[Optional[str]]]] = None

    def __enter__(self) -> "raise_on_violations":
        _aiocop._enforcement_in_use()
        self._tokens = (
            _raise_on_violations.set(True),
            _raise_at_call.set(self._min_weight if self._at_call else None),
            _mode.set(self._mode),
        )
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._tokens is not None:
            flag, at_call, mode = self._tokens
            _mode.reset(mode)
            _raise_at_call.reset(at_call)
            _raise_on_violations.reset(flag)
            self._tokens = None


def set_mode(mode: str) -> None:
    """Set the process-wide violation mode: ``"raise"`` (default) or ``"warn"``."""
    _aiocop.set_mode(mode)


def get_mode() -> str:
    """The process-wide violation mode."""
    return _aiocop.get_mode()
