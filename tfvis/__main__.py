"""``python -m tfvis``: the same as the ``tfvis`` command."""

import sys

from tfvis.cli import main

sys.exit(main())
