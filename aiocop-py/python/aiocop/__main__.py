"""``python -m aiocop run [options] -- COMMAND...``: see :mod:`aiocop._cli`."""

from aiocop._cli import main

raise SystemExit(main())
