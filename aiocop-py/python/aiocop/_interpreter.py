"""Which interpreters aiocop runs on, checked before its extension is loaded.

aiocop supports CPython 3.10 and later in its default build. The free-threaded build
(``python3.13t``, ``Py_GIL_DISABLED``) is refused with an ImportError that says why: the
extension reads the interpreter's frames and thread states with the default build's object
layout (the free-threaded object header is larger, so every offset differs), and its per-loop
state relies on the GIL running one handle at a time. Loading it there would misread memory, so
it is not loaded at all.
"""

from __future__ import annotations

import sysconfig

FREE_THREADED_MESSAGE = (
    "aiocop does not support the free-threaded build of CPython (Py_GIL_DISABLED, e.g. "
    "python3.13t): it reads frames and thread states with the default build's object layout and "
    "relies on the GIL around each event-loop handle. Use the default build of CPython "
    "(e.g. python3.13)."
)


def is_free_threaded() -> bool:
    """Whether this interpreter is a free-threaded build (``Py_GIL_DISABLED``)."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def require_supported_interpreter() -> None:
    """Raises ImportError, naming what is missing, on an interpreter aiocop cannot run on."""
    if is_free_threaded():
        raise ImportError(FREE_THREADED_MESSAGE, name="aiocop")
