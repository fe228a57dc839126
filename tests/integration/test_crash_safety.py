"""Crash safety (issue 4): SIGKILL the gateway during concurrent registrations, round after round.

Eight clients register new issuers (two keys each) over mutual TLS, one after another, until
the gateway is killed; the kill comes at a different moment each round, from before the first
answer to well into the stream. After every kill, with the gateway dead: every acknowledged
registration survived whole (its two keys, its audit entry, its request record), nothing is
partial, ``PRAGMA integrity_check`` is ok, the audit chain verifies (``huren audit verify`` too),
and a request sent after the kill was not committed. The restarted gateway loads exactly what was
committed and answers a retried request id (same id, same content) with the change it first
acknowledged, with the change it committed without getting to acknowledge it, or, for a request
that never committed, with a fresh commit: never a second registration, never ALREADY_EXISTS.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.cli.pki import create_development_pki
from gateway.clients import RegistryClient, TlsCredentials, new_request_id
from gateway.crypto import Algorithm, PrivateKey
from gateway.errors import CallFailed, CallRefused
from gateway.registry.admission import KeyOffer, prove
from gateway.registry.commands import CreateOperator, CreateRegion, RegisterIssuer
from gateway.registry.registrar import Change
from gateway.storage.sqlite import SqliteRegistry
from tests.conftest import HANGZHOU_PROFILE, REPO
from tests.integration.conftest import bootstrap_admin, new_state

pytestmark = pytest.mark.slow

HUREN = [sys.executable, "-m", "gateway"]
ENV = {**os.environ, "PYTHONUTF8": "1"}
THREADS = 8
CALL_TIMEOUT = 3.0
READY_TIMEOUT = 30.0
# Seconds from starting the clients to SIGKILL, one per round: from at once (before any answer;
# most clients have not even connected) to nearly a second into the stream, early and late kills
# alternating so that every kind of crash is followed by every other.
KILL_AFTER = (0.2, 0.0, 0.4, 0.03, 0.55, 0.07, 0.7, 0.12, 0.9, 0.3)
ROUNDS = len(KILL_AFTER)
OPERATOR = "hangzhou-ops"
ACTOR = "operator:330100:hangzhou-ops"
READY = re.compile(
    r"huren gateway listening on (\S+) \(trust version (\d+), (\d+) issuers; registry on (\S+)\)"
)
# How a call cut off by the kill may end (never a refusal: those would be bugs).
CUT_OFF = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "UNKNOWN", "INTERNAL"}


@dataclass
class Attempt:
    """One registration (its request id and command), the keys it offers, and how it ended."""

    request_id: str
    command: RegisterIssuer
    spki: dict[str, bytes]
    sent_at: float = 0.0
    change: Change | None = None
    error: str | None = None
    failed_at: float = 0.0

    @property
    def issuer(self) -> str:
        return self.command.issuer_id


@dataclass
class Running:
    proc: subprocess.Popen[str]
    address: str
    registry: str
    trust_version: int
    issuers: int


@dataclass
class Stats:
    acknowledged: int = 0
    failed: int = 0
    in_flight: int = 0
    committed_unacknowledged: int = 0
    retried: int = 0
    replayed: int = 0
    failure_codes: set[str] = field(default_factory=set)


def registration(issuer_id: str) -> Attempt:
    """A Hangzhou issuer with two fresh ES256 keys, each with its proof of possession."""
    request_id = new_request_id()
    offers: list[KeyOffer] = []
    spki: dict[str, bytes] = {}
    for n in (1, 2):
        private = PrivateKey.generate(Algorithm.ES256)
        public = private.public_key()
        kid = f"{issuer_id}-k{n}"
        offers.append(
            KeyOffer(
                kid=kid,
                key=json.dumps({**public.jwk(), "kid": kid}).encode(),
                proof=prove(private, issuer_id, kid, request_id),
                algorithm="ES256",
            )
        )
        spki[kid] = public.spki_der
    command = RegisterIssuer(issuer_id, "330100", "杭州健康码", HANGZHOU_PROFILE, tuple(offers))
    return Attempt(request_id, command, spki)


@contextmanager
def gateway(state: Path, pki: Path, log: Path) -> Iterator[Running]:
    """``huren serve`` on loopback (its stderr appended to ``log``); killed (if still alive) and
    reaped on exit."""
    with (
        log.open("a") as stderr,
        subprocess.Popen(
            [
                *(*HUREN, "serve", "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"),
                *("--state-dir", str(state), "--tls-dir", str(pki)),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=REPO,
            env=ENV,
        ) as proc,
    ):
        watchdog = threading.Timer(READY_TIMEOUT, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            watchdog.cancel()
            match = READY.search(line)
            if not match:
                proc.kill()
                proc.wait(timeout=10)
                raise AssertionError(
                    f"the gateway did not start: {line!r} (exit {proc.returncode})\n"
                    + log.read_text()[-2000:]
                )
            yield Running(
                proc, match.group(1), match.group(4), int(match.group(2)), int(match.group(3))
            )
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def bootstrap(state: Path, pki: Path) -> None:
    """Create the registry and pin the hub administrator (the local steps)."""
    bootstrap_admin(new_state(state), pki)


def storm(
    registry: str,
    credentials: TlsCredentials,
    name: str,
    stop: threading.Event,
    attempts: list[Attempt],
) -> None:
    """Register new issuers one after another until told to stop or a call fails."""
    with RegistryClient(registry, credentials, timeout=CALL_TIMEOUT) as client:
        n = 0
        while not stop.is_set():
            attempt = registration(f"{name}-{n}")
            n += 1
            attempts.append(attempt)
            attempt.sent_at = time.monotonic()
            try:
                attempt.change = client.submit(attempt.request_id, attempt.command)
            except (CallFailed, CallRefused) as e:
                attempt.failed_at = time.monotonic()
                attempt.error = e.status
                return


@dataclass
class Committed:
    """What the registry file holds after a crash."""

    trust_version: int
    issuers: int
    audit_seq: dict[str, int]  # request id -> audit seq, for every committed registration
    last_seq: int


def check_after_crash(state: Path, attempts: list[Attempt]) -> Committed:
    """The file is sound and holds every acknowledged registration whole, and nothing partial."""
    database = state / "registry.db"
    with closing(sqlite3.connect(database)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []

    with SqliteRegistry(database) as store:
        report = store.verify_audit()
        assert report.intact, f"audit chain broken at {report.broken_at}: {report.problem}"
        db = store.db
        trust_version = int(
            db.execute("SELECT value FROM meta WHERE key = 'trust_version'").fetchone()[0]
        )
        last = db.execute("SELECT seq, trust_version FROM audit ORDER BY seq DESC LIMIT 1")
        last_seq, last_trust = last.fetchone()
        assert last_trust == trust_version, "trust version moved without its audit entry"
        issuers = {
            row[0]: (row[1], row[2], row[3])
            for row in db.execute("SELECT id, region, profile_id, profile_version FROM issuers")
        }
        keys: dict[str, dict[str, bytes]] = defaultdict(dict)
        for issuer_id, kid, spki_der in db.execute("SELECT issuer_id, kid, spki_der FROM keys"):
            keys[issuer_id][kid] = spki_der
        audit: dict[str, list[tuple[int, str, int, str]]] = defaultdict(list)
        for seq, target, outcome, version, entry_hash in db.execute(
            "SELECT seq, target, outcome, trust_version, entry_hash FROM audit"
            " WHERE action = 'register-issuer' ORDER BY seq"
        ):
            audit[target].append((seq, outcome, version, entry_hash))
        requests = dict(
            db.execute(
                "SELECT request_id, audit_seq FROM requests"
                " WHERE actor = ? AND action = 'register-issuer'",
                [ACTOR],
            ).fetchall()
        )
        profiles = db.execute("SELECT profile_id, version FROM profiles").fetchall()

    sent = {a.issuer: a for a in attempts}
    assert set(issuers) <= set(sent), f"issuers nobody registered: {set(issuers) - set(sent)}"
    assert set(audit) <= set(issuers), f"audited but absent: {set(audit) - set(issuers)}"
    if issuers:
        assert profiles == [("hangzhou", 1)]
    for issuer_id, row in issuers.items():
        attempt = sent[issuer_id]
        assert row == ("330100", "hangzhou", 1), issuer_id
        assert keys.get(issuer_id) == attempt.spki, f"{issuer_id} is partial: {keys[issuer_id]}"
        assert len(audit[issuer_id]) == 1, f"{issuer_id}: {audit[issuer_id]}"
        seq, outcome, _, _ = audit[issuer_id][0]
        assert outcome == "ok", f"{issuer_id}: {audit[issuer_id]}"
        assert requests.get(attempt.request_id) == seq, f"{issuer_id}: no request record"
    assert set(keys) <= set(issuers), f"keys without issuer: {set(keys) - set(issuers)}"
    assert len(requests) == len(issuers)

    for attempt in attempts:
        if attempt.change is None:
            continue
        issuer_id = attempt.issuer
        assert issuer_id in issuers, f"acknowledged registration of {issuer_id} was lost"
        change = attempt.change
        assert change.audit.outcome == "ok"
        assert audit[issuer_id] == [
            (change.audit.seq, "ok", change.trust_version, change.audit.entry_hash)
        ], f"{issuer_id}: acknowledged {change}, stored {audit[issuer_id]}"

    verified = subprocess.run(
        [*HUREN, "audit", "verify", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
        env=ENV,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit chain intact" in verified.stdout

    return Committed(trust_version, len(issuers), requests, last_seq)


def recover(
    running: Running,
    credentials: TlsCredentials,
    committed: Committed,
    replay: Attempt | None,
    pending: list[Attempt],
    stats: Stats,
) -> None:
    """After a restart: the gateway loaded what was committed; a retried request id gets the
    change first made, an acknowledged one or one cut off after its commit; a request cut off
    before its commit is made now."""
    assert (running.trust_version, running.issuers) == (
        committed.trust_version,
        committed.issuers,
    )
    with RegistryClient(running.registry, credentials, timeout=CALL_TIMEOUT) as client:
        if replay is not None:
            assert replay.change is not None
            assert client.submit(replay.request_id, replay.command) == replay.change
            stats.replayed += 1
        last_seq = committed.last_seq
        for attempt in pending:
            change = client.submit(attempt.request_id, attempt.command)
            earlier = committed.audit_seq.get(attempt.request_id)
            if earlier is not None:
                assert change.audit.seq == earlier, f"{attempt.issuer} registered twice?"
            else:
                assert change.audit.seq > last_seq
                last_seq = change.audit.seq
            assert change.audit.outcome == "ok"
            assert change.audit.target == attempt.issuer
            attempt.change, attempt.error = change, None
            stats.retried += 1


def test_sigkill_during_concurrent_registrations_loses_nothing_acknowledged(tmp_path):
    pki = tmp_path / "pki"
    state = tmp_path / "state"
    create_development_pki(pki)
    bootstrap(state, pki)
    admin = TlsCredentials.from_pki(pki, "hub-admin")
    operator = TlsCredentials.from_pki(pki, OPERATOR)
    log = tmp_path / "gateway.log"
    attempts: list[Attempt] = []
    replay: Attempt | None = None
    pending: list[Attempt] = []
    committed: Committed | None = None
    rounds: list[Stats] = []
    started = time.monotonic()

    for round_no in range(ROUNDS + 1):
        stats = Stats()
        with gateway(state, pki, log) as running:
            if committed is None:
                with RegistryClient(running.registry, admin, timeout=CALL_TIMEOUT) as client:
                    client.submit(new_request_id(), CreateRegion("330100", "杭州"))
                    certificate = (pki / "operators" / f"{OPERATOR}.pem").read_bytes()
                    operator_change = CreateOperator(OPERATOR, "330100", certificate)
                    client.submit(new_request_id(), operator_change)
            else:
                recover(running, operator, committed, replay, pending, stats)
            if round_no == ROUNDS:
                # The last start only recovers, then stops cleanly.
                running.proc.terminate()
                assert running.proc.wait(timeout=10) == 0
                committed = check_after_crash(state, attempts)
                rounds.append(stats)
                break

            stop = threading.Event()
            lists: list[list[Attempt]] = [[] for _ in range(THREADS)]
            with ThreadPoolExecutor(THREADS) as pool:
                try:
                    futures = [
                        pool.submit(
                            storm,
                            running.registry,
                            operator,
                            f"crash-r{round_no}-t{t}",
                            stop,
                            lists[t],
                        )
                        for t in range(THREADS)
                    ]
                    time.sleep(KILL_AFTER[round_no])
                    killed_at = time.monotonic()
                    running.proc.kill()
                    running.proc.wait(timeout=10)
                    dead_at = time.monotonic()  # reaped: nothing sent from now on can commit
                finally:
                    stop.set()
                for future in futures:
                    future.result()

        sent = [a for per_thread in lists for a in per_thread]
        attempts.extend(sent)
        for attempt in sent:
            if attempt.change is not None:
                stats.acknowledged += 1
            else:
                assert attempt.error in CUT_OFF, f"{attempt.issuer} failed with {attempt.error}"
                assert attempt.failed_at >= killed_at, f"{attempt.issuer} failed before the kill"
                stats.failed += 1
                stats.failure_codes.add(attempt.error or "")
                if attempt.sent_at < killed_at:
                    stats.in_flight += 1

        committed = check_after_crash(state, attempts)
        pending = [a for a in sent if a.change is None]
        for attempt in pending:
            if attempt.sent_at >= dead_at:
                assert attempt.request_id not in committed.audit_seq, (
                    f"{attempt.issuer} was committed although sent to a dead gateway"
                )
        stats.committed_unacknowledged = sum(a.request_id in committed.audit_seq for a in pending)
        acknowledged = [a for a in sent if a.change is not None]
        # The last acknowledged before the kill is the one nearest the crash.
        replay = max(acknowledged, key=lambda a: a.sent_at) if acknowledged else replay
        rounds.append(stats)

    elapsed = time.monotonic() - started
    for n, s in enumerate(rounds):
        print(
            f"round {n}: {s.acknowledged} acknowledged, {s.failed} failed "
            f"({s.in_flight} in flight, {s.committed_unacknowledged} committed unacknowledged; "
            f"{sorted(s.failure_codes)}), {s.retried} retried, {s.replayed} replayed"
        )
    print(f"{len(attempts)} registrations sent in {elapsed:.1f} s")

    storms = rounds[:ROUNDS]
    assert sum(s.acknowledged for s in storms) > 20
    assert sum(s.in_flight for s in storms) > 0, "no kill caught a call in flight"
    assert sum(s.replayed for s in rounds) >= 1
    assert all(a.change is not None for a in attempts), "a cut-off request was never retried"
