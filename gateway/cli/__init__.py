"""The ``huren`` command line (see :mod:`gateway.cli.main`)."""

from gateway.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
