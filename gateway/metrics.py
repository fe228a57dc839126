"""What the gateway reports to its metrics: the small interface between the gateway and the
metrics edge (:mod:`gateway.server.metrics`, the one importer of ``prometheus_client``).

The servers and the online client call an :class:`Observer`; :data:`NO_OBSERVER` does nothing,
so a gateway without ``--metrics-listen`` pays one method call per RPC. Every label an observer
is given comes from a fixed set (statuses, reasons and colours are enums; regions and issuers are
those the registry holds; outcomes below), never from a code or a person: see
:func:`verdict_labels`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

from gateway.model import IssuerId, Verdict

NO_REGION = "none"
"""The region label of a verdict that got no issuer (a code nobody registered could sign)."""


class OnlineOutcome(enum.Enum):
    """How one question to an online issuer ended."""

    ANSWERED = "answered"
    """The issuer answered (what the answer says is the verdict's business)."""
    FAILED = "failed"
    """No usable answer: refused connection, timeout, HTTP error, malformed or oversized."""
    FAST_FAILED = "fast_failed"
    """Not asked: the issuer's circuit breaker was open."""


class SecretsFailure(enum.Enum):
    """Why a replica's fetch of its replica secrets from the hub failed."""

    REFUSED = "refused"
    """The hub refused this replica's certificate (unpinned, or not a replica's): every secret
    held was dropped."""
    UNREACHABLE = "unreachable"
    """No answer: the hub is down, the network broke, a timeout (the held secrets stay)."""
    MALFORMED = "malformed"
    """An answer out of bounds or malformed, refused whole (the held secrets stay)."""
    ERROR = "error"
    """Anything else (logged with its type; the held secrets stay)."""


def verdict_labels(verdict: Verdict) -> tuple[str, str, str, str]:
    """(status, reason, colour, region) of a verdict: enum values and the issuing region's code
    from the registry (or ``none``). Nothing from the code text or the person."""
    region = verdict.provenance.region
    return (
        verdict.status.value,
        verdict.reason.value,
        verdict.colour.value,
        str(region) if region is not None else NO_REGION,
    )


class Observer(Protocol):
    """What the gateway tells its metrics."""

    def verdicts(self, verdicts: Sequence[Verdict]) -> None:
        """Verdicts answered by one call (a batch at once: cheaper than one by one)."""

    def online_call(self, issuer: IssuerId, outcome: OnlineOutcome) -> None:
        """One question to an online issuer, and how it ended."""

    def trust_refreshed(self, version: int, ago: float = 0.0) -> None:
        """The trust behind the verdicts was confirmed ``ago`` seconds before now (a hub's
        registry verified on its periodic look; a replica took a verified trust list, or, at
        its start, read again the list the hub signed ``ago`` seconds ago), now serving
        ``version``."""

    def trust_list_signed(self, size: int, *, published: bool) -> None:
        """The hub signed a trust list of ``size`` characters; ``published`` is False when it
        is over the limit a replica receives (it is then not published)."""

    def replica_secrets(self, version: int | None) -> None:
        """A replica with a certificate holds the hub's replica secrets, vouched for at trust
        ``version`` by an answer just received; or (None) holds none, at its start or once
        dropped."""

    def secrets_fetch_failed(self, reason: SecretsFailure) -> None:
        """A replica's fetch of its replica secrets failed, for ``reason``."""


class _NoObserver:
    def verdicts(self, verdicts: Sequence[Verdict]) -> None:
        pass

    def online_call(self, issuer: IssuerId, outcome: OnlineOutcome) -> None:
        pass

    def trust_refreshed(self, version: int, ago: float = 0.0) -> None:
        pass

    def trust_list_signed(self, size: int, *, published: bool) -> None:
        pass

    def replica_secrets(self, version: int | None) -> None:
        pass

    def secrets_fetch_failed(self, reason: SecretsFailure) -> None:
        pass


NO_OBSERVER: Observer = _NoObserver()
