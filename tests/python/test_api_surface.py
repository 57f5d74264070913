"""The public API of aiocop 1.2.1: names, defaults, constants, types, tables."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import typing

import pytest

import aiocop

from conftest import THRESHOLD_MS

PUBLIC_NAMES = [
    # setup
    "patch_audit_functions",
    "start_blocking_io_detection",
    "detect_slow_tasks",
    "start_cpu_sampling",
    "is_cpu_sampling_started",
    "detect_stuck_loops",
    "stop_detecting_stuck_loops",
    # activation
    "activate",
    "deactivate",
    "is_monitoring_active",
    # raise on violations
    "enable_raise_on_violations",
    "disable_raise_on_violations",
    "is_raise_on_violations_enabled",
    "raise_on_violations",
    "HighSeverityBlockingIoException",
    # callbacks
    "register_slow_task_callback",
    "unregister_slow_task_callback",
    "clear_slow_task_callbacks",
    # context providers
    "register_context_provider",
    "unregister_context_provider",
    "clear_context_providers",
    "ContextProvider",
    # utilities
    "reset_blocking_events",
    "format_blocking_event",
    "get_patched_functions",
    "get_blocking_events_dict",
    "get_slow_task_threshold_ms",
    "calculate_io_severity_score",
    "get_severity_level_from_score",
    # types
    "SlowTaskEvent",
    "BlockingEventInfo",
    "CpuStackSample",
    "RawBlockingEvent",
    "SlowTaskCallback",
    "IoSeverityLevel",
    "StuckLoopEvent",
    "StuckFrame",
    # constants
    "WEIGHT_HEAVY",
    "WEIGHT_MODERATE",
    "WEIGHT_LIGHT",
    "WEIGHT_TRIVIAL",
    "THRESHOLD_HIGH",
    "THRESHOLD_MEDIUM",
    "THRESHOLD_LOW",
]


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_exists(name):
    assert hasattr(aiocop, name), name
    assert name in aiocop.__all__


def test_functions_are_callable():
    for name in PUBLIC_NAMES:
        obj = getattr(aiocop, name)
        if name.isupper() or name in {
            "SlowTaskEvent",
            "BlockingEventInfo",
            "CpuStackSample",
            "RawBlockingEvent",
            "SlowTaskCallback",
            "IoSeverityLevel",
            "ContextProvider",
            "HighSeverityBlockingIoException",
        }:
            continue
        assert callable(obj), name


def defaults(fn) -> dict[str, object]:
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def test_setup_signatures():
    assert list(inspect.signature(aiocop.patch_audit_functions).parameters) == []
    assert defaults(aiocop.start_blocking_io_detection) == {"trace_depth": 20}
    dst = defaults(aiocop.detect_slow_tasks)
    assert dst["threshold_ms"] == 30
    assert dst["on_slow_task"] is None
    assert dst["cpu_sampling"] is True
    params = list(inspect.signature(aiocop.detect_slow_tasks).parameters)
    assert params[:3] == ["threshold_ms", "on_slow_task", "cpu_sampling"]
    assert defaults(aiocop.start_cpu_sampling) == {
        "interval_ms": 10,
        "arm_after_ms": None,
        "idle_interval_ms": None,
        "max_samples_per_slice": 32,
        "trace_depth": 20,
        "native_frames": False,
    }
    assert list(inspect.signature(aiocop.start_cpu_sampling).parameters) == [
        "interval_ms",
        "arm_after_ms",
        "idle_interval_ms",
        "max_samples_per_slice",
        "trace_depth",
        "native_frames",
    ]


def test_constants():
    assert aiocop.WEIGHT_HEAVY == 50
    assert aiocop.WEIGHT_MODERATE == 10
    assert aiocop.WEIGHT_LIGHT == 1
    assert aiocop.WEIGHT_TRIVIAL == 0
    assert aiocop.THRESHOLD_HIGH == 50
    assert aiocop.THRESHOLD_MEDIUM == 10
    assert aiocop.THRESHOLD_LOW == 1


def test_version_is_the_installed_distribution_version():
    from importlib.metadata import version

    assert aiocop.__version__ == version("aiocop")


def test_import_does_not_load_importlib_metadata():
    # `import aiocop` stays quick: no scan of sys.path for distributions (importlib.metadata,
    # zipfile, csv and their cached listings).
    import subprocess

    code = (
        "import sys; before = 'importlib.metadata' in sys.modules; import aiocop; "
        "print(before, 'importlib.metadata' in sys.modules, aiocop.__version__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[:2] == ["False", "False"], out
    assert out[2] == aiocop.__version__


def test_submodule_imports():
    from aiocop.exceptions import HighSeverityBlockingIoException
    from aiocop.types.events import BlockingEventInfo, CpuStackSample, RawBlockingEvent, SlowTaskEvent
    from aiocop.types.severity import (
        THRESHOLD_HIGH,
        THRESHOLD_LOW,
        THRESHOLD_MEDIUM,
        WEIGHT_HEAVY,
        WEIGHT_LIGHT,
        WEIGHT_MODERATE,
        WEIGHT_TRIVIAL,
        IoSeverityLevel,
    )

    assert HighSeverityBlockingIoException is aiocop.HighSeverityBlockingIoException
    assert SlowTaskEvent is aiocop.SlowTaskEvent
    assert BlockingEventInfo is aiocop.BlockingEventInfo
    assert CpuStackSample is aiocop.CpuStackSample
    assert RawBlockingEvent is aiocop.RawBlockingEvent
    assert IoSeverityLevel is aiocop.IoSeverityLevel
    assert (WEIGHT_HEAVY, WEIGHT_MODERATE, WEIGHT_LIGHT, WEIGHT_TRIVIAL) == (50, 10, 1, 0)
    assert (THRESHOLD_HIGH, THRESHOLD_MEDIUM, THRESHOLD_LOW) == (50, 10, 1)


def test_trio_submodule():
    """``aiocop.trio`` (imported on its own: ``import aiocop`` does not import trio)."""
    pytest.importorskip("trio")
    import aiocop.trio

    assert aiocop.trio.__all__ == ["AiocopInstrument", "attach_to_current_run"]
    assert callable(aiocop.trio.attach_to_current_run)
    assert aiocop.trio.attach_to_current_run() is None  # outside a trio run
    instrument = aiocop.trio.AiocopInstrument()
    for hook in ("before_run", "before_task_step", "after_task_step", "after_run"):
        assert callable(getattr(instrument, hook)), hook


def test_import_does_not_import_trio():
    code = "import sys, aiocop; print('trio' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False"]


def test_types_package_exports():
    import aiocop.types as types

    for name in ["BlockingEventInfo", "RawBlockingEvent", "SlowTaskEvent", "IoSeverityLevel"]:
        assert getattr(types, name) is getattr(aiocop, name)


def test_slow_task_event_dataclass():
    cls = aiocop.SlowTaskEvent
    assert dataclasses.is_dataclass(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    # aiocop 1.2.1's fields, in its order; ours adds the task identity and where the time went
    # after them (defaults None; stuck_reports 0).
    assert names[9:] == [
        "task_name",
        "coroutine",
        "cpu_ms",
        "wait_ms",
        "blocked_in",
        "gc_ms",
        "stuck_reports",
    ]
    assert names[:9] == [
        "elapsed_ms",
        "threshold_ms",
        "exceeded_threshold",
        "severity_score",
        "severity_level",
        "reason",
        "blocking_events",
        "context",
        "cpu_stack_samples",
    ]
    evt = cls(12.5, 10.0, True, 50, "high", "io_blocking", [])
    assert (evt.task_name, evt.coroutine) == (None, None)
    assert evt.stuck_reports == 0
    assert evt.context == {}
    assert evt.cpu_stack_samples == []
    other = cls(1.0, 10.0, False, 0, "low", "io_blocking", [])
    assert other.context is not evt.context, "default_factory, not a shared default"
    with pytest.raises(dataclasses.FrozenInstanceError):
        evt.elapsed_ms = 1.0  # type: ignore[misc]
    replaced = dataclasses.replace(evt, context={"k": 1})
    assert replaced.context == {"k": 1} and replaced.elapsed_ms == 12.5
    assert evt == cls(12.5, 10.0, True, 50, "high", "io_blocking", [], {}, [])
    kw = cls(
        elapsed_ms=1.0,
        threshold_ms=2.0,
        exceeded_threshold=False,
        severity_score=0,
        severity_level="low",
        reason="cpu_blocking",
        blocking_events=[],
        context={"a": 1},
        cpu_stack_samples=[{"trace": "t", "entry_point": "e", "count": 1}],
    )
    assert kw.cpu_stack_samples[0]["count"] == 1


def test_typed_dict_keys():
    info = aiocop.BlockingEventInfo
    assert set(info.__required_keys__) == {"event", "trace", "entry_point", "severity"}
    assert set(info.__optional_keys__) == {  # ours, beyond 1.2.1
        "task_name", "coroutine", "event_name", "site", "user_trace", "suggested_rule",
        "origin", "distribution", "distribution_version", "site_key",
    }
    # the Rust-owned list of a BlockingEventInfo's keys
    assert set(aiocop._aiocop.BLOCKING_EVENT_FIELDS) == (
        info.__required_keys__ | info.__optional_keys__
    )
    assert set(typing.get_type_hints(info)) == info.__required_keys__ | info.__optional_keys__
    sample = aiocop.CpuStackSample
    assert set(sample.__required_keys__) == {"trace", "entry_point", "count"}
    assert set(sample.__optional_keys__) == {"on_cpu", "native_frames"}  # ours, beyond 1.2.1
    assert set(typing.get_type_hints(aiocop.RawBlockingEvent)) == {
        "event_name",
        "raw_args",
        "raw_stack",
        "timestamp",
        "severity",
    }
    assert set(typing.get_args(aiocop.IoSeverityLevel)) == {"low", "medium", "high"}


def test_high_severity_exception():
    events = [{"event": "time.sleep(0.05)", "trace": "a.py:1:f", "entry_point": "a.py:1:f", "severity": 50}]
    exc = aiocop.HighSeverityBlockingIoException(50, "high", 51.5, 10.0, events)
    assert isinstance(exc, Exception)
    assert exc.severity_score == 50
    assert exc.severity_level == "high"
    assert exc.elapsed_ms == 51.5
    assert exc.threshold_ms == 10.0
    assert exc.events == events
    text = str(exc)
    assert "time.sleep(0.05)" in text
    assert "50" in text
    exc_kw = aiocop.HighSeverityBlockingIoException(
        severity_score=60, severity_level="high", elapsed_ms=1.0, threshold_ms=2.0, events=[]
    )
    assert exc_kw.severity_score == 60


def test_blocking_events_dict():
    table = aiocop.get_blocking_events_dict()
    expected = {
        "time.sleep": 50,
        "socket.getaddrinfo": 50,
        "subprocess.Popen": 50,
        "os.system": 50,
        "import": 50,
        "glob.glob": 50,
        "shutil.rmtree": 50,
        "open": 10,
        "os.listdir": 10,
        "sqlite3.connect": 10,
        "tempfile.mkstemp": 10,
        "fcntl.flock": 1,
        "os.kill": 1,
        "os.stat": 1,
        "socket.socket.connect": 50,
        "socket.socket.sendall": 10,
        "os.getcwd": 0,
        "socket.socket.bind": 0,
    }
    for name, weight in expected.items():
        assert table.get(name) == weight, name
    assert all(isinstance(v, int) for v in table.values())
    # a copy: mutating it changes nothing
    table["open"] = 999
    table["made.up"] = 1
    fresh = aiocop.get_blocking_events_dict()
    assert fresh["open"] == 10
    assert "made.up" not in fresh


def test_blocking_events_dict_full_table():
    """Every name of the event table with its weight."""
    heavy = """time.sleep socket.getaddrinfo socket.getnameinfo socket.gethostbyname socket.gethostbyaddr
        os.walk os.fwalk glob.glob pathlib.Path.glob pathlib.Path.rglob shutil.copytree shutil.rmtree
        http.client.connect urllib.Request ftplib.connect smtplib.connect poplib.connect imaplib.open
        nntplib.connect os.system os.spawn os.posix_spawn os.exec os.fork subprocess.Popen builtins.input
        import socket.socket.connect socket.socket.connect_ex socket.socket.accept"""
    moderate = """open tempfile.mkdtemp tempfile.mkstemp os.listdir os.scandir os.mkdir os.rmdir os.remove
        os.rename os.replace os.link os.symlink os.truncate shutil.copyfile shutil.copymode shutil.copystat
        shutil.move sqlite3.connect os.sendfile socket.socket.send socket.socket.sendto socket.socket.sendmsg
        socket.socket.sendall socket.socket.recv socket.socket.recv_into socket.socket.recvfrom
        socket.socket.recvfrom_into socket.socket.recvmsg ssl.SSLSocket.write ssl.SSLSocket.send
        ssl.SSLSocket.read ssl.SSLSocket.recv"""
    light = """fcntl.flock fcntl.lockf os.kill syslog.syslog syslog.openlog os.path.ismount os.readlink
        os.access os.stat os.statvfs os.path.samestat os.path.sameopenfile"""
    trivial = "os.getcwd os.path.abspath os.path.islink socket.socket.bind"
    table = aiocop.get_blocking_events_dict()
    for names, weight in [(heavy, 50), (moderate, 10), (light, 1), (trivial, 0)]:
        for name in names.split():
            assert table.get(name) == weight, name


def test_patched_functions():
    patched = aiocop.get_patched_functions()
    assert isinstance(patched, list)
    assert "os.stat" in patched
    assert "socket.socket.connect" in patched
    assert "socket.socket.sendall" in patched
    if sys.version_info < (3, 13):
        assert "time.sleep" in patched
    # a copy
    patched.append("made.up")
    assert "made.up" not in aiocop.get_patched_functions()


def test_threshold_and_sampling_state():
    assert aiocop.get_slow_task_threshold_ms() == pytest.approx(float(THRESHOLD_MS))
    assert isinstance(aiocop.get_slow_task_threshold_ms(), float)
    assert aiocop.is_cpu_sampling_started() is True


def test_activation_flags():
    assert aiocop.is_monitoring_active() is False  # the per-test fixture deactivates
    aiocop.activate()  # outside a loop: just flips the flag
    assert aiocop.is_monitoring_active() is True
    aiocop.deactivate()
    assert aiocop.is_monitoring_active() is False


def test_raise_flags_outside_a_loop():
    assert aiocop.is_raise_on_violations_enabled() is False
    aiocop.enable_raise_on_violations()
    assert aiocop.is_raise_on_violations_enabled() is True
    aiocop.disable_raise_on_violations()
    assert aiocop.is_raise_on_violations_enabled() is False
    with aiocop.raise_on_violations() as cm:
        assert cm is not None
        assert aiocop.is_raise_on_violations_enabled() is True
    assert aiocop.is_raise_on_violations_enabled() is False


def test_severity_helpers():
    calc = aiocop.calculate_io_severity_score
    assert calc([]) == 0
    assert calc(None) == 0

    def info(sev):
        return {"event": "x()", "trace": "", "entry_point": "unknown", "severity": sev}

    assert calc([info(50), info(None), info(1)]) == 61, "a missing (None) weight counts 10"
    assert calc([info(0), info(0)]) == 0
    assert calc([info(10)] * 7) == 70
    level = aiocop.get_severity_level_from_score
    assert [level(s) for s in (0, 1, 9, 10, 49, 50, 51, 10_000)] == [
        "low",
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "high",
    ]


# Names beyond aiocop 1.2.1's added for adoption in CI (attribution, default rules).
OUR_CI_NAMES = ["default_allow_rules", "AllowRule"]


@pytest.mark.parametrize("name", OUR_CI_NAMES)
def test_our_ci_names_are_public(name):
    assert name in aiocop.__all__
    assert getattr(aiocop, name) is not None


def test_allow_rule_takes_a_distribution():
    params = inspect.signature(aiocop.allow).parameters
    assert params["distribution"].default is None
    assert params["distribution"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "distribution" in inspect.signature(aiocop.allowing).parameters
    assert aiocop.AllowRule(distribution="botocore<2").distribution == "botocore<2"
