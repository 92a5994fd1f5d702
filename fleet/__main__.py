"""``python -m fleet``: the fleet test (see :mod:`fleet.runner`)."""

import sys

from fleet.runner import main

sys.exit(main())
