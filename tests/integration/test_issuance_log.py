"""The hub's issuance log of transfer attestations in its SQLite file (gateway/storage/
attestations.py): bounded, read a page at a time newest first, filtered through indexes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from gateway.errors import StorageUnavailable
from gateway.model import RegionCode
from gateway.storage.attestations import IssuanceLog
from gateway.transfer import Issuance, IssuanceQuery

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))


def issuance(n: int) -> Issuance:
    """The n-th attestation: odd ones for Macau, even ones for Guangdong; the first 20 under
    version 1 of their destination's policy, later ones under version 2; each made from its own
    code and one every attestation shares."""
    destination = "820000" if n % 2 else "440000"
    return Issuance(
        code_ref=f"att-{n}",
        destination=RegionCode(destination),
        policy_id="macau" if n % 2 else "guangdong",
        policy_version=1 if n < 20 else 2,
        sources=(f"src-{n}", "shared-src"),
        kid="kid-1",
        issued_at=START + timedelta(minutes=n),
        expires_at=START + timedelta(hours=6, minutes=n),
    )


@pytest.fixture
def log(tmp_path: Path) -> Iterator[IssuanceLog]:
    opened = IssuanceLog(tmp_path / "attestations.db", max_entries=30)
    for n in range(40):
        opened.record(issuance(n))
    yield opened
    opened.close()


def refs(log: IssuanceLog, query: IssuanceQuery) -> list[str]:
    return [i.code_ref for _, i in log.page(query).entries]


def test_pages_follow_each_other_newest_first_within_the_bound(log):
    seen: list[str] = []
    before, pages = 0, 0
    while True:
        page = log.page(IssuanceQuery(before=before, limit=7))
        seen += [i.code_ref for _, i in page.entries]
        pages += 1
        assert (page.kept, page.max_kept) == (30, 30)
        if not page.next_before:
            break
        before = page.next_before
    # The 10 oldest were dropped: 30 kept, each once, newest first.
    assert seen == [f"att-{n}" for n in range(39, 9, -1)]
    assert pages == 5


def test_each_filter_keeps_only_what_it_names(log):
    assert refs(log, IssuanceQuery(destination=RegionCode("820000"), limit=5)) == [
        f"att-{n}" for n in (39, 37, 35, 33, 31)
    ]
    assert refs(log, IssuanceQuery(policy_id="macau", policy_version=1)) == [
        f"att-{n}" for n in (19, 17, 15, 13, 11)
    ]
    assert len(refs(log, IssuanceQuery(policy_id="macau"))) == 15
    assert refs(log, IssuanceQuery(policy_id="maca")) == []
    window = IssuanceQuery(
        issued_from=START + timedelta(minutes=12), issued_until=START + timedelta(minutes=15)
    )
    assert refs(log, window) == ["att-14", "att-13", "att-12"]
    # The same instants in another offset are the same window.
    beijing = IssuanceQuery(
        issued_from=(START + timedelta(minutes=12)).astimezone(BEIJING),
        issued_until=(START + timedelta(minutes=15)).astimezone(BEIJING),
    )
    assert refs(log, beijing) == ["att-14", "att-13", "att-12"]
    # A code_ref finds the attestation itself, or those made from that source code.
    assert refs(log, IssuanceQuery(code_ref="att-25")) == ["att-25"]
    assert refs(log, IssuanceQuery(code_ref="src-25")) == ["att-25"]
    assert len(refs(log, IssuanceQuery(code_ref="shared-src", limit=1000))) == 30
    # Every filter given must match.
    both = IssuanceQuery(destination=RegionCode("440000"), policy_id="guangdong", code_ref="src-26")
    assert refs(log, both) == ["att-26"]
    assert refs(log, IssuanceQuery(destination=RegionCode("820000"), code_ref="src-26")) == []


def test_a_dropped_attestation_is_found_by_none_of_its_references(log, tmp_path):
    assert refs(log, IssuanceQuery(code_ref="att-3")) == []
    assert refs(log, IssuanceQuery(code_ref="src-3")) == []
    with sqlite3.connect(tmp_path / "attestations.db") as db:
        assert db.execute("SELECT MIN(seq) FROM issuance_refs").fetchone()[0] == 11


def test_every_filter_is_answered_through_an_index(log, tmp_path):
    queries = {
        "destination = ?": ("820000",),
        "policy >= ? AND policy < ?": ("macau@", "macau@\x7f"),
        "issued_at >= ? AND issued_at < ?": ("2026", "2027"),
        "seq IN (SELECT seq FROM issuance_refs WHERE code_ref = ?)": ("shared-src",),
    }
    with sqlite3.connect(tmp_path / "attestations.db") as db:
        for where, params in queries.items():
            plan = db.execute(
                f"EXPLAIN QUERY PLAN SELECT * FROM issuances WHERE {where} ORDER BY seq DESC",
                params,
            ).fetchall()
            steps = " | ".join(row[3] for row in plan)
            assert "SCAN issuances" not in steps, (where, steps)


def test_a_log_written_before_the_reference_index_is_indexed_when_opened(tmp_path):
    path = tmp_path / "attestations.db"
    with sqlite3.connect(path) as db:  # the table as the first version of the log made it
        db.execute(
            "CREATE TABLE issuances (seq INTEGER PRIMARY KEY AUTOINCREMENT, code_ref TEXT NOT "
            "NULL, destination TEXT NOT NULL, policy TEXT NOT NULL, sources TEXT NOT NULL, kid "
            "TEXT NOT NULL, issued_at TEXT NOT NULL, expires_at TEXT NOT NULL)"
        )
        old = issuance(1)
        db.execute(
            "INSERT INTO issuances (code_ref, destination, policy, sources, kid, issued_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                old.code_ref,
                old.destination,
                old.policy,
                json.dumps(list(old.sources)),
                old.kid,
                old.issued_at.isoformat(),
                old.expires_at.isoformat(),
            ),
        )
    log = IssuanceLog(path)
    log.record(issuance(2))
    assert refs(log, IssuanceQuery(code_ref="src-1")) == ["att-1"]
    assert refs(log, IssuanceQuery(code_ref="shared-src")) == ["att-2", "att-1"]
    log.close()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"limit": 1001}, "1 to 1000 entries"),
        ({"limit": 0}, "1 to 1000 entries"),
        ({"policy_version": 2}, "needs the policy id"),
        ({"code_ref": "c1." + "A" * 254}, "at most 256 characters"),
        ({"issued_from": START, "issued_until": START}, "the interval is empty"),
        ({"issued_from": START.replace(tzinfo=None)}, "needs a UTC offset"),
        ({"before": 2**63}, "0 to 2"),  # SQLite's integers end below 2^63
        ({"before": -1}, "0 to 2"),
    ],
)
def test_an_impossible_query_is_refused_before_it_is_asked(fields, message):
    with pytest.raises(ValueError, match=message):
        IssuanceQuery(**fields)


def test_an_entry_whose_policy_label_was_damaged_is_a_storage_error_not_a_guess(log, tmp_path):
    """The log keeps each entry's policy as ``id@version``; one changed outside huren (no
    version, a version that is not a number) is named as damage, never read as version 0."""
    for damaged in ("macau", "macau@", "macau@x", "macau@01", "@3"):
        db = sqlite3.connect(tmp_path / "attestations.db")
        db.execute("UPDATE issuances SET policy = ? WHERE code_ref = 'att-39'", (damaged,))
        db.commit()
        db.close()
        with pytest.raises(StorageUnavailable, match="damaged entry"):
            log.page(IssuanceQuery(limit=5))
    db = sqlite3.connect(tmp_path / "attestations.db")
    db.execute("UPDATE issuances SET policy = 'macau@2' WHERE code_ref = 'att-39'")
    db.commit()
    db.close()
    (_, newest), *_ = log.page(IssuanceQuery(limit=1)).entries
    assert (newest.code_ref, newest.policy_id, newest.policy_version) == ("att-39", "macau", 2)
