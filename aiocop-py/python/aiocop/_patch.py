"""``patch_audit_functions()``: small wrappers that emit an audit event for the blocking calls
CPython does not audit natively (sockets, ``os.stat``, ``time.sleep`` before 3.13, ...).

Every wrapper shares one code object, which the native hook excludes from traces, so our own
frames never appear. A wrapper costs one native check when the thread is not inside a
monitored handle, and never reports a socket whose timeout is 0.0 (non-blocking).
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
from typing import Any, Callable

from aiocop import _aiocop

logger = logging.getLogger("aiocop")

_patched: list[str] = []
_configured = False


def _make_wrapper(original: Callable[..., Any], event_name: str, is_socket: bool) -> Callable[..., Any]:
    audit = sys.audit
    in_handle = _aiocop._in_handle

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if in_handle():
            if not (is_socket and args and getattr(args[0], "gettimeout", None) is not None
                    and args[0].gettimeout() == 0.0):
                audit(event_name, args, kwargs)
        return original(*args, **kwargs)

    return functools.wraps(original)(wrapper)


for _const in _make_wrapper.__code__.co_consts:  # the one code object all wrappers share
    if getattr(_const, "co_name", None) == "wrapper":
        _aiocop._exclude_code(_const)


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
        is_socket = name.startswith(("socket.socket.", "ssl.SSLSocket."))
        setattr(parent, attr, _make_wrapper(original, name, is_socket))
        _patched.append(name)
    logger.info("Patched functions for audit: %s", _patched)


def get_patched_functions() -> list[str]:
    """The functions ``patch_audit_functions()`` wrapped."""
    return list(_patched)
