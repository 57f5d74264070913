"""File-system families of the event table, triggered for real on asyncio and uvloop.

Each trigger is a named module-level function called from the monitored
coroutine; the record must carry the right name and weight and a trace that
names the trigger.  Direct calls into C (``open``, ``os.*``) must have the
trigger itself as entry point; stdlib Python helpers (shutil, tempfile,
glob, os.walk) put their own frames first, so the trigger must be in the
trace.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import assert_record, run_monitored

# ---------------------------------------------------------------- direct C calls


def do_open(tmp: Path) -> str:
    path = tmp / "data.txt"
    path.write_text("x")
    with open(path) as f:
        f.read()
    return str(path)


def do_listdir(tmp: Path) -> str:
    os.listdir(tmp)
    return str(tmp)


def do_mkdir(tmp: Path) -> str:
    os.mkdir(tmp / "newdir")
    return str(tmp / "newdir")


def do_rmdir(tmp: Path) -> str:
    (tmp / "gone").mkdir()
    os.rmdir(tmp / "gone")
    return str(tmp / "gone")


def do_remove(tmp: Path) -> str:
    (tmp / "victim.txt").write_text("x")
    os.remove(tmp / "victim.txt")
    return str(tmp / "victim.txt")


def do_rename(tmp: Path) -> str:
    (tmp / "a.txt").write_text("x")
    os.rename(tmp / "a.txt", tmp / "b.txt")
    return str(tmp / "a.txt")


def do_stat(tmp: Path) -> str:
    os.stat(tmp)
    return str(tmp)


def do_truncate(tmp: Path) -> str:
    (tmp / "t.txt").write_text("hello")
    os.truncate(tmp / "t.txt", 1)
    return str(tmp / "t.txt")


DIRECT = [
    # (trigger, record name, weight)
    (do_open, "open", 10),
    (do_listdir, "os.listdir", 10),
    (do_mkdir, "os.mkdir", 10),
    (do_rmdir, "os.rmdir", 10),
    (do_remove, "os.remove", 10),
    (do_rename, "os.rename", 10),
    (do_stat, "os.stat", 1),
    (do_truncate, "os.truncate", 10),
]


@pytest.mark.parametrize("trigger,name,weight", DIRECT, ids=[d[1] for d in DIRECT])
def test_direct_file_call_is_reported(loop_kind, tmp_path, trigger, name, weight):
    async def body():
        return trigger(tmp_path)

    result = run_monitored(body, loop_kind)
    rec = assert_record(result, name, weight, trigger.__name__, entry=True)
    # the first argument of the event string is the path operated on
    assert rec["event"].startswith(f"{name}(") and result.value in rec["event"], rec["event"]


def test_open_event_string(loop_kind, tmp_path):
    path = tmp_path / "fmt.txt"
    path.write_text("x")

    async def read_it():
        with open(path) as f:
            f.read()

    result = run_monitored(read_it, loop_kind)
    rec = assert_record(result, "open", 10, "read_it", entry=True)
    # ``open(<path>, r...)``: name, then the str() of each audit argument joined by ", "
    assert rec["event"].startswith(f"open({path}, r"), rec["event"]


def test_os_replace_is_reported(loop_kind, tmp_path):
    """CPython audits os.replace under the ``os.rename`` event name (3.11)."""
    (tmp_path / "src.txt").write_text("x")

    def do_replace():
        os.replace(tmp_path / "src.txt", tmp_path / "dst.txt")

    async def body():
        do_replace()

    result = run_monitored(body, loop_kind)
    names = {r["event"].split("(", 1)[0] for r in result.records()}
    name = "os.replace" if "os.replace" in names else "os.rename"
    assert_record(result, name, 10, "do_replace", entry=True)


def test_os_stat_exact_event(loop_kind, tmp_path):
    def stat_it():
        os.stat(tmp_path)

    async def body():
        stat_it()

    result = run_monitored(body, loop_kind)
    rec = assert_record(result, "os.stat", 1, "stat_it", entry=True)
    assert rec["event"] == f"os.stat({tmp_path})"
    assert len(result.records("os.stat")) == 1


# ---------------------------------------------------------------- stdlib helpers


def do_copyfile(tmp: Path) -> None:
    (tmp / "orig.txt").write_text("x")
    shutil.copyfile(tmp / "orig.txt", tmp / "copy.txt")


def do_copytree(tmp: Path) -> None:
    (tmp / "tree").mkdir()
    (tmp / "tree" / "f.txt").write_text("x")
    shutil.copytree(tmp / "tree", tmp / "tree2")


def do_rmtree(tmp: Path) -> None:
    (tmp / "doomed").mkdir()
    (tmp / "doomed" / "f.txt").write_text("x")
    shutil.rmtree(tmp / "doomed")


def do_move(tmp: Path) -> None:
    (tmp / "mv.txt").write_text("x")
    shutil.move(tmp / "mv.txt", tmp / "moved.txt")


def do_mkstemp(tmp: Path) -> None:
    fd, _ = tempfile.mkstemp(dir=tmp)
    os.close(fd)


def do_mkdtemp(tmp: Path) -> None:
    tempfile.mkdtemp(dir=tmp)


def do_glob(tmp: Path) -> None:
    (tmp / "g.txt").write_text("x")
    glob.glob(str(tmp / "*.txt"))


def do_walk(tmp: Path) -> None:
    (tmp / "w").mkdir()
    list(os.walk(tmp))


HELPERS = [
    (do_copyfile, "shutil.copyfile", 10),
    (do_copytree, "shutil.copytree", 50),
    (do_rmtree, "shutil.rmtree", 50),
    (do_move, "shutil.move", 10),
    (do_mkstemp, "tempfile.mkstemp", 10),
    (do_mkdtemp, "tempfile.mkdtemp", 10),
    (do_glob, "glob.glob", 50),
    (do_walk, "os.walk", 50),
]


@pytest.mark.parametrize("trigger,name,weight", HELPERS, ids=[h[1] for h in HELPERS])
def test_stdlib_file_helper_is_reported(loop_kind, tmp_path, trigger, name, weight):
    async def body():
        trigger(tmp_path)

    result = run_monitored(body, loop_kind)
    assert_record(result, name, weight, trigger.__name__)
