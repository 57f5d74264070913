"""sqlite3, fcntl, time.sleep and import families."""

from __future__ import annotations

import fcntl
import sqlite3
import sys
import time
import uuid

import pytest

from conftest import assert_record, run_monitored


def open_database(path) -> None:
    sqlite3.connect(path).close()


def lock_file(fh) -> None:
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def nap() -> None:
    time.sleep(0.001)


def import_fresh(name: str):
    return __import__(name)


def test_sqlite_connect_is_reported(loop_kind, tmp_path):
    db = tmp_path / "db.sqlite"

    async def body():
        open_database(db)

    result = run_monitored(body, loop_kind)
    rec = assert_record(result, "sqlite3.connect", 10, "open_database", entry=True)
    assert str(db) in rec["event"]


def test_flock_is_reported(loop_kind, tmp_path):
    fh = open(tmp_path / "lock", "w")  # opened outside the loop
    try:

        async def body():
            lock_file(fh)

        result = run_monitored(body, loop_kind)
    finally:
        fh.close()
    assert_record(result, "fcntl.flock", 1, "lock_file", entry=True)
    assert len(result.records("fcntl.flock")) == 2


def test_time_sleep_is_one_record(loop_kind):
    async def body():
        nap()

    result = run_monitored(body, loop_kind)
    rec = assert_record(result, "time.sleep", 50, "nap", entry=True)
    assert rec["event"] == "time.sleep(0.001)"
    # exactly one record: the wrapper (< 3.13) and the native event (3.13+) never double up
    assert len(result.records("time.sleep")) == 1
    evt = result.events_with("time.sleep")[0]
    assert len(evt.blocking_events) == 1
    assert evt.severity_score == 50
    assert evt.severity_level == "high"


def test_import_of_fresh_module_is_reported(loop_kind, tmp_path, monkeypatch):
    name = f"freshmod_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)

    async def body():
        return import_fresh(name).VALUE

    try:
        result = run_monitored(body, loop_kind)
    finally:
        sys.modules.pop(name, None)
    assert result.value == 42
    rec = assert_record(result, "import", 50, "import_fresh")
    assert rec["event"].startswith(f"import({name}"), rec["event"]


def test_import_statement_is_reported(loop_kind, tmp_path, monkeypatch):
    name = f"freshmod_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ns: dict = {}

    def import_statement():
        exec(f"import {name} as mod", ns)

    async def body():
        import_statement()

    try:
        result = run_monitored(body, loop_kind)
    finally:
        sys.modules.pop(name, None)
    assert ns["mod"].VALUE == 7
    assert_record(result, "import", 50, "import_statement")


@pytest.mark.parametrize("n", [1, 3])
def test_sleep_records_add_up(loop_kind, n):
    def naps():
        for _ in range(n):
            time.sleep(0)

    async def body():
        naps()

    result = run_monitored(body, loop_kind)
    assert len(result.records("time.sleep")) == n
    evt = result.events_with("time.sleep")[0]
    assert evt.severity_score == 50 * n
