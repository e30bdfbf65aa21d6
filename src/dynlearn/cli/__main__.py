"""``python -m dynlearn.cli``: the ``dynlearn`` command."""

import sys

from . import main

sys.exit(main())
