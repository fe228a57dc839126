"""The current trust snapshot, and whether it can still be vouched for.

Readers take :attr:`TrustHolder.current` once per request; writers replace it atomically (a
reference swap), so no reader ever sees half of a change. When the registry behind it can no
longer be verified (a reload found the audit chain broken or the file changed outside the
registry), the holder keeps the last good snapshot and remembers since when it is
:attr:`~TrustHolder.unverified`: verification may go on from it for a bounded time, after which
every code is UNVERIFIABLE ``ERR_TRUST_STALE`` (see :class:`~gateway.service.VerificationService`).

A replica's snapshot comes from a signed trust list and is judged on only until the list's
:attr:`~TrustHolder.fresh_until`; the hub's own snapshot has none (it is fresh by construction
while its registry verifies, which :attr:`~TrustHolder.unverified` tracks).
"""

from __future__ import annotations

import threading
from datetime import datetime

from gateway.registry.snapshot import TrustSnapshot


class TrustHolder:
    """Holds the current snapshot and its standing."""

    def __init__(self, snapshot: TrustSnapshot, fresh_until: datetime | None = None) -> None:
        self._current = snapshot
        self._fresh_until = fresh_until
        self._lock = threading.Lock()
        self._unverified: tuple[datetime, str] | None = None

    @property
    def fresh_until(self) -> datetime | None:
        """When the current snapshot stops being judged on (None: it does not, by itself)."""
        return self._fresh_until

    @property
    def current(self) -> TrustSnapshot:
        return self._current

    @property
    def unverified(self) -> tuple[datetime, str] | None:
        """Since when, and why, the registry behind the current snapshot does not verify (None
        while it does)."""
        return self._unverified

    def replace(self, snapshot: TrustSnapshot, fresh_until: datetime | None = None) -> None:
        """Serve ``snapshot`` from now on (a verified one: this also clears :attr:`unverified`),
        until ``fresh_until`` if given.

        Raises:
            ValueError: if it is older than the current one (snapshots only move forward).
        """
        with self._lock:
            if snapshot.version < self._current.version:
                raise ValueError("trust snapshots only move forward")
            self._current = snapshot
            self._fresh_until = fresh_until
            self._unverified = None

    def verified(self) -> None:
        """The registry verifies again, and the current snapshot is still its state."""
        with self._lock:
            self._unverified = None

    def unverifiable(self, since: datetime, problem: str) -> None:
        """The registry stopped verifying at ``since`` (kept if already set)."""
        with self._lock:
            if self._unverified is None:
                self._unverified = (since, problem)
