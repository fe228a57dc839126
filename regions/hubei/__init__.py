"""Hubei (湖北健康码, 420000).

Compact JWS signed with ES384 over JSON: ``iss``, ``iat`` and ``exp`` in Unix milliseconds
(valid 7 days), the status code ``code`` (00 green, 01 yellow, 10 red, 99 pending review), and
``id`` with a masked number (first 6 and last 4 shown) and the link hash. A green code older than
3 days reads as yellow: the profile's degradation rule, applied by the gateway.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.codecs import base64url, jws, strictjson
from gateway.crypto import Algorithm
from gateway.identity import IdentityScheme
from gateway.model import IssuerId, RegionCode
from regions.common.formats import unix_ms
from regions.common.identity import link, masked
from regions.common.look import Look, standard_states
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
    name="hubei",
    code=RegionCode("420000"),
    issuer=IssuerId("hubei"),
    display_name="湖北健康码",
    algorithm=Algorithm.ES384,
    identity=IdentityScheme.MASKED_LINK,
    states={Level.GREEN: "00", Level.YELLOW: "01", Level.RED: "10", Level.PENDING: "99"},
)
LOOK = Look(
    languages=("zh", "en"),
    name={"zh": "湖北健康码", "en": "Hubei Health Code"},
    tagline={"zh": "鄂汇办 · 健康码", "en": "Hubei health code"},
    accent="#6b3590",
    states=standard_states(("绿码", "黄码", "红码", "灰码 · 审核中")),
    mask=(6, 4),
)
VALIDITY = timedelta(days=7)


class Hubei(OfflineRegion):
    spec = SPEC

    def issue(
        self, holder: Holder, state: str, now: datetime, secrets: Secrets, declaration_id: str
    ) -> IssuedCode:
        issued_at = now.replace(microsecond=0)
        expires_at = issued_at + VALIDITY
        payload = {
            "iss": self.spec.issuer,
            "iat": unix_ms(issued_at),
            "exp": unix_ms(expires_at),
            "code": state,
            "id": {
                "masked": masked(holder.id_number, 6, 4),
                "hash": base64url.encode(link(secrets.link_key, holder.id_number)),
            },
        }
        header = {"alg": "ES384", "kid": secrets.kid, "typ": "JWT"}
        code = jws.sign(header, strictjson.dumps(payload), secrets.key)
        return IssuedCode(code, state, issued_at, expires_at)


def build(context: RegionContext) -> Hubei:
    return Hubei()
