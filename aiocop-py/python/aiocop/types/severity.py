"""Severity weights, thresholds and levels.

The values are aiocop-severity's, exported by the native module: the rules that use them
(scoring, levels, weight labels) live there too.
"""

from typing import Literal

from aiocop import _aiocop

IoSeverityLevel = Literal["low", "medium", "high"]

#: Network, DNS, subprocess, sleep, recursive file-system work.
WEIGHT_HEAVY: int = _aiocop.WEIGHT_HEAVY
#: File IO and mutations.
WEIGHT_MODERATE: int = _aiocop.WEIGHT_MODERATE
#: Stat and access checks.
WEIGHT_LIGHT: int = _aiocop.WEIGHT_LIGHT
#: Negligible operations.
WEIGHT_TRIVIAL: int = _aiocop.WEIGHT_TRIVIAL

THRESHOLD_HIGH: int = _aiocop.THRESHOLD_HIGH
THRESHOLD_MEDIUM: int = _aiocop.THRESHOLD_MEDIUM
THRESHOLD_LOW: int = _aiocop.THRESHOLD_LOW

__all__ = [
    "IoSeverityLevel",
    "WEIGHT_HEAVY",
    "WEIGHT_MODERATE",
    "WEIGHT_LIGHT",
    "WEIGHT_TRIVIAL",
    "THRESHOLD_HIGH",
    "THRESHOLD_MEDIUM",
    "THRESHOLD_LOW",
]
