"""The shipped allow rules for well-known framework internals (``aiocop.default_allow_rules``),
in force in the plugin's sessions unless ``--aiocop-no-default-rules`` or the ini option
``aiocop_default_rules = false`` turns them off."""

from __future__ import annotations

from typing import Any

import pytest

import aiocop


def add_options(group: Any, parser: pytest.Parser) -> None:
    """``--aiocop-no-default-rules`` and the ini option ``aiocop_default_rules``."""
    group.addoption(
        "--aiocop-no-default-rules",
        action="store_true",
        default=False,
        help="do not allow the blocking calls of well-known framework internals "
        "(aiocop.default_allow_rules(); ini: aiocop_default_rules = false)",
    )
    parser.addini(
        "aiocop_default_rules",
        "allow the blocking calls of well-known framework internals (aiocop.default_allow_rules())",
        type="bool",
        default=True,
    )


def wanted(config: pytest.Config) -> bool:
    """Whether the session puts the default rules in force."""
    if config.getoption("aiocop_no_default_rules", False):
        return False
    return bool(config.getini("aiocop_default_rules"))


def load(config: pytest.Config) -> None:
    """Put the default rules in force (once per process: a rule already in force is not
    added twice)."""
    if wanted(config):
        for rule in aiocop.default_allow_rules():
            aiocop.allow(rule)
