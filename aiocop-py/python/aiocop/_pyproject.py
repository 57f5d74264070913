"""``[tool.aiocop]`` in ``pyproject.toml``: reading the table and checking its keys (one place
for the allow rules and ``python -m aiocop run``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Union

#: The keys of ``[tool.aiocop]``: the allow rules, the settings of ``python -m aiocop run``;
#: ``baseline``: the pytest plugin's baseline file.
PYPROJECT_KEYS = (
    "allow",
    "threshold_ms",
    "report_json",
    "flamegraph",
    "prometheus_port",
    "baseline",
)


def read_table(pyproject: Union[str, "os.PathLike[str]"]) -> dict[str, Any]:
    """The ``[tool.aiocop]`` table of ``pyproject`` (empty for a missing file or table). A table
    of another type or an unknown key is a ``ValueError`` naming it."""
    path = Path(pyproject)
    if not path.is_file():
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - 3.10
        try:
            import tomli as tomllib
        except ImportError as exc:
            raise RuntimeError("reading pyproject.toml on Python 3.10 needs `tomli`") from exc
    with path.open("rb") as f:
        data = tomllib.load(f)
    table = data.get("tool", {}).get("aiocop", {})
    if not isinstance(table, dict):
        raise ValueError(f"[tool.aiocop] in {path} must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - set(PYPROJECT_KEYS))
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in [tool.aiocop] of {path}; expected {list(PYPROJECT_KEYS)}"
        )
    return table
