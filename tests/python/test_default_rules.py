"""The shipped allow rules for well-known framework internals: listed by
``aiocop.default_allow_rules()``, in force in the pytest plugin unless switched off.

The case they exist for: httpx's ASGI transport runs ``import sniffio`` on every request (a
real import search on the loop each time when sniffio is not installed).
"""

from __future__ import annotations

import pytest

import aiocop
from test_pytest_plugin import inner, output, run  # noqa: F401  (the fixture)

pytest_plugins = ["pytester"]


def test_default_allow_rules_are_listed_and_narrow() -> None:
    rules = aiocop.default_allow_rules()
    assert [r.spec for r in rules] == [
        "event=import,function=httpx._transports.asgi.is_running_trio,frames=any"
    ]
    assert all(r.source == "default" for r in rules)
    # not in force until put there
    assert not any(r.source == "default" for r in aiocop.allow_rules())


ASGI_TESTS = """
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("hi")


app = Starlette(routes=[Route("/", hello)])


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_requests():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for _ in range(3):
            assert (await c.get("/")).text == "hi"
"""


@pytest.mark.parametrize(
    ("args", "ini", "passes"),
    [
        ((), "", True),
        (("--aiocop-no-default-rules",), "", False),
        ((), "aiocop_default_rules = false\n", False),
    ],
)
def test_httpx_asgi_requests_pass_with_the_default_rules(
    inner: pytest.Pytester,  # noqa: F811
    args: tuple[str, ...],
    ini: str,
    passes: bool,
) -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    if ini:
        inner.makeini(
            "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n" + ini
        )
    inner.makepyfile(test_asgi=ASGI_TESTS)
    result = run(inner, "--aiocop", *args)
    if passes:
        result.assert_outcomes(passed=1)
        assert "unused allow rules" not in output(result)
        return
    try:
        import sniffio  # noqa: F401
    except ImportError:
        result.assert_outcomes(failed=1)
        assert "import(sniffio" in output(result)
    else:  # sniffio installed: imported once, before the test; nothing to allow
        result.assert_outcomes(passed=1)
