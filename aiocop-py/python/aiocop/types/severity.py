"""Severity weights, thresholds and levels."""

from typing import Literal

IoSeverityLevel = Literal["low", "medium", "high"]

#: Network, DNS, subprocess, sleep, recursive file-system work.
WEIGHT_HEAVY = 50
#: File IO and mutations.
WEIGHT_MODERATE = 10
#: Stat and access checks.
WEIGHT_LIGHT = 1
#: Negligible operations.
WEIGHT_TRIVIAL = 0

THRESHOLD_HIGH = 50
THRESHOLD_MEDIUM = 10
THRESHOLD_LOW = 1

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
