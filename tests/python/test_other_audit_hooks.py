"""Other audit hooks in the process see the events of ``patch_audit_functions()``'s wrappers
as aiocop 1.2.1 raises them (``sys.audit(name, args, kwargs)``): the arguments are the pair
``(args_tuple, kwargs_dict)``."""

from __future__ import annotations

import json

from conftest import describe, run_python

PROGRAM = """
import asyncio, json, os, sys, tempfile
import aiocop

seen = []

def hook(event, args):
    if event == "os.stat":
        seen.append((event, type(args).__name__, len(args), repr(args[0]), repr(args[1])))

sys.addaudithook(hook)
target = tempfile.mkdtemp()

async def main():
    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection()
    aiocop.detect_slow_tasks(threshold_ms=1000, on_slow_task=lambda e: None)
    aiocop.activate()
    async def task():
        os.stat(target)
        os.stat(target, follow_symlinks=False)
    await asyncio.create_task(task())

asyncio.run(main())
print(json.dumps({"target": target, "seen": seen}))
"""


def test_a_wrapped_call_reaches_other_hooks_as_an_args_kwargs_pair() -> None:
    proc = run_python(PROGRAM)
    assert proc.returncode == 0, describe(proc)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    target = result["target"]
    seen = [tuple(row) for row in result["seen"]]
    assert ("os.stat", "tuple", 2, repr((target,)), "{}") in seen, seen
    assert ("os.stat", "tuple", 2, repr((target,)), "{'follow_symlinks': False}") in seen, seen
