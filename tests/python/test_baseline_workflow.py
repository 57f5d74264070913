"""The pytest plugin's baseline (ratchet) workflow and its session report, end to end: pytest
runs as a subprocess on a copy of the sample project ``baseline_project/``.

Adopt (``--aiocop-baseline-update`` writes the sites the suite blocks at), then a new blocking
call fails only its test and names only it, edits that move lines change nothing, and fixing an
old site lets the next update prune it (but not an update over part of the suite).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PLUGIN_ARGS

pytest.importorskip("pytest_asyncio")

SAMPLE = Path(__file__).parent / "baseline_project"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("AIOCOP_ALLOW", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    copy = tmp_path / "project"
    shutil.copytree(SAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    return copy


def pytest_run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *PLUGIN_ARGS, "-p", "no:cacheprovider", "-q", "--aiocop", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def baseline(project: Path) -> list[dict[str, str]]:
    return json.loads((project / "aiocop-baseline.json").read_text())["sites"]


OLD_SITES = [
    {"event": "open", "site": "shop.catalog:load_catalog"},
    {"event": "time.sleep", "site": "shop.catalog:log_sale"},
]


def test_adopt_add_one_fix_one(project: Path) -> None:
    # Without a baseline file every blocking test fails.
    first = pytest_run(project, "--aiocop-baseline", "missing.json")
    assert first.returncode == 1, first.stdout
    assert "2 failed, 1 passed" in first.stdout

    # Adopt: write the baseline from the run; nothing fails.
    adopt = pytest_run(project, "--aiocop-baseline-update")
    assert adopt.returncode == 0, adopt.stdout + adopt.stderr
    assert "2 site(s), 2 added, 0 removed" in adopt.stdout
    assert "+ open at shop.catalog:load_catalog" in adopt.stdout
    assert baseline(project) == OLD_SITES
    text = (project / "aiocop-baseline.json").read_text()
    # sorted, stable JSON, one site per line; no line numbers, no absolute paths
    assert text.splitlines()[3:5] == [
        '    {"event": "open", "site": "shop.catalog:load_catalog"},',
        '    {"event": "time.sleep", "site": "shop.catalog:log_sale"}',
    ]
    assert str(project) not in text

    # With the baseline ([tool.aiocop] baseline): the known sites pass.
    assert pytest_run(project).returncode == 0

    # Edits that move lines keep the sites known; one new blocking call fails its test only.
    catalog = project / "shop" / "catalog.py"
    catalog.write_text(
        '"""Moved down."""\n\n\n' + catalog.read_text() + "\n\ndef export() -> list:\n"
        "    return os.listdir(HERE)\n"
    )
    tests = project / "check_shop.py"
    tests.write_text(
        tests.read_text().replace("load_catalog, log_sale", "export, load_catalog, log_sale")
        + "\n\nasync def test_export() -> None:\n    assert export()\n"
    )
    new = pytest_run(project)
    assert new.returncode == 1
    assert "1 failed, 3 passed" in new.stdout, new.stdout
    assert "FAILED check_shop.py::test_export" in new.stdout
    failures = new.stdout.split("= FAILURES =")[1].split("aiocop: top blocking sites")[0]
    assert "1 blocking call(s)" in failures and "os.listdir(" in failures
    assert "time.sleep(" not in failures and "open(" not in failures
    # the session's sites still list the known ones, marked as the baseline's
    top = new.stdout.split("aiocop: top blocking sites")[1]
    assert top.count("[baseline]") == 2

    # Fix an old site; an update over part of the suite keeps what it did not see...
    catalog.write_text(catalog.read_text().replace("    time.sleep(0.001)\n", ""))
    partial = pytest_run(project, "--aiocop-baseline-update", "-k", "sale or export")
    assert partial.returncode == 0, partial.stdout
    assert "part of the suite ran" in partial.stdout
    assert {s["site"] for s in baseline(project)} == {
        "shop.catalog:load_catalog",
        "shop.catalog:log_sale",
        "shop.catalog:export",
    }
    # ... and a whole-suite update prunes it.
    update = pytest_run(project, "--aiocop-baseline-update")
    assert update.returncode == 0, update.stdout
    assert "- time.sleep at shop.catalog:log_sale" in update.stdout
    assert baseline(project) == [
        {"event": "os.listdir", "site": "shop.catalog:export"},
        {"event": "open", "site": "shop.catalog:load_catalog"},
    ]
    assert pytest_run(project).returncode == 0


def test_session_report(project: Path) -> None:
    report_path = project / "out" / "aiocop-report.json"
    run = pytest_run(project, "--aiocop-baseline", "missing.json", f"--aiocop-report={report_path}")
    assert run.returncode == 1
    summary = run.stdout.split("aiocop: top blocking sites")[1]
    # sites under the rootdir are shown relative to it
    assert "time.sleep at shop/catalog.py:15:log_sale [first-party]" in summary
    assert "open at shop/catalog.py:10:load_catalog [first-party]" in summary
    assert "check_shop.py::test_sale" in summary
    report = json.loads(report_path.read_text())
    by_event = {site["event_name"]: site for site in report["sites"]}
    assert set(by_event) == {"open", "time.sleep"}
    sleep = by_event["time.sleep"]
    assert sleep["count"] == 1 and sleep["worst_ms"] >= 1.0
    assert sleep["site_key"] == "shop.catalog:log_sale"
    assert sleep["origin"] == "first-party" and sleep["distribution"] is None
    assert sleep["tests"] == ["check_shop.py::test_sale"]
    assert sleep["baselined"] is False


def test_raising_at_the_call_spares_the_baseline_sites(project: Path) -> None:
    tests = project / "check_shop.py"
    tests.write_text(
        "import pytest\n\npytestmark = pytest.mark.aiocop(at_call=True)\n\n" + tests.read_text()
    )
    raised = pytest_run(project, "--aiocop-baseline", "missing.json")
    assert "2 failed, 1 passed" in raised.stdout, raised.stdout
    assert raised.stdout.count("BlockingCallError") >= 2
    # writing the baseline raises nothing and sees every site
    adopt = pytest_run(project, "--aiocop-baseline-update")
    assert adopt.returncode == 0, adopt.stdout
    assert baseline(project) == OLD_SITES
    assert pytest_run(project).returncode == 0
    # a site the baseline does not list still raises at the call
    (project / "aiocop-baseline.json").write_text(
        (project / "aiocop-baseline.json").read_text().replace(
            '    {"event": "open", "site": "shop.catalog:load_catalog"},\n', ""
        )
    )
    one = pytest_run(project)
    assert "1 failed, 2 passed" in one.stdout, one.stdout
    assert "FAILED check_shop.py::test_catalog - aiocop.exceptions.BlockingCallError" in one.stdout
