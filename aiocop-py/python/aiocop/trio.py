"""Monitoring trio runs: :class:`AiocopInstrument`, a trio instrument.

Each step of each trio task is one monitored handle, as a callback is on asyncio: the same
slow-task events (severity, reason, elapsed, blocking events), allow rules and raising at the
call (``raise_on_violations(at_call=True)`` raises ``BlockingCallError`` inside the task). The
per-step work is native (``before_task_step`` / ``after_task_step`` are the extension's).

Add it when starting the run, or let ``aiocop.activate()`` / ``aiocop.detect_slow_tasks()``
add it when called inside ``trio.run``::

    trio.run(main, instruments=[aiocop.trio.AiocopInstrument()])

Callbacks run on the run's thread (through ``TrioToken.run_sync_soon``, or right after the step
with ``dispatch="inline"``); what is still pending when the run ends is delivered by the
instrument's ``after_run``. This module imports trio; ``import aiocop`` does not.
"""

from __future__ import annotations

from typing import Optional

import trio
import trio.lowlevel

from aiocop import _aiocop

__all__ = ["AiocopInstrument", "attach_to_current_run"]


class AiocopInstrument(_aiocop._TrioSteps):
    """A trio instrument that monitors every task step of the run it is added to."""

    def __init__(self) -> None:
        super().__init__()
        if trio.lowlevel.in_trio_run():
            self._bind(trio.lowlevel.current_trio_token())

    def before_run(self) -> None:
        """Trio: the run starts; the instrument follows it."""
        super().before_run()
        _INSTRUMENT.set(self)


# A virtual subclass of trio's Instrument, for type checks (the hooks are found by name).
trio.abc.Instrument.register(AiocopInstrument)

#: The instrument monitoring the current run, if any (a run variable: one per run).
_INSTRUMENT: "trio.lowlevel.RunVar[Optional[AiocopInstrument]]" = trio.lowlevel.RunVar(
    "aiocop_instrument", default=None
)


def attach_to_current_run() -> Optional[AiocopInstrument]:
    """Add an :class:`AiocopInstrument` to the running trio run, once per run; returns it
    (``None`` outside a trio run)."""
    if not trio.lowlevel.in_trio_run():
        return None
    existing = _INSTRUMENT.get()
    if existing is not None:
        return existing
    instrument = AiocopInstrument()
    trio.lowlevel.add_instrument(instrument)
    _INSTRUMENT.set(instrument)
    return instrument

