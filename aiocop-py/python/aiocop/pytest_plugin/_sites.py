"""The blocking sites a session saw: the top-sites report and the baseline (ratchet).

Every blocking call the plugin finds in a checked test is tallied by site (the audit event's
name and the site's key: the distribution or module and the qualified function name, see
``BlockingEventInfo["site_key"]``): how often, the longest loop step it was in, who it is
attributed to and which tests hit it. At the end of the session the top sites are listed in
the terminal summary, and written as JSON with ``--aiocop-report=PATH``.

With a baseline (``--aiocop-baseline=PATH`` or ``[tool.aiocop] baseline = "..."``) a test
fails only for sites the file does not list. ``--aiocop-baseline-update`` fails no test for a
blocking call and writes the file: the sites seen, plus — when only part of the suite ran — the
sites it listed before (it prunes the sites no longer seen only after a whole-suite run).
Raising at the call (``at_call=True``, ``aiocop_strict``) spares the sites a baseline accepts
(every site while it is being written). The file is sorted JSON, one site per line, so that its diff reads as "these were fixed, these were
accepted".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from aiocop import _aiocop
from aiocop._pyproject import read_table
from aiocop.pytest_plugin._violation import Violation

#: Sites listed in the terminal summary.
_TOP = 10
#: Tests named per site in the terminal summary (the JSON report names them all).
_TESTS_SHOWN = 3
_FORMAT = 1


@dataclass
class SiteTally:
    """One blocking site over the session."""

    event_name: str
    site_key: str
    #: Where it was seen first (``file:line:function``), for people.
    site: str
    origin: Optional[str]
    distribution: Optional[str]
    distribution_version: Optional[str]
    count: int = 0
    worst_ms: float = 0.0
    tests: list[str] = field(default_factory=list)
    #: Listed in the baseline: it did not fail its tests.
    baselined: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_name": self.event_name,
            "site_key": self.site_key,
            "site": self.site,
            "origin": self.origin,
            "distribution": self.distribution,
            "distribution_version": self.distribution_version,
            "count": self.count,
            "worst_ms": round(self.worst_ms, 3),
            "tests": list(self.tests),
            "baselined": self.baselined,
        }


@dataclass
class SitesState:
    """The session's sites, and its baseline and report settings."""

    baseline_path: Optional[Path] = None
    update: bool = False
    #: The rootdir: sites under it are shown relative to it.
    root: str = ""
    report_path: Optional[Path] = None
    #: The baseline's sites when the session started.
    known: frozenset[tuple[str, str]] = frozenset()
    sites: dict[tuple[str, str], SiteTally] = field(default_factory=dict)
    #: What the session end said (baseline written, report written), for the summary.
    messages: list[str] = field(default_factory=list)


SITES_KEY = pytest.StashKey[SitesState]()


def add_options(group: Any) -> None:
    """``--aiocop-baseline``, ``--aiocop-baseline-update`` and ``--aiocop-report``."""
    group.addoption(
        "--aiocop-baseline",
        default=None,
        metavar="PATH",
        help="fail tests only for blocking sites not listed in this baseline file "
        "(pyproject: [tool.aiocop] baseline)",
    )
    group.addoption(
        "--aiocop-baseline-update",
        action="store_true",
        default=False,
        help="fail no test for a blocking call; write the sites seen to the baseline file "
        "(pruning the sites no longer seen after a whole-suite run)",
    )
    group.addoption(
        "--aiocop-report",
        default=None,
        metavar="PATH",
        help="write the session's blocking sites (count, worst ms, distribution, tests) as JSON",
    )


def read_settings(config: pytest.Config) -> SitesState:
    """The baseline and report settings; a bad baseline file is a usage error."""
    root = Path(config.rootpath)
    state = SitesState(
        update=bool(config.getoption("aiocop_baseline_update", False)), root=str(root)
    )
    option = config.getoption("aiocop_baseline", None)
    if option is None:
        try:
            configured = read_table(root / "pyproject.toml").get("baseline")
        except (TypeError, ValueError, RuntimeError) as exc:
            raise pytest.UsageError(f"aiocop: {exc}") from None
        if configured is not None and not isinstance(configured, str):
            raise pytest.UsageError(
                f"aiocop: [tool.aiocop] baseline must be a path string, got {configured!r}"
            )
        option = configured
    if option is None and state.update:
        option = "aiocop-baseline.json"
    if option is not None:
        state.baseline_path = Path(option) if Path(option).is_absolute() else root / option
    report = config.getoption("aiocop_report", None)
    if report is not None:
        state.report_path = Path(report)
    if state.baseline_path is not None and state.baseline_path.exists():
        try:
            state.known = load_baseline(state.baseline_path)
        except ValueError as exc:
            raise pytest.UsageError(f"aiocop: {exc}") from None
    # Raising at the call (at_call=True, aiocop_strict) spares the sites the baseline accepts.
    _aiocop._set_baseline_sites(state.update, sorted(state.known))
    return state


def load_baseline(path: Path) -> frozenset[tuple[str, str]]:
    """The sites a baseline file lists, ``(event_name, site_key)``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the baseline {path}: {exc}") from None
    sites = data.get("sites") if isinstance(data, dict) else None
    if not isinstance(sites, list):
        raise ValueError(f"the baseline {path} has no 'sites' list")
    keys = set()
    for entry in sites:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("event"), str)
            or not isinstance(entry.get("site"), str)
        ):
            raise ValueError(f"the baseline {path} has a malformed site: {entry!r}")
        keys.add((entry["event"], entry["site"]))
    return frozenset(keys)


def format_baseline(keys: set[tuple[str, str]]) -> str:
    """The baseline file: sorted, stable JSON, one site per line."""
    lines = [
        json.dumps({"event": event, "site": site}, sort_keys=True)
        for event, site in sorted(keys, key=lambda k: (k[1], k[0]))
    ]
    body = ",\n    ".join(lines)
    sites = f"[\n    {body}\n  ]" if lines else "[]"
    return f'{{\n  "aiocop_baseline": {_FORMAT},\n  "sites": {sites}\n}}\n'


def observe(state: SitesState, violation: Violation, where: str) -> bool:
    """Tally a blocking call found in test ``where``; whether it still fails the test (not
    accepted by the baseline, or by a baseline update)."""
    if violation.kind != "call":
        return True
    key = violation.baseline_key
    tally = state.sites.get(key)
    if tally is None:
        tally = state.sites[key] = SiteTally(
            event_name=violation.event_name,
            site_key=key[1],
            site=violation.site,
            origin=violation.origin,
            distribution=violation.distribution,
            distribution_version=violation.distribution_version,
        )
    tally.count += 1
    tally.worst_ms = max(tally.worst_ms, violation.elapsed_ms)
    if where not in tally.tests:
        tally.tests.append(where)
    if key in state.known:
        tally.baselined = True
        return False
    return not state.update


def whole_suite_ran(session: pytest.Session, exitstatus: int, deselected: int) -> bool:
    """Whether the session ran the whole suite: no test deselected (``-k``, ``-m``, ``--lf``),
    no node or path narrower than the rootdir or ``testpaths`` asked for, not stopped early."""
    config = session.config
    if deselected or session.shouldstop or session.shouldfail:
        return False
    if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return False
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return True
    root = Path(config.rootpath).resolve()
    testpaths = {(root / p).resolve() for p in config.getini("testpaths")}
    for arg in config.args:
        if "::" in arg:
            return False
        path = Path(arg) if Path(arg).is_absolute() else Path(config.invocation_params.dir) / arg
        if path.resolve() not in {root, *testpaths}:
            return False
    return True


def finish(state: SitesState, session: pytest.Session, exitstatus: int, deselected: int) -> None:
    """At the session's end: write the baseline (update) and the JSON report."""
    if state.update and state.baseline_path is not None:
        seen = set(state.sites)
        full = whole_suite_ran(session, exitstatus, deselected)
        keep = seen if full else seen | set(state.known)
        added = sorted(seen - state.known)
        removed = sorted(state.known - keep)
        state.baseline_path.parent.mkdir(parents=True, exist_ok=True)
        state.baseline_path.write_text(format_baseline(keep), encoding="utf-8")
        state.messages.append(
            f"baseline {state.baseline_path}: {len(keep)} site(s), {len(added)} added, "
            f"{len(removed)} removed"
            + ("" if full else " (part of the suite ran: sites not seen were kept)")
        )
        state.messages.extend(f"  + {event} at {site}" for event, site in added)
        state.messages.extend(f"  - {event} at {site}" for event, site in removed)
    if state.report_path is not None:
        report = {
            "sites": [tally.to_dict() for tally in ranked(state)],
            "baseline": None if state.baseline_path is None else str(state.baseline_path),
        }
        state.report_path.parent.mkdir(parents=True, exist_ok=True)
        state.report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        state.messages.append(f"report written to {state.report_path}")


def ranked(state: SitesState) -> list[SiteTally]:
    """The sites, most hit first (then the longest loop step)."""
    return sorted(
        state.sites.values(), key=lambda t: (-t.count, -t.worst_ms, t.site_key, t.event_name)
    )


def summary_sections(state: SitesState) -> list[tuple[str, list[str]]]:
    """The terminal summary's sections: the top blocking sites, and what the end wrote."""
    sections: list[tuple[str, list[str]]] = []
    top = ranked(state)[:_TOP]
    if top:
        lines = [f"{'count':>5}  {'worst ms':>8}  site"]
        for tally in top:
            owner = tally.distribution or tally.origin or "?"
            if tally.distribution and tally.distribution_version:
                owner = f"{tally.distribution} {tally.distribution_version}"
            tests = ", ".join(tally.tests[:_TESTS_SHOWN])
            if len(tally.tests) > _TESTS_SHOWN:
                tests += f" (+{len(tally.tests) - _TESTS_SHOWN} more)"
            mark = "  [baseline]" if tally.baselined else ""
            site = tally.site
            if state.root and site.startswith(state.root + "/"):
                site = site[len(state.root) + 1 :]
            lines.append(
                f"{tally.count:>5}  {tally.worst_ms:>8.1f}  {tally.event_name} at {site} "
                f"[{owner}]{mark}"
            )
            lines.append(f"{'':>17}tests: {tests}")
        if len(state.sites) > _TOP:
            lines.append(f"... and {len(state.sites) - _TOP} more site(s)")
        sections.append(("aiocop: top blocking sites", lines))
    if state.messages:
        sections.append(("aiocop: baseline and report", list(state.messages)))
    return sections
