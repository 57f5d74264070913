"""The drop-in satisfies the pins of the code it replaces: requirements written for aiocop
1.2.1 (``aiocop>=1.2``, ``aiocop~=1.2``, ``aiocop>=1.2.1,<2``) accept this version, and
``aiocop.__version__`` is the installed distribution's."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import aiocop


@pytest.mark.parametrize("pin", [">=1.2", "~=1.2", ">=1.2.1,<2", ">1.2.1", ">=1,<2"])
def test_pins_written_for_1_2_accept_it(pin):
    assert Version(aiocop.__version__) in SpecifierSet(pin), (pin, aiocop.__version__)


def test_the_version_is_the_distributions():
    assert aiocop.__version__ == version("aiocop")
    assert str(Version(aiocop.__version__)) == aiocop.__version__  # PEP 440, normalised
