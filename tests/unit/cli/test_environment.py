"""``huren serve``'s options from ``HUREN_*`` variables, and the one table that lists them."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.cli import build_parser, environment, main
from gateway.cli.main import configurable
from gateway.errors import RequestInvalid
from tests.conftest import REPO


def parse(argv: list[str], environ: dict[str, str]):
    parser = build_parser()
    for each in configurable(parser):
        environment.apply(each, environ)
    return parser.parse_args(argv)


def test_a_variable_gives_the_option_and_a_flag_wins_over_it():
    environ = {
        "HUREN_MAX_BATCH": "7",
        "HUREN_LISTEN": "0.0.0.0:1",
        "HUREN_STATE_DIR": "/srv/huren",
        "HUREN_INSECURE": "Yes",
        "HUREN_TRUST_FRESH_FOR": "30s",
        "HUREN_LOG_FORMAT": "json",
        "HUREN_METRICS_LISTEN": "127.0.0.1:9464",
        "HUREN_REPLICA_SECRETS_MAX_AGE": "1h",
    }
    args = parse(["serve", "--listen", "127.0.0.1:2"], environ)
    assert args.max_batch == 7
    assert args.listen == "127.0.0.1:2"  # the flag
    assert args.state_dir == Path("/srv/huren")
    assert args.insecure is True
    assert args.trust_fresh_for == timedelta(seconds=30)
    assert args.log_format == "json"
    assert args.metrics_listen == "127.0.0.1:9464"
    assert args.replica_secrets_max_age == timedelta(hours=1)
    plain = parse(["serve"], {"HUREN_INSECURE": "off"})
    assert plain.insecure is False
    assert plain.max_batch == 100
    assert plain.replica_secrets_max_age == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HUREN_MAX_BATCH", "lots", "HUREN_MAX_BATCH='lots': not a whole number (as --max-batch)"),
        ("HUREN_DENIED_REFILL_SECONDS", "soon", "HUREN_DENIED_REFILL_SECONDS='soon': not a number"),
        ("HUREN_INSECURE", "maybe", "HUREN_INSECURE='maybe': give 1, true, yes or on, or 0,"),
        ("HUREN_LOG_FORMAT", "xml", "HUREN_LOG_FORMAT='xml': give one of text, json"),
        ("HUREN_TRUST_FRESH_FOR", "2y", "HUREN_TRUST_FRESH_FOR='2y': '2y': give a duration"),
        (  # shorter than the gap between two answered fetches
            "HUREN_REPLICA_SECRETS_MAX_AGE",
            "2m",
            "HUREN_REPLICA_SECRETS_MAX_AGE='2m': '2m': give a duration from 3m to 1d",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(name, value, message):
    with pytest.raises(RequestInvalid) as refused:
        parse(["serve"], {name: value})
    assert str(refused.value).startswith(message)


def test_main_says_so_in_one_line_and_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("HUREN_MAX_CONCURRENT_RPCS", "-")
    assert main(["serve"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err
        == "huren: HUREN_MAX_CONCURRENT_RPCS='-': not a whole number (as --max-concurrent-rpcs)\n"
    )


def test_the_configuration_table_lists_exactly_the_options_that_exist():
    text = (REPO / "docs" / "configuration.md").read_text("utf-8")
    rows = re.findall(r"^\| `(--[a-z-]+)` \| `(HUREN_[A-Z_]+)` \| ([^|]+) \|", text, flags=re.M)
    documented = {flag: (variable, default.strip()) for flag, variable, default in rows}
    assert len(documented) == len(rows)  # no option twice
    actual = {}
    for parser in configurable(build_parser()):
        for action in environment.options(parser):
            flag = max(action.option_strings, key=len)
            if action.nargs == 0:
                default = "off"
            elif action.default is None:
                default = "—"
            else:
                default = f"`{action.default}`"
            actual[flag] = (environment.variable(action), default)
    assert documented == actual
    assert "docs/configuration.md" in (REPO / "README.md").read_text("utf-8")
