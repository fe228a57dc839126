"""The issuer/key/profile registry: validated state, immutable snapshots, and the current one."""

from __future__ import annotations

import threading

from gateway.registry.model import Issuer, IssuerKey, KeyStatus, OnlineEndpoint, Revocations
from gateway.registry.snapshot import Route, TrustSnapshot
from gateway.registry.trust import TrustState

__all__ = [
    "Issuer",
    "IssuerKey",
    "KeyStatus",
    "OnlineEndpoint",
    "Revocations",
    "Route",
    "TrustHolder",
    "TrustSnapshot",
    "TrustState",
]


class TrustHolder:
    """Holds the current snapshot. Readers take ``current`` once per request; writers replace it
    atomically (a reference swap), so no reader ever sees half of a change."""

    def __init__(self, snapshot: TrustSnapshot) -> None:
        self._current = snapshot
        self._lock = threading.Lock()

    @property
    def current(self) -> TrustSnapshot:
        return self._current

    def replace(self, snapshot: TrustSnapshot) -> None:
        with self._lock:
            if snapshot.version < self._current.version:
                raise ValueError("trust snapshots only move forward")
            self._current = snapshot
