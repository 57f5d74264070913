"""Legacy code doing blocking IO on purpose (see the allow-rule tests).

Each function does exactly one kind of blocking call, so a test knows which record to expect;
every call is made directly here (this module is the first non-library frame).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


def read_config(path: str) -> str:
    """One ``open`` (weight 10)."""
    with open(path) as f:
        return f.read()


def write_config(path: str, text: str) -> None:
    """One ``open`` for writing (weight 10)."""
    with open(path, "w") as f:
        f.write(text)


def stat_config(path: str) -> int:
    """One ``os.stat`` (weight 1)."""
    return os.stat(path).st_size


def nap(seconds: float) -> None:
    """One ``time.sleep`` (weight 50)."""
    time.sleep(seconds)


class LegacyStore:
    """A method doing blocking IO: qualname ``LegacyStore.load``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> str:
        with open(self.path) as f:
            return f.read()


def call_through(fn: Callable[..., Any], *args: Any) -> Any:
    """Calls ``fn`` from this module: a frame of ours below the caller's (``frames="any"``)."""
    return fn(*args)
