"""The audit log's hash chain: what an entry is, how it is hashed, and how a chain is checked.

Each entry's hash is SHA-256 over the canonical JSON of its fields, including the previous
entry's hash; the first entry follows :data:`GENESIS`. Changing, removing, inserting or reordering
any entry breaks every hash after it, and :func:`verify_chain` names the first broken one.
Removing entries from the *end* leaves a shorter valid chain: the store also records the head
(last sequence number and hash) in the same transaction, and operators anchor it elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    """``ok``, ``denied`` (not allowed) or ``refused`` (invalid)."""
    detail: str
    state_digest: str
    trust_version: int
    """The registry's trust version after the entry (a retried request answers with it)."""
    previous_hash: str
    entry_hash: str


def entry_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    detail: str,
    state_digest: str,
    trust_version: int,
    previous_hash: str,
) -> str:
    fields = [
        seq,
        at.isoformat(),
        actor,
        action,
        target,
        outcome,
        detail,
        state_digest,
        trust_version,
        previous_hash,
    ]
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def seal(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    detail: str,
    state_digest: str,
    trust_version: int,
    previous_hash: str,
) -> AuditEntry:
    """A new entry, hashed and chained to ``previous_hash``."""
    content = (seq, at, actor, action, target, outcome, detail, state_digest, trust_version)
    return AuditEntry(*content, previous_hash, entry_hash(*content, previous_hash))


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int
    head: str
    broken_at: int | None = None
    problem: str | None = None
    kind: str = "chain"
    """What is wrong when it is not intact: ``chain`` (an entry, the head, or the state it
    vouches for), ``file`` (the file or a row cannot be read), ``rollback`` (older than the
    state record kept beside it)."""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def verify_chain(entries: Iterable[AuditEntry]) -> ChainReport:
    """Check sequence numbers, links and hashes from the first entry to the last."""
    previous, count = GENESIS, 0
    for expected_seq, entry in enumerate(entries, 1):
        count = expected_seq
        if entry.seq != expected_seq:
            return ChainReport(
                count, previous, entry.seq, f"sequence number {entry.seq}, expected {expected_seq}"
            )
        if entry.previous_hash != previous:
            return ChainReport(count, previous, entry.seq, "does not link to the entry before it")
        recomputed = entry_hash(
            entry.seq,
            entry.at,
            entry.actor,
            entry.action,
            entry.target,
            entry.outcome,
            entry.detail,
            entry.state_digest,
            entry.trust_version,
            entry.previous_hash,
        )
        if recomputed != entry.entry_hash:
            return ChainReport(count, previous, entry.seq, "its content does not match its hash")
        previous = entry.entry_hash
    return ChainReport(count, previous)
