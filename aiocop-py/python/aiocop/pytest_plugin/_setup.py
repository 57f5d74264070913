"""Setting aiocop up for the session: its once-per-process setup, slow-task detection and the
allow rules of ``pyproject.toml``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import aiocop
from aiocop import _aiocop
from aiocop.pytest_plugin import _default_rules
from aiocop.pytest_plugin._settings import _state

#: aiocop's logger, whose "called more than once" warnings the setup hides.
_LOG = logging.getLogger("aiocop")


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
    _default_rules.load(config)


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
