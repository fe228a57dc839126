"""``huren serve``'s options from ``HUREN_*`` environment variables (twelve-factor): each
option ``--some-option`` may be given as ``HUREN_SOME_OPTION`` instead; a flag on the command
line wins over the variable, and the variable over the built-in default. docs/configuration.md
lists them all.

A switch (``--insecure``) reads ``1``, ``true``, ``yes``, ``on`` or ``0``, ``false``, ``no``,
``off`` (any case). Any other value is checked exactly as the flag's value would be, and a bad
one is refused before anything starts, in one line naming the variable.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping

from gateway.errors import RequestInvalid

PREFIX = "HUREN_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def variable(action: argparse.Action) -> str:
    """The environment variable of an option: ``--max-batch`` -> ``HUREN_MAX_BATCH``."""
    flag = max(action.option_strings, key=len)
    return PREFIX + flag.lstrip("-").upper().replace("-", "_")


def options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """The options of ``parser`` that take a value or are switches (not --help, --version)."""
    for action in parser._actions:
        if not action.option_strings or isinstance(
            action, argparse._HelpAction | argparse._VersionAction
        ):
            continue
        yield action


def apply(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Make each ``HUREN_*`` variable set in ``environ`` the default of its option in
    ``parser`` (the command line still overrides it).

    Raises:
        RequestInvalid: ``HUREN_X='value': why``, for a value the option would refuse.
    """
    for action in options(parser):
        name = variable(action)
        raw = environ.get(name)
        if raw is None:
            continue
        parser.set_defaults(**{action.dest: _value(action, name, raw)})


def _value(action: argparse.Action, name: str, raw: str) -> object:
    shown = f"{name}={raw[:60]!r}"
    if action.nargs == 0:  # a switch
        if raw.strip().lower() in _TRUE:
            return action.const
        if raw.strip().lower() in _FALSE:
            return action.default
        raise RequestInvalid(f"{shown}: give 1, true, yes or on, or 0, false, no or off")
    convert = action.type if callable(action.type) else str
    try:
        value = convert(raw)
    except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
        why = str(e) if isinstance(e, argparse.ArgumentTypeError) else _expected(action)
        raise RequestInvalid(f"{shown}: {why}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise RequestInvalid(f"{shown}: give one of {choices}")
    return value


def _expected(action: argparse.Action) -> str:
    kind = getattr(action.type, "__name__", "value")
    words = {"int": "a whole number", "float": "a number", "Path": "a path"}
    return f"not {words.get(kind, 'a valid ' + kind)} (as {max(action.option_strings, key=len)})"
