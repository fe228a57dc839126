"""The ``huren`` command line (see :mod:`gateway.cli.main`)."""

from gateway.cli.main import build_parser, main, parsers

__all__ = ["build_parser", "main", "parsers"]
