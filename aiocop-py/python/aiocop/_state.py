"""Raise-on-violations: a ContextVar, so it is scoped to the task (and context) that set it."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Optional

_raise_on_violations: ContextVar[bool] = ContextVar("aiocop_raise_on_violations", default=False)


def enable_raise_on_violations() -> None:
    """Raise ``HighSeverityBlockingIoException`` for high-severity handles of this context."""
    _raise_on_violations.set(True)


def disable_raise_on_violations() -> None:
    """Stop raising for this context."""
    _raise_on_violations.set(False)


def is_raise_on_violations_enabled() -> bool:
    """Whether raising is enabled in the current context."""
    return _raise_on_violations.get() is True


class raise_on_violations:
    """Context manager enabling raise-on-violations for the code inside it."""

    def __init__(self) -> None:
        self._token: Optional[Token[bool]] = None

    def __enter__(self) -> "raise_on_violations":
        self._token = _raise_on_violations.set(True)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._token is not None:
            _raise_on_violations.reset(self._token)
            self._token = None
