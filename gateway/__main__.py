"""The ``huren`` command (also ``python -m gateway``).

gRPC's C core reads ``GRPC_VERBOSITY`` once, when it loads: it is set here to ``NONE``, before
anything imports grpc, so that what a command prints is its own one-line messages and not the
core's log lines (a port in use, a refused TLS handshake: the command explains those itself).
``--grpc-verbosity ERROR|INFO|DEBUG`` (or ``HUREN_GRPC_VERBOSITY``, or ``GRPC_VERBOSITY``
itself) shows the core's lines again.
"""

import os
import sys

from gateway.logs import grpc_verbosity

grpc_verbosity(sys.argv[1:], os.environ)

from gateway.cli import main  # noqa: E402  (after GRPC_VERBOSITY is set)

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
