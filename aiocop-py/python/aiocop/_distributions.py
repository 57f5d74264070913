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


def _name_and_version(dist: metadata.Distribution) -> tuple[str, str]:
    """``Name`` and ``Version`` from the head of ``METADATA`` (``PKG-INFO``), read as text: the
    first header lines, without the e-mail parser ``Distribution.metadata`` runs on the whole
    file; else from ``Distribution.metadata``."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    found: dict[str, str] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in found:
            found[key] = value.strip()
            if len(found) == 2:
                return found["Name"], found["Version"]
    meta = dist.metadata
    return meta["Name"], meta["Version"]


def _record_files(dist: metadata.Distribution) -> list[str]:
    """The files a distribution installed, relative to its location: ``RECORD`` read as text
    (cheaper than ``Distribution.files``, which makes a path object per file), else
    ``installed-files.txt`` (legacy eggs), relative to the egg-info directory."""
    text = dist.read_text("RECORD")
    if text is not None:
        return [line.split(",", 1)[0] for line in text.splitlines() if line]
    text = dist.read_text("installed-files.txt")
    if text is None:
        return []
    return [str(file) for file in dist.files or ()]


def _entries() -> list[tuple[str, str, str]]:
    """``(path, name, version)`` triples: each distribution's source directories and
    single-file modules, the first distribution found for a path keeping it."""
    entries: list[tuple[str, str, str]] = []
    for dist in metadata.distributions():
        try:
            name, version = _name_and_version(dist)
            files = _record_files(dist)
        except Exception:  # noqa: BLE001 - a broken distribution must not break setup
            continue
        if not name or not version or not files:
            continue
        base = str(dist.locate_file(""))
        seen: set[str] = set()
        for file in files:
            if not file.endswith(_SOURCE_SUFFIXES) or file.startswith(("..", "/")):
                continue
            full = os.path.normpath(os.path.join(base, file))
            # A top-level module is its own entry; a package's file gives its directory.
            path = full if "/" not in file else os.path.dirname(full)
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
