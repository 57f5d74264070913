"""Bad input is refused with a TypeError/ValueError (or a pytest usage error) that names the
argument, key or variable and the accepted values — never accepted by accident, never an
INTERNALERROR."""

from __future__ import annotations

import textwrap

import pytest

import aiocop

from conftest import PLUGIN_ARGS, describe, run_python

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def no_allow_rules():
    aiocop.clear_allow_rules()
    yield
    aiocop.clear_allow_rules()


# --------------------------------------------------------------------------- the API


@pytest.mark.parametrize("bad", ["no", "", 0, 1, None])
def test_cpu_sampling_must_be_a_bool(bad):
    with pytest.raises(TypeError, match="cpu_sampling must be True or False"):
        aiocop.detect_slow_tasks(threshold_ms=10, cpu_sampling=bad)


@pytest.mark.parametrize("bad", ["open", {"severity": 10}, 42, [42]])
def test_calculate_io_severity_score_needs_a_list_of_events(bad):
    with pytest.raises(TypeError, match="blocking_events must be a list of BlockingEventInfo"):
        aiocop.calculate_io_severity_score(bad)


def test_calculate_io_severity_score_of_events():
    # None scores 0: aiocop 1.2.1's signature takes `list | None`, and code written for it
    # passes None.
    assert aiocop.calculate_io_severity_score(None) == 0
    assert aiocop.calculate_io_severity_score([]) == 0
    assert aiocop.calculate_io_severity_score([{"severity": 50}, {"severity": None}, {}]) == 70


def test_frames_any_applies_to_a_spec_string():
    rule = aiocop.allow("open", frames="any")
    assert rule.frames == "any"
    assert rule.spec == "event=open,frames=any"
    assert aiocop.allow("event=open,module=app.*", frames="first").frames == "first"
    with aiocop.allowing("event=os.stat", frames="any") as scoped:
        assert scoped.frames == "any"


@pytest.mark.parametrize("bad", [3, None, ["any"]])
def test_frames_of_another_type_names_frames(bad):
    with pytest.raises(TypeError, match="frames must be 'first' or 'any'"):
        aiocop.allow("open", frames=bad)
    with pytest.raises(TypeError, match="frames must be 'first' or 'any'"):
        aiocop.allow({"event": "open", "frames": bad})


def test_an_unknown_frames_value_names_frames():
    with pytest.raises(ValueError, match="frames must be 'first' or 'any', got 'some'"):
        aiocop.allow(event="open", frames="some")


def test_a_misspelled_pyproject_key_is_refused(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.aiocop]\nalow = ["event=open"]\n')
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['alow'\].*expected \['allow', 'threshold_ms'"):
        aiocop.load_allow_rules(pyproject)
    assert aiocop.allow_rules() == []


def test_a_bad_redact_switch_is_refused_before_anything_is_installed():
    proc = run_python(
        """
        import aiocop
        try:
            aiocop.start_blocking_io_detection()
        except ValueError as exc:
            print("ValueError:", exc)
        from aiocop import _aiocop
        print("installed:", _aiocop._hook_installed())
        """,
        env={"AIOCOP_REDACT": "maybe"},
    )
    assert proc.returncode == 0, describe(proc)
    assert 'AIOCOP_REDACT="maybe"' in proc.stdout and "0/off/false/no" in proc.stdout, describe(proc)
    assert "installed: False" in proc.stdout, describe(proc)


# --------------------------------------------------------------------------- the plugin


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("AIOCOP_ALLOW", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        test_one=textwrap.dedent(
            """
            import pytest

            @pytest.mark.asyncio
            async def test_one():
                pass
            """
        )
    )
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*PLUGIN_ARGS, "-p", "no:cacheprovider", *args, timeout=120)


def text_of(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def assert_usage_error(result: pytest.RunResult, *words: str) -> None:
    text = text_of(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert "INTERNALERROR" not in text and "Traceback" not in text, text
    for word in words:
        assert word in text, (word, text)


@pytest.mark.parametrize("value", ["no", "yes", 1, "True"])
def test_a_non_bool_at_call_marker_is_a_usage_error(inner, value):
    inner.makepyfile(
        test_marker=f"""
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.aiocop(at_call={value!r})
        async def test_marked():
            pass
        """
    )
    assert_usage_error(run(inner, "--aiocop"), "at_call must be True or False", repr(value))


def test_a_bad_aiocop_allow_variable_is_a_usage_error(inner, monkeypatch):
    monkeypatch.setenv("AIOCOP_ALLOW", "foo=bar")
    assert_usage_error(run(inner, "--aiocop"), "foo=bar", "unknown key")


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_bad_threshold_option_is_a_usage_error(inner, value):
    assert_usage_error(run(inner, "--aiocop", f"--aiocop-threshold-ms={value}"), "--aiocop-threshold-ms")


def test_a_misspelled_pyproject_key_is_a_usage_error(inner):
    inner.makepyprojecttoml('[tool.aiocop]\nalow = ["event=open"]\n')
    assert_usage_error(run(inner, "--aiocop"), "'alow'", "['allow', 'threshold_ms'", "pyproject.toml")
