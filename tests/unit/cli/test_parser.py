"""The command line's parser: every option explained, defaults shown (issue 12)."""

from __future__ import annotations

import argparse

import pytest

from gateway.cli import build_parser, parsers


def _actions() -> list[tuple[str, argparse.Action]]:
    return [
        (p.prog, a)
        for p in parsers(build_parser())
        for a in p._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


def test_every_option_and_argument_says_what_it_is_for() -> None:
    unexplained = [f"{prog} {a.option_strings or a.dest}" for prog, a in _actions() if not a.help]
    assert unexplained == []


def test_defaults_are_shown_where_there_is_one_to_show() -> None:
    texts = {p.prog: p.format_help() for p in parsers(build_parser())}
    serve = " ".join(texts["huren serve"].split())
    assert "--max-batch MAX_BATCH codes per VerifyBatch or Recognise (default: 100)" in serve
    assert "(default: 127.0.0.1:50051)" in serve
    for prog, text in texts.items():
        for nothing in ("(default: None)", "(default: False)", "(default: [])", "(default: )"):
            assert nothing not in text, (prog, nothing)


def test_the_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"huren {version('huren')}\n"
