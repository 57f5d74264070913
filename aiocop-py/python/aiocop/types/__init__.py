"""Type definitions of aiocop's public API."""

from aiocop.types.events import BlockingEventInfo, CpuStackSample, RawBlockingEvent, SlowTaskEvent
from aiocop.types.severity import IoSeverityLevel

__all__ = [
    "BlockingEventInfo",
    "CpuStackSample",
    "RawBlockingEvent",
    "SlowTaskEvent",
    "IoSeverityLevel",
]
