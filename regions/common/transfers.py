"""转码 at the destination: ``POST /api/transfers`` turns the hub's attestation into the region's
own code (docs/transfer.md).

The region verifies the attestation **offline**, with the gateway's own pipeline, against the
hub's signed trust list: the list is followed from the hub (``WatchTrustList``, polling when
the stream fails; :class:`~gateway.clients.hubfeed.HubFeed`), verified with the pinned
trust-list key and read as a replica reads it (:mod:`gateway.replica`: rollbacks and replays
refused), and held in memory; past its ``fresh_until`` every conversion is refused. Then, in
order, each refusal with its reason:

1. the trust list is held and fresh (``TRUST_STALE``, 503);
2. the attestation verifies (its verdict's reason: ``ERR_SIGNATURE``, ``ERR_KEY_UNKNOWN``,
   ``ERR_KEY_REVOKED``, ``ERR_EXPIRED``, ...);
3. it is the hub's attestation (``NOT_AN_ATTESTATION``), made for this region or a region
   within it (``OTHER_DESTINATION``), GREEN (``NOT_GREEN``);
4. it is the traveller's: the identity number given now links to the attestation's subject,
   by the national linking key (``IDENTITY_MISMATCH``);
5. it has been converted fewer than :data:`USE_LIMIT` times here (``USE_LIMIT``, 409).

Only then the region issues its own GREEN code for the traveller, with its own validity rules.
It never sees the source codes; it keeps, per attestation, a keyed reference and a count, not
the attestation itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway import replica, transfer
from gateway.clients.hubfeed import HubFeed
from gateway.crypto import PublicKey
from gateway.errors import ConfigurationInvalid
from gateway.identity import IdentityKeys, is_cn_resident_id
from gateway.limits import Limits
from gateway.model import Colour, Status, region_contains
from gateway.verify import verify_code

log = logging.getLogger(__name__)

USE_LIMIT = 3
"""How many times one attestation may be converted at one region: the region's own code may
expire before the attestation does (Macau's live 6 h), and a traveller may lose a phone; a
fourth conversion is refused as a replay."""
MAX_ATTESTATION_CHARS = 2048


@dataclass
class HubTrust:
    """The hub's signed trust list, as this region holds it."""

    key: PublicKey
    feed: HubFeed | None = None
    held: replica.TrustList | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def offer(self, text: str) -> bool:
        """Hold ``text`` if it is a newer list the pinned key signed; False otherwise (logged)."""
        try:
            candidate = replica.read(text, self.key, self.held)
            if not replica.successor(self.held, candidate):
                return False
        except ConfigurationInvalid as error:
            log.warning("a trust list from the hub was refused: %s", error)
            return False
        self.held = candidate
        return True

    async def follow(self) -> None:
        if self.feed is None:
            return
        async for text in self.feed.lists(lambda: self.held.version if self.held else 0):
            # Off the event loop: reading a list of 100,000 keys takes seconds; the pages keep
            # answering meanwhile, on the held list (one reference, swapped at the end).
            try:
                await asyncio.to_thread(self.offer, text)
            except Exception:  # a list nobody foresaw must not end the feed for good
                log.exception("a trust list from the hub could not be read; the held one stays")

    def start(self) -> None:
        if self.feed is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class Transfers:
    """What a region needs to convert attestations."""

    trust: HubTrust
    link_key: bytes = field(repr=False)
    """The hub's national linking key: binds the traveller to the attestation's subject."""
    limits: Limits = field(default_factory=Limits)
    identities: IdentityKeys = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A subject secret of this region's own: its references are compared here, never shown.
        self.identities = IdentityKeys(secrets.token_bytes(32), self.link_key)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str
    detail: str

    def response(self) -> web.Response:
        body = {"error": self.detail, "reason": self.reason}
        return web.json_response(body, status=self.status, dumps=_dumps)


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Accepted:
    ref: str
    """The region's own keyed reference of the attestation (its use counter's key)."""
    expires_at: Any
    destination: str


def check(
    transfers: Transfers, region_code: str, text: str, number: str, now: Any
) -> Accepted | Refusal:
    """Steps 1 to 4 (the use limit is the store's, step 5)."""
    held = transfers.trust.held
    if held is None or now >= held.fresh_until:
        when = f"was fresh until {held.fresh_until.isoformat()}" if held else "has not arrived"
        return Refusal(
            503, "TRUST_STALE", f"the hub's trust list {when}: no attestation is judged on it"
        )
    verdict = verify_code(
        text,
        trust=held.snapshot,
        now=now,
        limits=transfers.limits,
        identities=transfers.identities,
    )
    code = verdict.code
    if verdict.status is not Status.VALID or code is None:
        return Refusal(422, verdict.reason.value, verdict.detail)
    if code.issuer != transfer.ISSUER or code.region != transfer.REGION or not code.destination:
        return Refusal(
            422, "NOT_AN_ATTESTATION", "this is a region's code, not the hub's attestation"
        )
    if not region_contains(region_code, code.destination):  # type: ignore[arg-type]
        return Refusal(
            422,
            "OTHER_DESTINATION",
            f"the attestation was made for {code.destination}, not for {region_code}",
        )
    if code.colour is not Colour.GREEN:
        return Refusal(422, "NOT_GREEN", "only a GREEN attestation is converted")
    if not is_cn_resident_id(number):
        return Refusal(400, "IDENTITY_MISMATCH", "id_number is not a resident identity number")
    if transfers.identities.subject(transfers.identities.from_number(number)) != code.subject:
        return Refusal(422, "IDENTITY_MISMATCH", "the attestation was made for another traveller")
    return Accepted(verdict.provenance.code_ref or "", code.expires_at, code.destination)
