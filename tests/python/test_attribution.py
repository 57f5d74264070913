"""Every blocking event says who it is attributed to — the project's code, an installed
package (its distribution and version, from ``importlib.metadata``) or the standard library —
and allow rules can name a distribution with a PEP 440 specifier.

A real distribution is installed for the purpose: a package and its ``.dist-info`` (``METADATA``
and ``RECORD``) in a directory on ``sys.path`` of a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import aiocop
from conftest import describe, run_python

PACKAGE = '''
import os


def read_config():
    with open(os.devnull) as f:  # the package blocks here
        return f.read()


class Client:
    def send(self):
        return read_config()
'''


def install_fake_distribution(site: Path, name: str = "Fake_Pkg", version: str = "1.4.2") -> None:
    """``fakepkg`` as the installed distribution ``name`` ``version`` under ``site``."""
    package = site / "fakepkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PACKAGE)
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(
        f"fakepkg/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n"
    )


SCRIPT = '''
import asyncio, json, os, sys
import aiocop
import fakepkg

aiocop.patch_audit_functions()
aiocop.start_blocking_io_detection()
aiocop.detect_slow_tasks(threshold_ms=1000, dispatch="inline")
events = []
aiocop.register_slow_task_callback(events.append)
RULE = os.environ.get("RULE")


def own_code():
    with open(os.devnull) as f:
        f.read()


async def main():
    aiocop.activate()
    await asyncio.sleep(0)
    if RULE:
        aiocop.allow(distribution=RULE)
    fakepkg.Client().send()
    own_code()
    await asyncio.sleep(0)


asyncio.run(main())
keys = ("event_name", "origin", "distribution", "distribution_version", "site_key")
print(json.dumps([{k: r[k] for k in keys} for e in events for r in e.blocking_events]))
print(json.dumps([(r.spec, r.hits) for r in aiocop.unused_allow_rules()]))
'''


def run(tmp_path: Path, rule: str | None = None) -> tuple[list[dict], list]:
    site = tmp_path / "site"
    if not site.exists():
        install_fake_distribution(site)
    env = {"PYTHONPATH": os.pathsep.join([str(site), *sys.path[1:]])}
    if rule is not None:
        env["RULE"] = rule
    (tmp_path / "script.py").write_text(SCRIPT)
    proc = run_python(
        f"import runpy; runpy.run_path({str(tmp_path / 'script.py')!r}, run_name='__main__')",
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, describe(proc)
    events, unused = proc.stdout.strip().splitlines()
    return json.loads(events), json.loads(unused)


def test_events_name_the_distribution_or_the_project(tmp_path: Path) -> None:
    records, _ = run(tmp_path)
    package, own = [r for r in records if r["event_name"] == "open"]
    assert package == {
        "event_name": "open",
        "origin": "third-party",
        "distribution": "Fake_Pkg",
        "distribution_version": "1.4.2",
        # the user's call site: the script's function calling the package (no line, no path)
        "site_key": "__main__:main",
    }
    assert own["origin"] == "first-party"
    assert own["distribution"] is None and own["distribution_version"] is None
    assert own["site_key"] == "__main__:own_code"


@pytest.mark.parametrize(
    ("rule", "allowed"),
    [
        ("Fake_Pkg", True),
        ("fake-pkg<2", True),  # names compare normalized (PEP 503)
        ("fake.pkg>=1.4,!=1.4.1", True),
        ("fake-pkg~=1.3", True),
        ("fake-pkg==1.*", True),
        ("fake-pkg>=2", False),
        ("fake-pkg!=1.4.2", False),
        ("other-pkg", False),
    ],
)
def test_a_distribution_rule_allows_its_calls(tmp_path: Path, rule: str, allowed: bool) -> None:
    records, unused = run(tmp_path, rule)
    third_party = [r for r in records if r["origin"] == "third-party"]
    assert (not third_party) == allowed
    # the project's own call is never allowed by a distribution rule
    assert [r["site_key"] for r in records if r["origin"] == "first-party"] == ["__main__:own_code"]
    # a rule that never matched is reported like any other
    assert bool(unused) == (not allowed)


def test_distribution_rules_from_the_api_and_pyproject(tmp_path: Path) -> None:
    rule = aiocop.AllowRule(distribution="botocore<2")
    assert rule.distribution == "botocore<2" and rule.spec == "distribution=botocore<2"
    assert aiocop.AllowRule("event=open,distribution=botocore >=1, <2").distribution == (
        "botocore>=1,<2"
    )
    assert aiocop.AllowRule(distribution="botocore", event="open").spec == (
        "event=open,distribution=botocore"
    )
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.aiocop]\nallow = [{distribution = "botocore"}, "distribution=s3fs>=2023"]\n')
    try:
        rules = aiocop.load_allow_rules(pyproject)
        assert [r.spec for r in rules] == ["distribution=botocore", "distribution=s3fs>=2023"]
    finally:
        for r in rules:
            aiocop.disallow(r)


@pytest.mark.parametrize("bad", ["botocore<<2", "botocore>=", "<2", "botocore>=1,", "botocore~=1"])
def test_bad_specifiers_name_distribution(bad: str) -> None:
    with pytest.raises(ValueError, match="distribution"):
        aiocop.AllowRule(distribution=bad)
    with pytest.raises(ValueError, match="distribution"):
        aiocop.allow(distribution=bad)
    if not bad.endswith(","):  # in a spec string an empty part is skipped
        with pytest.raises(ValueError, match="distribution"):
            aiocop.AllowRule(f"distribution={bad}")


def test_a_non_string_distribution_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="distribution"):
        aiocop.AllowRule(distribution=2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="distribution"):
        aiocop.allow(distribution=2)  # type: ignore[arg-type]


RAISING = '''
import asyncio, json, pickle
import aiocop
import fakepkg

aiocop.patch_audit_functions()
aiocop.start_blocking_io_detection()
aiocop.detect_slow_tasks(threshold_ms=1000, dispatch="inline")
aiocop.enable_raise_on_violations(at_call=True)
keys = ("origin", "distribution", "distribution_version", "site_key")


async def main():
    aiocop.activate()
    await asyncio.sleep(0)
    try:
        fakepkg.Client().send()
    except aiocop.BlockingCallError as error:
        info = error.events[0] if getattr(error, "events", None) else {}
        print(json.dumps({k: getattr(error, k) for k in keys}))
        print(json.dumps({k: info.get(k) for k in keys}))
        copy = pickle.loads(pickle.dumps(error))
        print(json.dumps({k: getattr(copy, k) for k in keys}))


asyncio.run(main())
'''


def test_an_error_raised_at_the_call_names_the_distribution(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_fake_distribution(site)
    (tmp_path / "script.py").write_text(RAISING)
    proc = run_python(
        f"import runpy; runpy.run_path({str(tmp_path / 'script.py')!r}, run_name='__main__')",
        env={"PYTHONPATH": os.pathsep.join([str(site), *sys.path[1:]])},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, describe(proc)
    attributes, info, unpickled = (json.loads(line) for line in proc.stdout.strip().splitlines())
    expected = {
        "origin": "third-party",
        "distribution": "Fake_Pkg",
        "distribution_version": "1.4.2",
        "site_key": "__main__:main",
    }
    assert attributes == expected
    assert info == expected  # the exception's BlockingEventInfo carries the same
    assert unpickled == expected  # and so does a copy (pytest-xdist sends them across)
