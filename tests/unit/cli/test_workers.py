"""The supervisor's pure decisions: how many workers, when a dead one starts again, which
ports they take."""

from __future__ import annotations

import argparse
import socket

import pytest

from gateway.cli import workers
from gateway.cli.workers import RestartPolicy


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
