"""Allow rules: a matched blocking call is not reported and never raises.

The code that the module/path/function rules match lives in ``blocking_helpers/legacy.py``.
Rules are global, so a fixture clears them around every test.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

import pytest

import aiocop
from blocking_helpers import legacy

from conftest import describe, entry_function, frame_functions, run_monitored, run_python

LEGACY_FILE = os.path.abspath(legacy.__file__)


@pytest.fixture(autouse=True)
def no_allow_rules():
    aiocop.clear_allow_rules()
    yield
    aiocop.clear_allow_rules()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[legacy]\n")
    return path


def opened_from(result, function: str) -> list[dict]:
    """The ``open`` records whose entry point (innermost frame) is in ``function``."""
    return [r for r in result.records("open") if entry_function(r) == function]


# --------------------------------------------------------------------------- by event


def test_event_rule_hides_the_call_and_counts_it(loop_kind, config):
    rule = aiocop.allow("open")

    async def body():
        for _ in range(2):
            with open(config) as f:
                f.read()
            await asyncio.sleep(0)
        os.stat(config)  # not allowed: still reported

    result = run_monitored(body, loop_kind)
    assert result.records("open") == []
    assert [entry_function(r) for r in result.records("os.stat")] == ["body"]
    assert rule.hits == 2
    assert aiocop.unused_allow_rules() == []


@pytest.mark.parametrize("spec", ["os.*", "os.st?t", "event=*stat", "*"])
def test_event_globs(loop_kind, config, spec):
    aiocop.allow(spec)

    async def body():
        os.stat(config)

    assert run_monitored(body, loop_kind).records("os.stat") == []


@pytest.mark.parametrize("spec", ["os.sta", "os.stat?", "stat", "OS.STAT"])
def test_event_globs_match_the_whole_name(loop_kind, config, spec):
    rule = aiocop.allow(spec)

    async def body():
        os.stat(config)

    assert len(run_monitored(body, loop_kind).records("os.stat")) == 1
    assert rule.hits == 0


# --------------------------------------------------------------------------- by module, path, function


@pytest.mark.parametrize(
    "kwargs",
    [
        {"module": "blocking_helpers.legacy"},
        {"module": "blocking_helpers.*"},
        {"module": "*.legacy"},
        {"path": LEGACY_FILE},
        {"path": "*/blocking_helpers/legacy.py"},
        {"path": "*/blocking_helpers/*"},
        {"function": "read_config"},
        {"function": "blocking_helpers.legacy.read_config"},
        {"function": "read_*"},
        {"event": "open", "module": "blocking_helpers.legacy"},
        {"event": "open", "path": "*legacy.py", "function": "read_config"},
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()),
)
def test_frame_rules_match_the_helper_module(loop_kind, config, kwargs):
    rule = aiocop.allow(**kwargs)

    async def body():
        assert legacy.read_config(config) == "[legacy]\n"  # allowed
        with open(config) as f:  # the same call from here: reported
            f.read()

    result = run_monitored(body, loop_kind)
    assert opened_from(result, "read_config") == []
    assert len(opened_from(result, "body")) == 1
    assert rule.hits == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"module": "blocking_helpers"},  # the package, not the module
        {"module": "legacy"},
        {"path": "*/elsewhere/*"},
        {"path": "legacy.py"},  # the path is absolute
        {"function": "write_config"},
        {"function": "legacy.read_config"},  # module.qualname means the whole module name
        {"event": "os.stat", "module": "blocking_helpers.legacy"},
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()),
)
def test_frame_rules_that_do_not_match(loop_kind, config, kwargs):
    rule = aiocop.allow(**kwargs)

    async def body():
        legacy.read_config(config)

    result = run_monitored(body, loop_kind)
    assert len(opened_from(result, "read_config")) == 1
    assert rule.hits == 0
    assert aiocop.unused_allow_rules() == [rule]


@pytest.mark.parametrize(
    "function", ["LegacyStore.load", "blocking_helpers.legacy.LegacyStore.load", "LegacyStore.*"]
)
def test_function_rule_matches_a_method_qualname(loop_kind, config, function):
    aiocop.allow(function=function)

    async def body():
        assert legacy.LegacyStore(str(config)).load() == "[legacy]\n"
        legacy.read_config(config)  # another function of the same module: reported

    result = run_monitored(body, loop_kind)
    assert opened_from(result, "load") == []
    assert len(opened_from(result, "read_config")) == 1


def test_event_and_module_rule_allows_only_that_event(loop_kind, config):
    aiocop.allow("event=os.stat,module=blocking_helpers.legacy")

    async def body():
        legacy.stat_config(config)
        legacy.read_config(config)
        os.stat(config)

    result = run_monitored(body, loop_kind)
    assert [entry_function(r) for r in result.records("os.stat")] == ["body"]
    assert len(opened_from(result, "read_config")) == 1


def test_function_rule_for_test_code(loop_kind, config):
    async def body():
        with open(config) as f:
            f.read()

    rule = aiocop.allow(function=f"{__name__}.{body.__qualname__}")
    assert run_monitored(body, loop_kind).records("open") == []
    assert rule.hits == 1


# --------------------------------------------------------------------------- frames=first / any


def test_first_frame_skips_library_frames(loop_kind, config):
    """pathlib's frames (standard library) are skipped: the first frame is the caller's."""

    async def body():
        assert Path(config).read_text() == "[legacy]\n"

    rule = aiocop.allow(event="open", function=f"*{body.__qualname__}")
    result = run_monitored(body, loop_kind)
    assert result.records("open") == []
    assert rule.hits == 1


@pytest.mark.parametrize("frames", ["first", "any"])
def test_caller_rule_needs_frames_any(loop_kind, config, frames):
    """body -> legacy.read_config -> open: the first frame is legacy's, body's is further out."""

    async def body():
        legacy.read_config(config)

    rule = aiocop.allow(module=__name__, frames=frames)
    result = run_monitored(body, loop_kind)
    if frames == "any":
        assert result.records("open") == []
        assert rule.hits == 1
        assert rule.spec == f"module={__name__},frames=any"
    else:
        assert len(opened_from(result, "read_config")) == 1
        assert rule.hits == 0
        assert rule.spec == f"module={__name__}"


@pytest.mark.parametrize("frames", ["first", "any"])
def test_callee_through_a_helper_needs_frames_any(loop_kind, config, frames):
    """body -> legacy.call_through -> read_here -> open: legacy's frame is not the first."""

    def read_here():
        with open(config) as f:
            return f.read()

    async def body():
        return legacy.call_through(read_here)

    rule = aiocop.allow(f"path=*/blocking_helpers/legacy.py,frames={frames}")
    result = run_monitored(body, loop_kind)
    assert result.value == "[legacy]\n"
    if frames == "any":
        assert result.records("open") == []
        assert rule.hits == 1
    else:
        recs = opened_from(result, "read_here")
        assert len(recs) == 1
        assert "call_through" in frame_functions(recs[0]["trace"])
        assert rule.hits == 0


def test_frames_any_needs_all_fields_on_the_same_frame(loop_kind, config):
    async def body():
        legacy.read_config(config)

    # legacy's frame has the module, body's frame has the function: no single frame has both
    split = aiocop.allow(module="blocking_helpers.legacy", function=f"*{body.__qualname__}",
                         frames="any")
    result = run_monitored(body, loop_kind)
    assert len(opened_from(result, "read_config")) == 1
    assert split.hits == 0
    aiocop.disallow(split)
    same = aiocop.allow(module="blocking_helpers.legacy", function="read_config", frames="any")
    assert run_monitored(body, loop_kind).records("open") == []
    assert same.hits == 1


# --------------------------------------------------------------------------- never raises


def test_allowed_call_never_raises_at_the_call(loop_kind, tmp_path):
    target = tmp_path / "allowed.txt"
    rule = aiocop.allow(event="open", module="blocking_helpers.legacy")

    async def body():
        with aiocop.raise_on_violations(at_call=True):
            legacy.write_config(target, "allowed")  # allowed: happens
            with pytest.raises(aiocop.BlockingCallError):
                legacy.nap(0.001)  # same module, another event: stopped
        return "ok"

    result = run_monitored(body, loop_kind)
    assert result.value == "ok"
    assert target.read_text() == "allowed"
    assert result.records("open") == []
    assert rule.hits == 1


def test_allowed_call_never_raises_after_the_handle(loop_kind):
    aiocop.allow("event=time.sleep,function=nap")

    async def body():
        with aiocop.raise_on_violations():
            legacy.nap(0.03)  # over the threshold, weight 50 — but allowed
            await asyncio.sleep(0)
        return "ok"

    result = run_monitored(body, loop_kind)
    assert result.value == "ok"
    assert result.records("time.sleep") == []


def test_suggested_rule_of_a_blocking_call_error_allows_it(loop_kind, config):
    async def body():
        with aiocop.raise_on_violations(at_call=True):
            try:
                legacy.read_config(config)
            except aiocop.BlockingCallError as exc:
                return exc
        return None

    exc = run_monitored(body, loop_kind).value
    assert isinstance(exc, aiocop.BlockingCallError)
    assert exc.suggested_rule == "event=open,function=blocking_helpers.legacy.read_config"
    rule = aiocop.allow(exc.suggested_rule)
    assert run_monitored(body, loop_kind).value is None
    assert rule.hits == 1


def test_suggest_allow_rule_from_a_reported_record(loop_kind, config):
    """The rule suggested for a reported call names its function (the same on every
    checkout), is the same as the one raising at the call suggests, and allows that call only."""

    async def body():
        legacy.read_config(config)
        with open(config) as f:
            f.read()

    result = run_monitored(body, loop_kind)
    (from_legacy,) = opened_from(result, "read_config")
    (from_here,) = opened_from(result, "body")
    legacy_rule = "event=open,function=blocking_helpers.legacy.read_config"
    assert aiocop.suggest_allow_rule(from_legacy) == from_legacy["suggested_rule"] == legacy_rule
    assert aiocop.suggest_allow_rule(from_here) == f"event=open,function={__name__}.{body.__qualname__}"
    rule = aiocop.allow(aiocop.suggest_allow_rule(from_legacy))
    again = run_monitored(body, loop_kind)
    assert opened_from(again, "read_config") == []
    assert len(opened_from(again, "body")) == 1
    assert rule.hits == 1


def test_suggest_allow_rule_needs_a_reported_event():
    """The suggestion is made when the call is recorded; a dict without it is refused (no
    rule is rebuilt from the displayed text)."""
    with pytest.raises(TypeError, match="suggested_rule"):
        aiocop.suggest_allow_rule({"event": "time.sleep(1)", "trace": ""})
    with pytest.raises(TypeError, match="suggested_rule"):
        aiocop.suggest_allow_rule("event=open")
    assert aiocop.suggest_allow_rule({"suggested_rule": None}) is None  # a call without frames
    raw = {"event_name": "open", "raw_args": ("/x", "r"), "raw_stack": [("/srv/app/views.py", 3, "index")],
           "timestamp": 0.0, "severity": 10}
    assert aiocop.suggest_allow_rule(aiocop.format_blocking_event(raw)) == "event=open,path=*/app/views.py"


# --------------------------------------------------------------------------- the rule objects


def test_spec_strings_and_fields():
    rule = aiocop.allow(" module = blocking_helpers.* , event=open ")
    assert rule.spec == "event=open,module=blocking_helpers.*"  # canonical order
    assert str(rule) == rule.spec
    assert (rule.event, rule.module, rule.path, rule.function, rule.frames) == (
        "open", "blocking_helpers.*", None, None, "first")
    assert rule.source == "api"
    assert rule.hits == 0

    bare = aiocop.allow("time.sleep")
    assert bare.spec == "event=time.sleep" and bare.event == "time.sleep"

    full = aiocop.allow(event="os.*", module="m", path="/p/*.py", function="f", frames="any",
                        source="conftest")
    assert full.spec == "event=os.*,module=m,path=/p/*.py,function=f,frames=any"
    assert full.frames == "any"
    assert full.source == "conftest"

    assert aiocop.allow(event="open") == aiocop.allow("event=open")
    assert aiocop.allow("event=open,module=blocking_helpers.*") == rule
    assert aiocop.allow("event=open") != rule
    assert aiocop.allow({"event": "open", "module": "blocking_helpers.*"}) == rule


def test_allow_rules_lists_what_is_in_force_and_disallow_removes():
    assert aiocop.allow_rules() == []
    first = aiocop.allow("open")
    second = aiocop.allow(module="blocking_helpers.*")
    assert aiocop.allow_rules() == [first, second]
    assert aiocop.allow("event=open") == first
    assert aiocop.allow_rules() == [first, second]  # the same rule is in force once
    assert aiocop.disallow(first) == 1
    assert aiocop.allow_rules() == [second]
    assert aiocop.disallow(first) == 0
    assert aiocop.disallow("module=blocking_helpers.*") == 1  # by spec
    assert aiocop.allow_rules() == []
    aiocop.allow("open")
    aiocop.clear_allow_rules()
    assert aiocop.allow_rules() == []


def test_disallowed_call_is_reported_again(loop_kind, config):
    rule = aiocop.allow("open")

    async def body():
        with open(config) as f:
            f.read()

    assert run_monitored(body, loop_kind).records("open") == []
    assert aiocop.disallow("open") == 1
    assert len(run_monitored(body, loop_kind).records("open")) == 1
    assert rule.hits == 1


def test_unused_rules_report(loop_kind, config):
    """A rule is unused when blocking calls were checked while it was in force and it matched
    none; a rule no blocking call was checked against is not reported (nothing ran that it
    could have matched)."""
    used = aiocop.allow(module="blocking_helpers.legacy")
    unused = aiocop.allow("event=sqlite3.connect")
    unused_too = aiocop.allow(function="no_such_function")
    assert aiocop.unused_allow_rules() == []  # no blocking call checked yet

    async def body():
        legacy.read_config(config)
        legacy.stat_config(config)
        legacy.read_config(config)

    run_monitored(body, loop_kind)
    assert used.hits == 3
    assert (unused.hits, unused_too.hits) == (0, 0)
    assert unused.checked == unused_too.checked == used.checked == 3
    assert aiocop.unused_allow_rules() == [unused, unused_too]
    # a scoped rule: reported when a blocking call was checked while it was in force
    with aiocop.allowing("event=os.rename") as idle:
        pass
    assert aiocop.unused_allow_rules() == [unused, unused_too]

    async def scoped_body():
        with aiocop.allowing("event=os.rename") as scoped:
            legacy.read_config(config)
        return scoped

    scoped = run_monitored(scoped_body, loop_kind).value
    assert (idle.checked, scoped.checked, scoped.hits) == (0, 1, 0)
    assert aiocop.unused_allow_rules() == [unused, unused_too, scoped]
    # an equal rule made again is listed once
    aiocop.allow("event=sqlite3.connect")
    assert aiocop.unused_allow_rules() == [unused, unused_too, scoped]
    # clear_allow_rules() forgets them all
    aiocop.clear_allow_rules()
    assert aiocop.unused_allow_rules() == []


# --------------------------------------------------------------------------- allowing (scoped)


def test_allowing_is_scoped_to_the_task(loop_kind, config):
    async def body():
        inside = asyncio.Event()
        other_done = asyncio.Event()

        async def scoped():
            with aiocop.allowing("open") as rule:
                assert aiocop.allow_rules() == []  # not a global rule
                inside.set()
                await other_done.wait()
                with open(config) as f:  # allowed here
                    f.read()
            await asyncio.sleep(0)
            with open(config) as f:  # after the block: reported
                f.read()
            return rule

        async def other():
            await inside.wait()  # scoped()'s block is open while this runs
            with open(config) as f:
                f.read()
            other_done.set()

        rule, _ = await asyncio.gather(
            asyncio.create_task(scoped(), name="scoped"),
            asyncio.create_task(other(), name="other"),
        )
        return rule

    result = run_monitored(body, loop_kind)
    rule = result.value
    assert isinstance(rule, aiocop.AllowRule) and rule.spec == "event=open"
    assert rule.hits == 1
    assert len(opened_from(result, "other")) == 1
    assert len(opened_from(result, "scoped")) == 1  # the one after the block
    assert [r["task_name"] for r in result.records("open")] == ["other", "scoped"]


def test_allowing_with_at_call(loop_kind, tmp_path):
    target = tmp_path / "scoped.txt"

    async def body():
        with aiocop.raise_on_violations(at_call=True):
            with aiocop.allowing(event="open", function="write_config"):
                legacy.write_config(target, "scoped")
            with pytest.raises(aiocop.BlockingCallError):
                legacy.write_config(tmp_path / "not-allowed.txt", "x")
        return "ok"

    assert run_monitored(body, loop_kind).value == "ok"
    assert target.read_text() == "scoped"
    assert not (tmp_path / "not-allowed.txt").exists()


def test_allowing_nests_and_restores(loop_kind, config):
    async def body():
        with aiocop.allowing("open"):
            with aiocop.allowing("os.stat"):
                os.stat(config)
                open(config).close()
            os.stat(config)  # reported: the inner block is closed
            open(config).close()

    result = run_monitored(body, loop_kind)
    assert len(result.records("os.stat")) == 1
    assert result.records("open") == []


def test_allowing_rejects_malformed_rules():
    with pytest.raises(ValueError, match="colour"):
        with aiocop.allowing("colour=blue"):
            pass


# --------------------------------------------------------------------------- env and pyproject


ENV_PROGRAM = """
    import asyncio, json, os, sys
    sys.path.insert(0, {tests!r})
    import aiocop
    from blocking_helpers import legacy

    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection()
    events = []
    aiocop.detect_slow_tasks(threshold_ms=10, on_slow_task=events.append)

    async def main():
        aiocop.activate()
        await asyncio.sleep(0)
        legacy.read_config({config!r})
        os.stat({config!r})
        with open({config!r}) as f:
            f.read()
        await asyncio.sleep(0)
        aiocop.flush()

    asyncio.run(main())
    records = [r["event"].split("(")[0] + "@" + r["entry_point"].rsplit(":", 1)[-1]
               for e in events for r in e.blocking_events]
    rules = [[r.spec, r.source, r.hits] for r in aiocop.allow_rules()]
    print(json.dumps({{"rules": rules, "records": records}}))
"""


def test_rules_from_the_environment(config):
    tests = os.path.dirname(os.path.abspath(__file__))
    proc = run_python(
        ENV_PROGRAM.format(tests=tests, config=str(config)),
        env={"AIOCOP_ALLOW": "event=open,module=blocking_helpers.*; event=os.stat ;module=x.*"},
    )
    assert proc.returncode == 0, describe(proc)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rules"] == [
        ["event=open,module=blocking_helpers.*", "env", 1],
        ["event=os.stat", "env", 1],
        ["module=x.*", "env", 0],
    ]
    assert out["records"] == ["open@main"]


@pytest.mark.parametrize("value", ["colour=blue", "event=open;event=", "event=open;frames=any"])
def test_malformed_rules_in_the_environment(value):
    bad = value.split(";")[-1]
    proc = run_python(
        f"""
        import os
        import aiocop
        aiocop.patch_audit_functions()
        try:
            aiocop.start_blocking_io_detection()
        except ValueError as exc:
            assert {bad!r} in str(exc), str(exc)
            print("ValueError")
        else:
            raise SystemExit("no ValueError")
        assert aiocop.allow_rules() == [], aiocop.allow_rules()  # all or none
        # nothing was installed: fixing the variable and calling again works
        del os.environ["AIOCOP_ALLOW"]
        aiocop.start_blocking_io_detection()
        print("installed")
        """,
        env={"AIOCOP_ALLOW": value},
    )
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split() == ["ValueError", "installed"], describe(proc)


PYPROJECT = """
[project]
name = "legacy-app"

[tool.aiocop]
allow = [
    "event=open,module=blocking_helpers.*",
    {{ event = "os.stat", module = "blocking_helpers.legacy" }},
    {{ function = "LegacyStore.load", frames = "any" }},
    {extra}
]
"""


def test_rules_from_pyproject(loop_kind, tmp_path, config):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT.format(extra=""))
    rules = aiocop.load_allow_rules(pyproject)
    assert [r.spec for r in rules] == [
        "event=open,module=blocking_helpers.*",
        "event=os.stat,module=blocking_helpers.legacy",
        "function=LegacyStore.load,frames=any",
    ]
    assert {r.source for r in rules} == {"pyproject"}
    assert aiocop.allow_rules() == rules
    assert rules[2].frames == "any"

    async def body():
        legacy.read_config(config)
        legacy.stat_config(config)
        with open(config) as f:
            f.read()

    result = run_monitored(body, loop_kind)
    assert [entry_function(r) for r in result.records()] == ["body"]
    assert [r.hits for r in rules] == [1, 1, 0]
    assert aiocop.unused_allow_rules() == [rules[2]]


def test_pyproject_without_rules(tmp_path):
    assert aiocop.load_allow_rules(tmp_path / "missing.toml") == []
    plain = tmp_path / "pyproject.toml"
    plain.write_text('[project]\nname = "x"\n')
    assert aiocop.load_allow_rules(plain) == []
    empty = tmp_path / "empty.toml"
    empty.write_text("[tool.aiocop]\nallow = []\n")
    assert aiocop.load_allow_rules(str(empty)) == []
    assert aiocop.allow_rules() == []


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ('{ colour = "blue" }', "colour"),
        ('{ event = 42 }', "event"),
        ('{ frames = "any" }', "frames"),
        ('"event="', "event="),
        ('"colour=blue"', "colour=blue"),
        ("42", "42"),
    ],
)
def test_malformed_rules_in_pyproject(tmp_path, extra, named):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT.format(extra=extra))
    with pytest.raises(ValueError, match=re.escape(named)):
        aiocop.load_allow_rules(pyproject)
    assert aiocop.allow_rules() == []  # all or none


def test_pyproject_allow_must_be_a_list(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.aiocop]\nallow = "event=open"\n')
    with pytest.raises(ValueError, match="list"):
        aiocop.load_allow_rules(pyproject)


# --------------------------------------------------------------------------- malformed rules


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        (("colour=blue",), {}, "colour=blue"),
        (("event=",), {}, "event="),
        (("",), {}, "empty"),
        (("event=open,event=os.stat",), {}, "event=open,event=os.stat"),
        (("frames=sideways,event=open",), {}, "sideways"),
        (("frames=any",), {}, "frames=any"),
        ((), {"frames": "any"}, "frames=any"),
        ((), {}, "at least one"),
        ((), {"event": "open", "frames": "sideways"}, "sideways"),
        ((), {"event": "open,os.stat"}, "open,os.stat"),
        ((), {"module": "  "}, "module"),
        (({"event": "open", "colour": "blue"},), {}, "colour"),
    ],
)
def test_malformed_rules(args, kwargs, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        aiocop.allow(*args, **kwargs)
    assert aiocop.allow_rules() == []


@pytest.mark.parametrize(("args", "kwargs"), [((42,), {}), ((), {"event": 42})])
def test_wrong_types(args, kwargs):
    with pytest.raises(TypeError):
        aiocop.allow(*args, **kwargs)
    assert aiocop.allow_rules() == []


def test_rules_apply_to_a_time_sleep_too(loop_kind):
    """A quick sanity check that the wrapper-emitted events (time.sleep on 3.11) are matched."""
    rule = aiocop.allow("time.sleep")

    async def body():
        time.sleep(0.001)

    assert run_monitored(body, loop_kind).records("time.sleep") == []
    assert rule.hits == 1


# --------------------------------------------------------------------------- module resolution


SWAP_SOURCE = """\
def read(path):
    with open(path) as f:
        return f.read()
"""


def test_module_rule_after_a_module_swap(loop_kind, tmp_path, config):
    """A module that takes the place of another one in ``sys.modules`` (one removed, one added:
    the same size, as with plugin loaders, reloads, or test tools that unload modules) must
    still be known by its name to module/function rules."""
    import importlib.util
    import sys

    async def body(module):
        return module.read(config)

    hits = []
    for i in range(4):
        name = f"swapped_module_{loop_kind}_{i}"
        path = tmp_path / f"{name}.py"
        path.write_text(SWAP_SOURCE)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
            rule = aiocop.allow(module=name)
            result = run_monitored(lambda: body(module), loop_kind)
            assert result.value == "[legacy]\n"
            hits.append(rule.hits)
        finally:
            del sys.modules[name]  # the next one takes its place
    assert hits == [1, 1, 1, 1]
