"""The issuer/key/profile registry: validated state, immutable snapshots, the current one, and
the Registrar that decides every change."""

from gateway.registry.holder import TrustHolder
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
