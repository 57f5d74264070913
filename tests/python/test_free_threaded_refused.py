"""A free-threaded CPython (python3.13t) gets a clear ImportError, never a misread.

This machine's interpreters are default builds, so the test makes the interpreter report
``Py_GIL_DISABLED`` the way a free-threaded build does (``sysconfig``'s build variables) in a
fresh subprocess, then imports aiocop there: the extension must not be loaded at all.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import sys, sysconfig
    real = sysconfig.get_config_var
    sysconfig.get_config_var = lambda name: 1 if name == "Py_GIL_DISABLED" else real(name)
    try:
        import aiocop
    except ImportError as err:
        loaded = any(name.startswith("aiocop._aiocop") for name in sys.modules)
        print("ImportError", err.name, "loaded" if loaded else "not-loaded")
        print(err)
    else:
        print("imported")
    """
)


def test_a_free_threaded_build_gets_an_import_error_naming_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    first, message = done.stdout.split("\n", 1)
    assert first == "ImportError aiocop not-loaded", done.stdout + done.stderr
    assert "free-threaded" in message
    assert "Py_GIL_DISABLED" in message
    assert "default build" in message


def test_the_default_build_imports() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import aiocop; print(aiocop.is_monitoring_active())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "False", done.stderr
