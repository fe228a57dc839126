"""Guangdong (粤康码, 440000).

Compact JWS signed with ES384 over a JSON payload with English keys: ``issuer``, ``issuedAt``
and ``expiresAt`` (RFC 3339, +08:00), ``status`` blue (normal) / yellow / red, and ``holder``
with a masked number (first 4 and last 4 shown) and the link hash under the hub's key. Codes
carry an explicit expiry, 12 hours after issue. No pending state: a declaration awaiting review
gets no code yet.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.codecs import base64url, jws, strictjson
from gateway.crypto import Algorithm
from gateway.identity import IdentityScheme
from gateway.model import IssuerId, RegionCode
from regions.common.formats import iso_local
from regions.common.identity import link, masked
from regions.common.look import BLUE, STANDARD_PANELS, Look
from regions.common.spec import (
    Holder,
    IssuedCode,
    Level,
    OfflineRegion,
    RegionContext,
    RegionSpec,
    Secrets,
)

SPEC = RegionSpec(
    name="guangdong",
    code=RegionCode("440000"),
    issuer=IssuerId("guangdong"),
    display_name="粤康码",
    algorithm=Algorithm.ES384,
    identity=IdentityScheme.MASKED_LINK,
    states={Level.GREEN: "blue", Level.YELLOW: "yellow", Level.RED: "red"},
)
LOOK = Look(
    languages=("zh", "en"),
    name={"zh": "粤康码", "en": "Yuekang Code (Guangdong)"},
    tagline={"zh": "粤省事 · 健康防疫", "en": "Guangdong health code"},
    accent="#0a5a8c",
    states={
        Level.GREEN: {"zh": "蓝码 · 正常", "en": "Blue: normal"},
        Level.YELLOW: {"zh": "黄码", "en": "Yellow"},
        Level.RED: {"zh": "红码", "en": "Red"},
        Level.PENDING: {"zh": "审核中", "en": "Under review"},
    },
    panels={**STANDARD_PANELS, Level.GREEN: BLUE},
    mask=(4, 4),
)
VALIDITY = timedelta(hours=12)


class Guangdong(OfflineRegion):
    spec = SPEC

    def issue(
        self, holder: Holder, state: str, now: datetime, secrets: Secrets, declaration_id: str
    ) -> IssuedCode:
        issued_at = now.replace(microsecond=0)
        expires_at = issued_at + VALIDITY
        payload = {
            "issuer": self.spec.issuer,
            "issuedAt": iso_local(issued_at),
            "expiresAt": iso_local(expires_at),
            "status": state,
            "holder": {
                "maskedId": masked(holder.id_number, 4, 4),
                "linkHash": base64url.encode(link(secrets.link_key, holder.id_number)),
            },
        }
        header = {"alg": "ES384", "kid": secrets.kid}
        code = jws.sign(header, strictjson.dumps(payload), secrets.key)
        return IssuedCode(code, state, issued_at, expires_at)


def build(context: RegionContext) -> Guangdong:
    return Guangdong()
