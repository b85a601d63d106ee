"""``python -m skface``: the command line."""

import sys

from skface.cli import main

sys.exit(main())
