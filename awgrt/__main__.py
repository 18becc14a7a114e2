"""``python -m awgrt``: the ``awgrt`` command line."""

import sys

from .cli import main

sys.exit(main())
