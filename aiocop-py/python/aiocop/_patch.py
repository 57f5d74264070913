"""``patch_audit_functions()``: wrappers that raise an audit event for the blocking calls
CPython does not audit (sockets, ``os.stat``, ``time.sleep`` before 3.13, ...).

The wrappers are native (``AuditedFunction``): outside a monitored handle they cost one
thread-local read on top of the call; inside one they raise ``name((args, kwargs))`` for every
audit hook to see, except for a socket whose timeout is 0.0 (non-blocking). They have no Python
frame, so they never appear in a trace, and they bind like functions, so methods such as
``socket.socket.connect`` can be replaced too.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from aiocop import _aiocop

logger = logging.getLogger("aiocop")

_patched: list[str] = []
_configured = False

_SOCKET_PREFIXES = ("socket.socket.", "ssl.SSLSocket.")


def _resolve(path: str) -> tuple[Any, str] | tuple[None, None]:
    parts = path.split(".")
    try:
        obj: Any = importlib.import_module(parts[0])
    except ImportError:
        return None, None
    for part in parts[1:-1]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None, None
    return obj, parts[-1]


def patch_audit_functions() -> None:
    """Install the wrappers. Call once, early; a repeat call logs a warning and does nothing."""
    global _configured
    if _configured:
        logger.warning("patch_audit_functions called more than once, ignoring")
        return
    _configured = True
    for name in _aiocop._wrapped_events():
        parent, attr = _resolve(name)
        if parent is None or attr is None or not hasattr(parent, attr):
            logger.warning("Could not patch %s: target not found", name)
            continue
        original = getattr(parent, attr)
        setattr(parent, attr, _aiocop._audited(original, name, name.startswith(_SOCKET_PREFIXES)))
        _patched.append(name)
    logger.info("Patched functions for audit: %s", _patched)


def get_patched_functions() -> list[str]:
    """The functions ``patch_audit_functions()`` wrapped."""
    return list(_patched)
