"""The ``huren`` command (also ``python -m gateway``).

gRPC's C core reads ``GRPC_VERBOSITY`` once, when it loads: it is set here to ``NONE``, before
anything imports grpc, so that what a command prints is its own one-line messages and not the
core's log lines (a port in use, a refused TLS handshake: the command explains those itself).
Set the variable to ``ERROR``, ``INFO`` or ``DEBUG`` to see the core's lines again.
"""

import os
import sys

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from gateway.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
