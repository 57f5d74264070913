"""The shipped allow rules for well-known framework internals: blocking calls that libraries
make on the loop by design, which a user cannot fix and should not have to allow one by one.

Each rule is as narrow as its reason: one event, one function of the library. The pytest
plugin puts them in force unless told not to (``--aiocop-no-default-rules`` or the ini option
``aiocop_default_rules = false``); anywhere else, ``for rule in aiocop.default_allow_rules():
aiocop.allow(rule)``.
"""

from __future__ import annotations

from aiocop._rules import AllowRule, make_rule

#: ``(spec, why)``: the rules and the reason each exists.
DEFAULT_RULES: tuple[tuple[str, str], ...] = (
    (
        "event=import,function=httpx._transports.asgi.is_running_trio,frames=any",
        "httpx's ASGI transport runs `import sniffio` on every request to tell trio from "
        "asyncio (a real import search each time when sniffio is not installed)",
    ),
)


def default_allow_rules() -> list[AllowRule]:
    """The shipped allow rules for well-known framework internals (source ``"default"``), not
    in force: the pytest plugin puts them in force unless ``--aiocop-no-default-rules``."""
    return [make_rule(spec, source="default") for spec, _why in DEFAULT_RULES]
