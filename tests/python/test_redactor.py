"""``aiocop.set_redactor(fn)`` replaces the built-in redaction of shown arguments: ``fn`` sees
each argument's text and what it returns is shown; a redactor that raises or returns a
non-str shows ``***`` and is reported once; ``set_redactor(None)`` restores the built-in
redaction; anything else is a ``TypeError`` naming ``redactor``."""

from __future__ import annotations

import logging
import os

import pytest

import aiocop
from conftest import run_monitored

SECRET_PATH = "/tmp/no-such-dir?token=abc123"


@pytest.fixture(autouse=True)
def no_redactor():
    aiocop.set_redactor(None)
    yield
    aiocop.set_redactor(None)


def shown_stat(loop_kind: str) -> list[str]:
    async def body() -> None:
        try:
            os.stat(SECRET_PATH)
        except OSError:
            pass

    return [r["event"] for r in run_monitored(body, loop_kind).records("os.stat")]


def test_the_built_in_redaction_by_default(loop_kind: str) -> None:
    assert shown_stat(loop_kind) == ["os.stat(/tmp/no-such-dir?token=***)"]


def test_a_redactor_replaces_it(loop_kind: str) -> None:
    seen: list[str] = []

    def redactor(text: str) -> str:
        seen.append(text)
        return text.replace("no-such-dir", "<dir>")

    aiocop.set_redactor(redactor)
    assert shown_stat(loop_kind) == ["os.stat(/tmp/<dir>?token=abc123)"]
    assert SECRET_PATH in seen
    aiocop.set_redactor(None)
    assert shown_stat(loop_kind) == ["os.stat(/tmp/no-such-dir?token=***)"]


@pytest.mark.parametrize("bad", [lambda text: 1 / 0, lambda text: 42])
def test_a_failing_redactor_shows_a_mask_and_warns_once(bad, caplog) -> None:
    aiocop.set_redactor(bad)
    with caplog.at_level(logging.WARNING, logger="aiocop"):
        first = shown_stat("asyncio")
        second = shown_stat("asyncio")
    assert first == second == ["os.stat(***)"]
    warnings = [r for r in caplog.records if "redactor" in r.getMessage()]
    assert len(warnings) <= 1 and all("abc123" not in r.getMessage() for r in caplog.records)


def test_a_non_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="redactor"):
        aiocop.set_redactor("***")  # type: ignore[arg-type]
