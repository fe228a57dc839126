"""The supervisor's pure decisions: how many workers, when a dead one starts again, which
ports they take."""

from __future__ import annotations

import argparse
import json
import socket

import pytest

from gateway.cli import main, workers
from gateway.cli.workers import RestartPolicy
from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import RequestInvalid
from gateway.storage.files import StateFiles


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("16", 16), ("256", 256), ("Auto", None)])
def test_a_worker_count_is_a_number_or_auto(text, expected):
    assert workers.count(text) == expected


@pytest.mark.parametrize("text", ["0", "-2", "257", "two", "1.5", ""])
def test_any_other_count_is_refused_saying_what_to_give(text):
    with pytest.raises(argparse.ArgumentTypeError, match="from 1 to 256, or 'auto'"):
        workers.count(text)


def test_restarts_back_off_and_stop_after_too_many_deaths_within_a_minute():
    policy = RestartPolicy(per_minute=5, first=0.5, longest=4.0)
    delays = [policy.died(1, at) for at in (0.0, 1.0, 2.0, 3.0, 4.0)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]  # doubling, capped
    assert policy.died(0, 5.0) == 0.5  # each worker counts its own deaths
    assert policy.died(1, 5.0) is None  # a sixth death within the minute: give up
    assert policy.recent(1) == 6


def test_deaths_older_than_a_minute_are_forgotten():
    policy = RestartPolicy(per_minute=2, first=1.0, longest=8.0)
    assert policy.died(0, 0.0) == 1.0
    assert policy.died(0, 30.0) == 2.0
    assert policy.died(0, 89.0) == 2.0  # the death at 0 s is forgotten, the one at 30 s is not
    assert policy.died(0, 200.0) == 1.0


def test_each_worker_has_its_own_metrics_port():
    assert workers.metrics_addresses(None, 3) == [None, None, None]
    assert workers.metrics_addresses("127.0.0.1:9464", 3) == [
        "127.0.0.1:9464",
        "127.0.0.1:9465",
        "127.0.0.1:9466",
    ]
    assert workers.metrics_addresses("0.0.0.0:0", 2) == ["0.0.0.0:0", "0.0.0.0:0"]
    with pytest.raises(OSError, match="they take the ports from the one given to 1 above it"):
        workers.metrics_addresses("127.0.0.1:65535", 2)


def test_the_reserved_port_is_shared_only_with_sockets_that_ask_to_share_it():
    placeholder, address = workers.reserve("127.0.0.1:0")
    with placeholder:
        host, _, port = address.rpartition(":")
        assert host == "127.0.0.1"
        assert int(port) == placeholder.getsockname()[1] > 0
        with socket.socket() as sharing:
            sharing.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sharing.bind(("127.0.0.1", int(port)))  # a worker's gRPC socket does this
        with socket.socket() as other, pytest.raises(OSError, match="in use"):
            other.bind(("127.0.0.1", int(port)))
    with pytest.raises(OSError, match=r"cannot listen on 256\.0\.0\.1:0"):
        workers.reserve("256.0.0.1:0")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0:4242", (0, 4242)), ("255:1", (255, 1)), ("3:4194304", (3, 4194304))],
)
def test_a_worker_reads_its_slot_and_parent_from_its_environment(value, expected):
    assert workers.worker_of(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1",  # no parent
        "1:",
        ":4242",
        "one:4242",
        "256:4242",  # a slot past the most workers there may be
        "-1:4242",
        "1:0",
        "1:4194305",  # past the largest process id
        "1:-4242",
        "+1:4242",
        " 1:4242",
        "1_0:4242",
        "١:4242",  # an Arabic-Indic digit, which int() would take
        "1:4242:7",
        "9" * 5000 + ":1",  # int() would refuse it only past its digit limit
    ],
)
def test_a_malformed_worker_variable_is_refused_saying_what_it_must_be(value, monkeypatch):
    with pytest.raises(RequestInvalid) as refused:
        workers.worker_of(value)
    message = str(refused.value)
    assert message.startswith("_HUREN_WORKER=")
    assert (
        "give SLOT:PARENT_PID, a slot from 0 to 255 and a process id from 1 to 4194304" in message
    )
    assert len(message) < 300
    monkeypatch.setenv("_HUREN_WORKER", value)
    with pytest.raises(RequestInvalid):  # before anything is done (no death signal, no kill)
        workers.as_worker()


def test_without_the_variable_a_process_is_no_worker(monkeypatch):
    monkeypatch.delenv("_HUREN_WORKER", raising=False)
    assert workers.as_worker() is None


def test_huren_serve_with_a_malformed_worker_variable_says_so_and_exits_2(
    tmp_path, monkeypatch, capsys
):
    """Through the command, as a supervisor's worker starts: one line, exit status 2, no
    traceback."""
    state = tmp_path / "replica"
    StateFiles(state).make_directory()
    for name in ("subject.key", "link.key"):
        (state / name).write_text("ab" * 32 + "\n")
        (state / name).chmod(0o600)
    key = tmp_path / "trustlist-key.jwk"
    key.write_text(json.dumps(PrivateKey.generate(Algorithm.ES256).public_key().jwk()))
    monkeypatch.setenv("_HUREN_WORKER", "1:x")
    status = main(
        [
            *("serve", "--replica-of", "127.0.0.1:1", "--workers", "1", "--insecure"),
            *("--trust-list-key", str(key), "--state-dir", str(state)),
        ]
    )
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err.startswith("huren: _HUREN_WORKER='1:x': give SLOT:PARENT_PID"), err
    assert "Traceback" not in err
