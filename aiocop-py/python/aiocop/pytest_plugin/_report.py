"""What the plugin says: the failure report, warn mode's log records and the terminal summary."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import aiocop
from aiocop import _aiocop
from aiocop.pytest_plugin._settings import _PluginState, _Settings
from aiocop.pytest_plugin._violation import Violation

#: The logger of warn mode: aiocop's own, so ``logging.getLogger("aiocop")`` configures it.
_LOG = logging.getLogger("aiocop")


def format_report(violations: Iterable[Violation], where: str, settings: _Settings) -> str:
    """The failure message: each blocking call site (with its count), heaviest first."""
    counts: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], Violation] = {}
    for violation in violations:
        counts[violation.key] = counts.get(violation.key, 0) + 1
        first.setdefault(violation.key, violation)
    sites = sorted(first.values(), key=lambda v: (v.kind != "call", -v.weight))
    calls = sum(n for key, n in counts.items() if first[key].kind == "call")
    steps = sum(counts.values()) - calls
    threshold = aiocop.get_slow_task_threshold_ms()
    found = [f"{calls} blocking call(s)"] if calls else []
    if steps:
        found.append(f"{steps} slow loop step(s)")
    lines = [
        f"aiocop: {' and '.join(found)} on the event loop in {where} "
        f"(weight >= {settings.min_weight} is reported)",
    ]
    for number, violation in enumerate(sites, 1):
        times = counts[violation.key]
        lines.append("")
        if violation.kind == "slow_step":
            lines.append(f"{number}. {violation.event}" + (f"  x{times}" if times > 1 else ""))
            lines.append(f"   at:    {violation.site}")
            if violation.trace and violation.trace != violation.site:
                lines.append(f"   trace: {violation.trace}")
            continue
        lines.append(
            f"{number}. {violation.event}  weight {violation.weight} "
            f"({_aiocop.weight_label(violation.weight)})" + (f"  x{times}" if times > 1 else "")
        )
        lines.append(f"   at:    {violation.site}")
        if violation.trace and violation.trace != violation.site:
            lines.append(f"   trace: {violation.trace}")
        task = f"task {violation.task_name}, " if violation.task_name else ""
        lines.append(
            f"   in:    {task}a loop step of {violation.elapsed_ms:.1f} ms "
            f"(slow-task threshold {threshold:g} ms)"
        )
        if violation.suggested_rule:
            lines.append(f"   allow: {violation.suggested_rule!r}")
    lines.append("")
    lines.append(
        "Accept a call with @pytest.mark.aiocop(allow=['<rule>']), [tool.aiocop] allow = [...] "
        "in pyproject.toml or AIOCOP_ALLOW; skip a test with @pytest.mark.no_aiocop."
    )
    return "\n".join(lines)


def _summary_line(violation: Violation) -> str:
    """One warned site in the terminal summary."""
    if violation.kind == "slow_step":
        return f"{violation.event}  at {violation.site}"
    rule = f"  allow: {violation.suggested_rule!r}" if violation.suggested_rule else ""
    return f"{violation.event}  weight {violation.weight}  at {violation.site}{rule}"


def _warn(violation: Violation, where: str, state: _PluginState) -> None:
    """Warn mode: log a blocking call once per call site (event and site) for the session."""
    key = (violation.event_name, violation.site)
    if key in state.warned_sites:
        return
    state.warned_sites[key] = violation
    if violation.kind == "slow_step":
        _LOG.warning(
            "%s in %s\n  at:    %s", violation.event, where, violation.trace or violation.site
        )
        return
    _LOG.warning(
        "blocking call %s (weight %d) on the event loop in %s\n  at:    %s\n  trace: %s%s",
        violation.event,
        violation.weight,
        where,
        violation.site,
        violation.trace or violation.site,
        f"\n  allow: {violation.suggested_rule!r}" if violation.suggested_rule else "",
    )


def _summary_sections(state: _PluginState, unused: Sequence[Any]) -> list[tuple[str, list[str]]]:
    """The terminal summary's sections (title, lines): the allow rules that never matched
    (``unused``: those not from markers, which are reported per spec from ``state``), the sites
    warn mode logged, and which slow-task threshold is in force when not the plugin's."""
    sections: list[tuple[str, list[str]]] = []
    lines: list[str] = []
    for rule in unused:
        lines.append(f"{rule.spec}  (from {rule.source})")
    for spec, use in sorted(state.marker_rules.items()):
        if use.tracked and use.hits == 0:
            tests = ", ".join(use.tests[:3]) + (" ..." if len(use.tests) > 3 else "")
            lines.append(f"{spec}  (from @pytest.mark.aiocop on {tests})")
    if lines:
        if unused and state.deselected:
            lines.append(
                f"(only part of the suite ran: {state.deselected} test(s) deselected; a rule "
                "for their calls shows as unused here)"
            )
        sections.append(("aiocop: unused allow rules", lines))
    if state.warned_sites:
        sections.append(
            (
                "aiocop: blocking calls (warn mode)",
                [
                    f"{len(state.warned_sites)} call site(s), each logged once on the 'aiocop' "
                    "logger:",
                    *(_summary_line(violation) for violation in state.warned_sites.values()),
                ],
            )
        )
    if state.threshold_note:
        sections.append(("aiocop: threshold", [state.threshold_note]))
    return sections

