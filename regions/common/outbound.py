"""转码 from the traveller's page: carry a code's green status to another region.

A region started with the hub's trust list and ``--transfer-peer CODE=URL`` offers, on its
traveller's page, "转码到 …" for each peer whose current policy (in the hub's signed trust list
the region holds) lets the hub attest (``[transfer] attest = true``). Two steps, both through
the region's own service, as the source region's app did in 2020–2022 (the page never talks
to the hub or to another region; its Content-Security-Policy allows only its own origin):

1. ``POST /api/attestations`` ``{"code_id", "destination"}``: the region asks the hub's
   ``Attest`` (gRPC, the verification address it already follows) for the attestation of the
   code it issued and showed under ``code_id``. ``201`` with the attestation and its own
   ``attestation_id`` for the QR image; the hub's refusal is ``422`` with its ``reason``
   (``NOT_GREEN``, ``TRANSFER_OFF``, ...) and the decision's colour and reason.
2. ``POST /api/conversions`` ``{"attestation", "destination", "id_number", "name"?}``: the
   region hands the attestation to the destination issuer's ``POST /api/transfers``
   (server to server, :data:`PEER_TIMEOUT` seconds, an answer of at most
   :data:`MAX_PEER_ANSWER` bytes) and shows what it converted: ``201`` with the destination's
   code under a ``code_id`` of this region (the page draws its QR from its own origin). The
   destination's refusal keeps its status and ``reason``; a destination that does not answer
   is ``502 DESTINATION_UNAVAILABLE``.

The identity number goes from the page to this region and on to the destination, as the
declaration did; neither this region nor the relay keeps or logs it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from gateway.clients.aio import AsyncGatewayClient
from gateway.clients.tls import TlsCredentials
from gateway.errors import HurenError
from gateway.model import parse_region_code
from gateway.qr import MAX_CODE_CHARS
from gateway.transfer import AttestOutcome
from regions import REGIONS, look_of, spec_of
from regions.common.look import Look
from regions.common.spec import Level
from regions.common.transfers import MAX_ATTESTATION_CHARS, HubTrust

log = logging.getLogger(__name__)

PEER_TIMEOUT = 5.0
"""Seconds the destination's issuer may take to answer a conversion."""
MAX_PEER_ANSWER = 64 * 1024
"""Bytes of the destination's answer read at most (a code and its facts are about 2 KiB)."""
MAX_PEERS = 32
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,39}")


class Attester(Protocol):
    """What the page's relay needs of the hub (an ``AsyncGatewayClient``)."""

    async def attest(self, codes: Sequence[str], destination: str) -> AttestOutcome: ...


@dataclass
class Outbound:
    """Where this region's travellers may carry their status, and the line to the hub."""

    trust: HubTrust
    """The hub's signed trust list this region holds: which destinations allow transfer."""
    peers: Mapping[str, str]
    """Destination region code -> its issuer's base URL (``http://host:port``)."""
    hub: str = ""
    """The hub's verification address (``Attest``)."""
    credentials: TlsCredentials | None = field(default=None, repr=False)
    attester: Attester | None = field(default=None, repr=False)
    """Set when the service starts (the gRPC channel lives in its event loop)."""
    _client: AsyncGatewayClient | None = field(default=None, repr=False)

    def start(self) -> None:
        if self.attester is None and self.hub:
            self._client = AsyncGatewayClient(self.hub, self.credentials, timeout=PEER_TIMEOUT)
            self.attester = self._client

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self.attester = None


def parse_peers(values: Sequence[str]) -> dict[str, str]:
    """``CODE=URL`` options, checked.

    Raises:
        ValueError: naming the bad entry.
    """
    peers: dict[str, str] = {}
    if len(values) > MAX_PEERS:
        raise ValueError(f"at most {MAX_PEERS} transfer peers")
    for value in values:
        code, sep, url = value.partition("=")
        if not sep or not re.fullmatch(r"https?://[^\s/]+", url.rstrip("/")):
            raise ValueError(f"{value!r}: expected CODE=http(s)://HOST:PORT")
        if url.startswith("http://") and not _loopback(urlsplit(url).hostname or ""):
            raise ValueError(
                f"{value!r}: the traveller's identity number and name go to the peer, so "
                "plain http:// only to a loopback address (this host); use https://"
            )
        try:
            peers[parse_region_code(code)] = url.rstrip("/")
        except ValueError as e:
            raise ValueError(f"{value!r}: {e}") from None
    return peers


def _loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def offered(outbound: Outbound) -> list[str]:
    """The peers whose current policy, in the held trust list, lets the hub attest."""
    held = outbound.trust.held
    if held is None:
        return []
    policies = held.snapshot.policies
    return [code for code in outbound.peers if code in policies and policies[code].transfer.attest]


def _look_of_code(code: str) -> Look | None:
    return next((look_of(n) for n in REGIONS if spec_of(n).code == code), None)


def destination_css(outbound: Outbound) -> str:
    """Each peer's GREEN panel (``.to-CODE``), for the converted code the page shows."""
    rules = []
    for code in outbound.peers:
        look = _look_of_code(code)
        if look is not None:
            panel = look.panels[Level.GREEN]
            rules.append(
                f".to-{code} {{ background: {panel.background}; color: {panel.text}; }}\n"
                f".to-{code} .icon {{ background: {panel.text}; color: {panel.background}; }}"
            )
    return "\n".join(rules) + "\n" if rules else ""


def _names(code: str, fallback: str) -> dict[str, str]:
    look = _look_of_code(code)
    if look is None:
        return {"zh": fallback, "en": fallback, "pt": fallback}
    return {lang: look.name.get(lang, look.name["en"]) for lang in ("zh", "en", "pt")}


def _green_words(code: str) -> dict[str, Any]:
    """The destination's GREEN word in each language, with its panel's icon and shape."""
    look = _look_of_code(code)
    if look is None:
        return {"zh": "绿码", "en": "GREEN", "pt": "Verde", "icon": "✓", "shape": "circle"}
    states, panel = look.states[Level.GREEN], look.panels[Level.GREEN]
    words: dict[str, Any] = {lang: states.get(lang, states["en"]) for lang in ("zh", "en", "pt")}
    return {**words, "icon": panel.icon, "shape": panel.shape}


def refusal(status: int, reason: str, detail: str, **extra: Any) -> web.Response:
    body = {"error": detail, "reason": reason, **extra}
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _shown_names(outbound: Outbound, code: str) -> dict[str, Any]:
    """The destination's name and GREEN word in each language (its own look, or the name the
    trust list gives its region)."""
    held = outbound.trust.held
    regions = held.snapshot.regions if held else {}
    fallback = next((r.name for c, r in regions.items() if c == code), code)
    return {"destination": code, "name": _names(code, fallback), "green": _green_words(code)}


def destinations_answer(outbound: Outbound) -> dict[str, Any]:
    return {"destinations": [_shown_names(outbound, code) for code in offered(outbound)]}


async def attest(outbound: Outbound, code: str, destination: str) -> AttestOutcome | web.Response:
    """Step 1: the hub's answer, or an error response when the hub cannot be asked."""
    if destination not in offered(outbound):
        return refusal(
            422,
            "DESTINATION_NOT_OFFERED",
            f"{destination} is not a destination this page converts to (or its policy does not "
            "allow transfer)",
        )
    if outbound.attester is None:
        return refusal(503, "HUB_UNAVAILABLE", "the hub is not connected yet")
    try:
        return await outbound.attester.attest([code], destination)
    except HurenError as e:
        log.warning("the hub did not attest: %s", type(e).__name__)
        return refusal(503, "HUB_UNAVAILABLE", f"the hub did not answer: {e}")


@dataclass(frozen=True, slots=True)
class Converted:
    code: str
    expires_at: datetime
    answer: dict[str, Any]


async def convert(
    outbound: Outbound, destination: str, body: dict[str, str], now: datetime
) -> Converted | web.Response:
    """Step 2: hand the attestation to the destination's issuer; its code, or its refusal."""
    if destination not in outbound.peers:
        return refusal(
            422, "DESTINATION_NOT_OFFERED", f"{destination} is not a destination this page knows"
        )
    if destination not in offered(outbound):  # its policy may have changed since step 1
        return refusal(
            422, "DESTINATION_NOT_OFFERED", f"{destination}'s policy does not allow transfer now"
        )
    if len(body.get("attestation", "")) > MAX_ATTESTATION_CHARS:
        return refusal(400, "ERR_REQUEST", "an attestation has at most 2048 characters")
    url = f"{outbound.peers[destination]}/api/transfers"
    unavailable = f"the issuer of {destination} did not answer"
    try:
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json=body, allow_redirects=False) as response,
        ):
            raw = await response.content.read(MAX_PEER_ANSWER + 1)
            status = response.status
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        log.warning("conversion at %s: %s", destination, type(e).__name__)
        return refusal(502, "DESTINATION_UNAVAILABLE", f"{unavailable} ({type(e).__name__})")
    try:
        if len(raw) > MAX_PEER_ANSWER:
            raise ValueError("answer too large")
        answer = json.loads(raw.decode("utf-8"))
        if not isinstance(answer, dict):
            raise ValueError("not an object")
    except (UnicodeDecodeError, ValueError):
        return refusal(502, "DESTINATION_UNAVAILABLE", f"{unavailable} with JSON")
    if status != 201:
        reason = answer.get("reason")
        reason = reason if isinstance(reason, str) and _REASON.fullmatch(reason) else "REFUSED"
        detail = str(answer.get("error", ""))[:300] or f"refused with HTTP {status}"
        kept = status if 400 <= status < 500 or status == 503 else 502
        return refusal(kept, reason, detail)
    try:
        code, expires_in = answer["code"], int(answer["expires_in"])
        if not isinstance(code, str) or not 0 < len(code) <= MAX_CODE_CHARS:
            raise ValueError
        if not 0 < expires_in <= 7 * 24 * 3600:
            raise ValueError
        # A conversion is green only: the page shows the destination's GREEN panel, so the
        # answer must say GREEN, else it is not shown as one.
        if answer["level"] != Level.GREEN.value:
            raise ValueError
        uses = answer["attestation"]
        shown = {
            "state": str(answer["state"])[:40],
            "holder": str(answer["holder"])[:40],
            "issued_at": str(answer["issued_at"])[:40],
            "expires_at": str(answer["expires_at"])[:40],
            "expires_in": expires_in,
            "uses": int(uses["uses"]),
            "uses_left": int(uses["uses_left"]),
        }
    except (KeyError, TypeError, ValueError):
        return refusal(502, "DESTINATION_UNAVAILABLE", f"{unavailable} with a code")
    shown.update(_shown_names(outbound, destination))
    return Converted(code, now + timedelta(seconds=expires_in), shown)
