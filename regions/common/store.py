"""A region's own records: declarations, appeals with every step taken on them, online tokens.

One SQLite file in the region's state directory, with the gateway's durable settings. The region
is the issuer, so it keeps what travellers declared (identity numbers included); that is the
region's record, never the gateway's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.storage.database import open_database, write_transaction
from regions.common.declarations import Declaration, parse_declaration
from regions.common.spec import Level


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class StoredDeclaration:
    id: str
    declaration: Declaration
    level: Level
    """The assessment: PENDING until the back-end review, then GREEN, YELLOW or RED."""
    review_due: datetime | None
    corrected: Level | None
    """A level set by an accepted appeal; it overrides the assessment."""

    @property
    def effective(self) -> Level:
        return self.corrected or self.level


class RegionStore:
    """A region's declarations and appeals: raw personal data (identity numbers, names, phone
    numbers), so the file and SQLite's ``-wal`` and ``-shm`` beside it are readable by their
    owner alone (0600; SQLite gives the latter the database file's mode)."""

    def __init__(self, path: Path) -> None:
        path.touch(mode=0o600, exist_ok=True)
        os.chmod(path, 0o600)
        self.db = open_database(path)
        with write_transaction(self.db):
            self.db.table("declarations").create(
                {
                    "id": str,
                    "body": str,
                    "level": str,
                    "review_due": str,
                    "corrected": str,
                    "created_at": str,
                },
                pk="id",
                not_null={"body", "level", "created_at"},
                if_not_exists=True,
            )
            self.db.table("appeals").create(
                {
                    "id": str,
                    "declaration_id": str,
                    "reason": str,
                    "status": str,
                    "decision_reason": str,
                    "corrected_level": str,
                    "corrected_code": str,
                    "corrected_state": str,
                    "corrected_expires_at": str,
                    "filed_at": str,
                    "decided_at": str,
                    "decided_by": str,
                },
                pk="id",
                not_null={"declaration_id", "reason", "status", "filed_at"},
                foreign_keys=[("declaration_id", "declarations", "id")],
                if_not_exists=True,
            )
            self.db.table("appeal_events").create(
                {
                    "id": int,
                    "appeal_id": str,
                    "at": str,
                    "actor": str,
                    "action": str,
                    "detail": str,
                },
                pk="id",
                not_null={"appeal_id", "at", "actor", "action"},
                foreign_keys=[("appeal_id", "appeals", "id")],
                if_not_exists=True,
            )
            self.db.table("tokens").create(
                {
                    "token": str,
                    "declaration_id": str,
                    "state": str,
                    "issued_at": str,
                    "expires_at": str,
                },
                pk="token",
                not_null={"declaration_id", "state", "issued_at", "expires_at"},
                foreign_keys=[("declaration_id", "declarations", "id")],
                if_not_exists=True,
            )

        with write_transaction(self.db):
            self.db.table("transfers").create(
                {"ref": str, "uses": int, "first_at": str, "last_at": str},
                pk="ref",
                not_null={"uses", "first_at", "last_at"},
                if_not_exists=True,
            )

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ transfers (转码)

    def use_transfer(self, ref: str, limit: int, now: datetime) -> int | None:
        """Count one conversion of the attestation ``ref`` (the region's keyed reference);
        the count after it, or None if ``limit`` conversions were already made."""
        with write_transaction(self.db):
            rows = list(self.db.table("transfers").rows_where("ref = ?", [ref]))
            uses = int(rows[0]["uses"]) if rows else 0
            if uses >= limit:
                return None
            first = rows[0]["first_at"] if rows else _ts(now)
            self.db.table("transfers").upsert(
                {"ref": ref, "uses": uses + 1, "first_at": first, "last_at": _ts(now)}, pk="ref"
            )
        return uses + 1

    # ------------------------------------------------------------------ declarations

    def add_declaration(
        self,
        declaration_id: str,
        body: bytes,
        level: Level,
        review_due: datetime | None,
        now: datetime,
    ) -> None:
        with write_transaction(self.db):
            self.db.table("declarations").insert(
                {
                    "id": declaration_id,
                    "body": body.decode("utf-8"),
                    "level": level.value,
                    "review_due": _ts(review_due),
                    "corrected": None,
                    "created_at": _ts(now),
                }
            )

    def declaration(self, declaration_id: str) -> StoredDeclaration | None:
        rows = list(self.db.table("declarations").rows_where("id = ?", [declaration_id]))
        if not rows:
            return None
        row = rows[0]
        return StoredDeclaration(
            id=row["id"],
            declaration=parse_declaration(row["body"].encode("utf-8")),
            level=Level(row["level"]),
            review_due=_dt(row["review_due"]),
            corrected=Level(row["corrected"]) if row["corrected"] else None,
        )

    def complete_review(self, declaration_id: str, level: Level) -> None:
        with write_transaction(self.db):
            self.db.execute(
                "UPDATE declarations SET level = ?, review_due = NULL WHERE id = ? AND level = ?",
                [level.value, declaration_id, Level.PENDING.value],
            )

    # ------------------------------------------------------------------ appeals

    def add_appeal(self, appeal_id: str, declaration_id: str, reason: str, now: datetime) -> None:
        with write_transaction(self.db):
            self.db.table("appeals").insert(
                {
                    "id": appeal_id,
                    "declaration_id": declaration_id,
                    "reason": reason,
                    "status": "open",
                    "filed_at": _ts(now),
                }
            )
            self._event(appeal_id, now, "holder", "filed", reason)

    def decide(
        self,
        appeal_id: str,
        *,
        accepted: bool,
        reason: str,
        operator: str,
        now: datetime,
        corrected: tuple[Level, str, str, datetime] | None,
    ) -> bool:
        """Record a decision on an open appeal, all in one transaction; False if it was not open.

        ``corrected`` is (level, code, state, expiry) for an accepted appeal.
        """
        with write_transaction(self.db):
            rows = list(self.db.table("appeals").rows_where("id = ?", [appeal_id]))
            if not rows or rows[0]["status"] != "open":
                return False
            changes: dict[str, Any] = {
                "status": "accepted" if accepted else "rejected",
                "decision_reason": reason,
                "decided_at": _ts(now),
                "decided_by": operator,
            }
            if corrected is not None:
                level, code, state, expires_at = corrected
                changes.update(
                    corrected_level=level.value,
                    corrected_code=code,
                    corrected_state=state,
                    corrected_expires_at=_ts(expires_at),
                )
                self.db.execute(
                    "UPDATE declarations SET corrected = ? WHERE id = ?",
                    [level.value, rows[0]["declaration_id"]],
                )
            self.db.table("appeals").update(appeal_id, changes)
            self._event(appeal_id, now, operator, changes["status"], reason)
            if corrected is not None:
                self._event(appeal_id, now, "system", "corrected code issued", corrected[2])
        return True

    def appeal(self, appeal_id: str) -> dict[str, Any] | None:
        rows = list(self.db.table("appeals").rows_where("id = ?", [appeal_id]))
        if not rows:
            return None
        appeal = dict(rows[0])
        appeal["events"] = [
            {k: e[k] for k in ("at", "actor", "action", "detail")}
            for e in self.db.table("appeal_events").rows_where(
                "appeal_id = ?", [appeal_id], order_by="id"
            )
        ]
        return appeal

    def appeals(self, status: str | None = None) -> list[dict[str, Any]]:
        where, args = ("status = ?", [status]) if status else (None, [])
        return [
            dict(r) for r in self.db.table("appeals").rows_where(where, args, order_by="filed_at")
        ]

    def _event(self, appeal_id: str, at: datetime, actor: str, action: str, detail: str) -> None:
        self.db.table("appeal_events").insert(
            {
                "appeal_id": appeal_id,
                "at": _ts(at),
                "actor": actor,
                "action": action,
                "detail": detail,
            }
        )

    # ------------------------------------------------------------------ online tokens

    def add_token(
        self,
        token: str,
        declaration_id: str,
        state: str,
        issued_at: datetime,
        expires_at: datetime,
    ) -> None:
        with write_transaction(self.db):
            self.db.table("tokens").insert(
                {
                    "token": token,
                    "declaration_id": declaration_id,
                    "state": state,
                    "issued_at": _ts(issued_at),
                    "expires_at": _ts(expires_at),
                }
            )

    def token(self, token: str) -> dict[str, Any] | None:
        rows = list(self.db.table("tokens").rows_where("token = ?", [token]))
        return dict(rows[0]) if rows else None
