"""The shop's async tests (collected as check_*.py in this sample project)."""

from shop.catalog import load_catalog, log_sale


async def test_catalog() -> None:
    assert load_catalog().strip() == "apples"


async def test_sale() -> None:
    assert log_sale("apples") == "apples"


async def test_nothing_blocks() -> None:
    assert sorted(["b", "a"]) == ["a", "b"]
