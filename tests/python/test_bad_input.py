"""Bad input to the setup and registry functions raises clear errors (ours
only: the incumbent accepts anything).  Validation comes before the
"already configured" check, so the in-process tests work after the session
setup too; the subprocess tests check a fresh process, before any setup."""

from __future__ import annotations

import logging

import pytest

import aiocop

from conftest import THRESHOLD_MS, describe, run_python


@pytest.mark.parametrize("bad", [-1, -0.5])
def test_negative_threshold(bad):
    with pytest.raises(ValueError, match="threshold_ms"):
        aiocop.detect_slow_tasks(threshold_ms=bad)
    assert aiocop.get_slow_task_threshold_ms() == pytest.approx(float(THRESHOLD_MS))


@pytest.mark.parametrize("bad", ["x", None, [10]])
def test_non_numeric_threshold(bad):
    with pytest.raises(TypeError, match="threshold_ms"):
        aiocop.detect_slow_tasks(threshold_ms=bad)


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_trace_depth(bad):
    with pytest.raises(ValueError, match="trace_depth"):
        aiocop.start_blocking_io_detection(trace_depth=bad)


def test_non_callable_on_slow_task():
    with pytest.raises(TypeError):
        aiocop.detect_slow_tasks(threshold_ms=10, on_slow_task=42)


@pytest.mark.parametrize("bad", [42, "x", None])
def test_register_non_callable_callback(bad):
    with pytest.raises(TypeError):
        aiocop.register_slow_task_callback(bad)


@pytest.mark.parametrize("bad", ["x", 42, None])
def test_register_non_callable_provider(bad):
    with pytest.raises(TypeError):
        aiocop.register_context_provider(bad)


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_sampling_interval(bad):
    with pytest.raises(ValueError, match="interval_ms"):
        aiocop.start_cpu_sampling(interval_ms=bad)


def test_bad_dispatch_in_process():
    with pytest.raises(ValueError, match="dispatch"):
        aiocop.detect_slow_tasks(threshold_ms=10, dispatch="bogus")


def test_valid_repeat_call_still_only_warns(caplog):
    """Control: a *valid* repeat call is not an error, it warns and does nothing."""
    caplog.set_level(logging.DEBUG)
    aiocop.start_blocking_io_detection(trace_depth=5)
    assert any(r.name.startswith("aiocop") and r.levelno == logging.WARNING for r in caplog.records)


def test_bad_input_before_setup_raises_and_configures_nothing():
    proc = run_python(
        """
        import logging, sys
        import aiocop

        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="LOG %(name)s %(message)s")

        def expect(exc_type, word, fn, *a, **kw):
            try:
                fn(*a, **kw)
            except exc_type as exc:
                assert word in str(exc), (word, str(exc))
            else:
                raise AssertionError(f"{fn.__name__}{a}{kw} did not raise {exc_type.__name__}")

        expect(ValueError, "trace_depth", aiocop.start_blocking_io_detection, trace_depth=0)
        expect(ValueError, "threshold_ms", aiocop.detect_slow_tasks, threshold_ms=-1)
        expect(TypeError, "threshold_ms", aiocop.detect_slow_tasks, threshold_ms="x")
        expect(ValueError, "interval_ms", aiocop.start_cpu_sampling, interval_ms=0)
        expect(ValueError, "interval_ms", aiocop.start_cpu_sampling, interval_ms=-5)
        expect(ValueError, "dispatch", aiocop.detect_slow_tasks, threshold_ms=10, dispatch="bogus")
        assert aiocop.is_cpu_sampling_started() is False

        # the failed calls configured nothing: the real setup now runs without a warning
        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection(trace_depth=20)
        aiocop.detect_slow_tasks(threshold_ms=25)
        assert aiocop.get_slow_task_threshold_ms() == 25.0
        assert aiocop.is_cpu_sampling_started() is True
        print("DONE")
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert "DONE" in proc.stdout
    assert "LOG aiocop" not in proc.stdout, describe(proc)
