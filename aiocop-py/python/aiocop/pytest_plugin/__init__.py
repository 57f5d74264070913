"""pytest plugin: fail async tests that block their event loop.

Registered through the ``pytest11`` entry point, so installing aiocop is enough; it stays off
(registers its options, markers and the ``aiocop_strict`` fixture, nothing else) until turned
on with ``--aiocop`` or ``aiocop = true`` in the ini file::

    pytest --aiocop                         # fail async tests that block the loop
    pytest --aiocop --aiocop-mode=warn      # log each blocking call site once instead
    pytest --aiocop --aiocop-threshold-ms=50  # also fail loop steps of 50 ms or more

When on, the body of every async test (pytest-asyncio, anyio on asyncio or trio, trio tests)
runs with aiocop monitoring the test's own loop; fixture setup and teardown, and sync tests,
are not checked. A test on a loop aiocop cannot check is listed at the end ("aiocop: tests not
checked"), never failed or warned about.
A test that made a blocking call of weight ``WEIGHT_MODERATE`` or more fails with a report of
each call: what it was, where, how heavy, and the allow rule that would accept it.

Per test, ``@pytest.mark.aiocop(allow=[...], mode=..., at_call=..., min_weight=...)``
configures the check and ``@pytest.mark.no_aiocop`` skips it. The ``aiocop_strict`` fixture
checks only a block (``async with aiocop_strict: ...``), whether or not ``--aiocop`` is given.
Allow rules also come from ``[tool.aiocop] allow = [...]`` in the rootdir's ``pyproject.toml``
and from ``AIOCOP_ALLOW``; the rules that never matched are listed at the end of the session.
The shipped rules for well-known framework internals (``aiocop.default_allow_rules()``) are in
force unless ``--aiocop-no-default-rules`` (ini ``aiocop_default_rules = false``).

A baseline lets a suite adopt the check before fixing what it already does:
``--aiocop-baseline-update`` writes the blocking sites seen to the baseline file
(``--aiocop-baseline=PATH`` or ``[tool.aiocop] baseline``; pruned only after a whole-suite run),
and a run with the file fails tests only for sites it does not list. The terminal summary lists
the top blocking sites of the session; ``--aiocop-report=PATH`` writes them as JSON.

In a pytest process aiocop delivers events inline by default (``AIOCOP_DISPATCH`` and
``detect_slow_tasks(dispatch=...)`` still choose): tests assert right after a handle ends.

The hooks and the fixture are here (pytest reads them from the module the entry point names);
the work is in the package's modules, one job each: ``_settings`` (options, ini values,
markers, their checks, the session state), ``_setup`` (setting aiocop up), ``_violation``
(a blocking call found), ``_report`` (the failure report, warn-mode logs, the terminal
summary), ``_collect`` (collecting a test's blocking calls), ``_loops`` (the loop kinds it
checks, and the tests it cannot), ``_strict`` (:class:`AiocopStrict`), ``_sites`` (the
session's blocking sites: report and baseline) and ``_default_rules`` (the shipped rules'
switch).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

import aiocop
from aiocop import _setup as _library_setup
from aiocop.pytest_plugin import _default_rules, _sites
from aiocop.pytest_plugin._collect import _monitored, _monitoring_target
from aiocop.pytest_plugin._loops import write_section as _write_not_checked
from aiocop.pytest_plugin._report import _summary_sections, format_report
from aiocop.pytest_plugin._settings import (
    _MARKERS,
    _STATE_KEY,
    SettingsError,
    _add_options,
    _read_state,
    _settings_for,
    _state,
)
from aiocop.pytest_plugin._setup import _ensure_detection, _ensure_setup, _load_pyproject_rules
from aiocop.pytest_plugin._strict import AiocopStrict
from aiocop.pytest_plugin._violation import Violation

__all__ = ["AiocopStrict", "SettingsError", "Violation", "format_report"]


# --------------------------------------------------------------------------- hooks


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """In a test process aiocop delivers events inline (right after the handle), before any
    conftest sets it up: tests assert on what a handle reported as soon as it ends.
    ``detect_slow_tasks(dispatch=...)`` and ``AIOCOP_DISPATCH`` still choose."""
    _library_setup._set_default_dispatch("inline")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--aiocop``, ``--aiocop-mode``, ``--aiocop-threshold-ms`` and their ini options."""
    _add_options(parser)
    _sites.add_options(parser.getgroup("aiocop"))
    _default_rules.add_options(parser.getgroup("aiocop"), parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; when on, set aiocop up and load the pyproject rules."""
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    _library_setup._set_default_dispatch("inline")  # also when loaded late (-p, pytester)
    state = _read_state(config)
    config.stash[_STATE_KEY] = state
    if state.enabled:
        state.sites = _sites.read_settings(config)
        _ensure_setup(config)
        _load_pyproject_rules(config)


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Check the ``aiocop`` markers of the tests the plugin will see: a bad one is a usage error."""
    if _STATE_KEY not in config.stash:
        return
    state = _state(config)
    errors: list[str] = []
    for item in items:
        if state.enabled or "aiocop_strict" in getattr(item, "fixturenames", ()):
            try:
                _settings_for(item, state)
            except SettingsError as exc:
                errors.append(str(exc))
    if errors:
        raise pytest.UsageError("aiocop: bad marker(s):\n  " + "\n  ".join(errors))


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Count deselected tests: the unused-rule report says when part of the suite did not run."""
    if items and _STATE_KEY in items[0].config.stash:
        _state(items[0].config).deselected += len(items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Run the body of an async test wrapped in aiocop's check (fixtures are not in it)."""
    original = _monitoring_target(item)
    if original is None:
        yield
        return
    assert isinstance(item, pytest.Function)
    _ensure_detection(item.config)
    state = _state(item.config)
    # A test with aiocop_strict blocks is checked in them only; otherwise the body is checked
    # (the plugin is on, and no_aiocop is not set: see _monitoring_target).
    check = state.enabled and "aiocop_strict" not in item.fixturenames
    if item.get_closest_marker("no_aiocop") is not None:
        check = False
    item.obj = _monitored(original, item, _settings_for(item, state), check=check)
    try:
        yield
    finally:
        item.obj = original


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the baseline (``--aiocop-baseline-update``) and the JSON report of the sites."""
    config = session.config
    if _STATE_KEY not in config.stash:
        return
    state = _state(config)
    if state.sites is None or hasattr(config, "workerinput"):  # off, or a pytest-xdist worker
        return
    if config.pluginmanager.has_plugin("dsession"):  # pytest-xdist's controller saw no test
        state.sites.messages.append(
            "the baseline and the report need a run without pytest-xdist (-n): not written"
        )
    else:
        try:
            _sites.finish(state.sites, session, int(exitstatus), state.deselected)
        except OSError as exc:  # a file we could not write must not hide the test results
            state.sites.messages.append(f"could not write: {exc}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """List the allow rules that never matched (and, in warn mode, how many sites were logged)."""
    if _STATE_KEY not in config.stash:
        return
    _write_not_checked(terminalreporter, config)
    state = _state(config)
    if not state.enabled:
        return
    try:
        # Marker rules are the plugin's own to report: per spec, over the tests that ran.
        # The shipped default rules are not the suite's: never listed as unused.
        unused = [
            r for r in aiocop.unused_allow_rules() if r.source not in ("marker", "default")
        ]
    except Exception:  # noqa: BLE001 - a summary must never break the session's exit
        unused = []
    sections = _summary_sections(state, unused)
    if state.sites is not None:
        sections += _sites.summary_sections(state.sites)
    for title, lines in sections:
        terminalreporter.write_sep("-", title)
        for line in lines:
            terminalreporter.write_line(line)


# --------------------------------------------------------------------------- aiocop_strict


@pytest.fixture
def aiocop_strict(request: pytest.FixtureRequest) -> AiocopStrict:
    """A context manager that checks only its block for blocking calls on the running loop.

    Works with or without ``--aiocop`` (aiocop is set up on first use); the test's
    ``@pytest.mark.aiocop`` settings apply. See :class:`AiocopStrict`.
    """
    __tracebackhide__ = True
    config = request.config
    if _STATE_KEY not in config.stash:  # plugin configured late (pytester in-process runs)
        config.stash[_STATE_KEY] = _read_state(config)
    _ensure_detection(config)
    state = _state(config)
    item = request.node
    try:
        settings = _settings_for(item, state)
    except SettingsError as exc:
        pytest.fail(str(exc), pytrace=False)
    return AiocopStrict(item, settings, state)
