"""The installed distributions, read once from ``importlib.metadata`` and handed to Rust.

For each distribution: the directories holding its Python files and its top-level
single-file modules (from the distribution's file list, ``RECORD``), with its name and version.
Rust looks a code object's file up in that map once, when the code's facts are first resolved
(cached with them): nothing is looked up on the hot path. Read when the audit hook is installed
(``start_blocking_io_detection``) or monitoring is activated, whichever comes first.
"""

from __future__ import annotations

import logging
import os
from importlib import metadata

from aiocop import _aiocop

_LOG = logging.getLogger("aiocop")

#: The file suffixes whose frames a stack shows (Python source files).
_SOURCE_SUFFIXES = (".py", ".pyw")


def _entries() -> list[tuple[str, str, str]]:
    """``(path, name, version)`` triples: each distribution's source directories and
    single-file modules, the first distribution found for a path keeping it."""
    entries: list[tuple[str, str, str]] = []
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
            version = dist.version
            files = dist.files
        except Exception:  # noqa: BLE001 - a broken distribution must not break setup
            continue
        if not name or not files:
            continue
        base = str(dist.locate_file(""))
        seen: set[str] = set()
        for file in files:
            parts = file.parts
            if not parts or parts[0] == ".." or not str(file).endswith(_SOURCE_SUFFIXES):
                continue
            full = os.path.normpath(os.path.join(base, str(file)))
            # A top-level module is its own entry; a package's file gives its directory.
            path = full if len(parts) == 1 else os.path.dirname(full)
            if path not in seen:
                seen.add(path)
                entries.append((path, name, version))
    return entries


def load() -> None:
    """Read the installed distributions (once per process) and hand them to Rust."""
    if _aiocop._distributions_known():
        return
    try:
        entries = _entries()
    except Exception as exc:  # noqa: BLE001 - attribution is best effort
        _LOG.warning("aiocop could not read the installed distributions: %s", exc)
        entries = []
    _aiocop._set_distributions(entries)
