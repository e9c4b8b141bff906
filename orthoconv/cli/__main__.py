"""``python -m orthoconv.cli``: the same as the ``orthoconv`` command."""

import sys

from . import main

sys.exit(main())
