"""``python -m gateway`` is the ``huren`` command."""

import sys

from gateway.cli import main

sys.exit(main())
