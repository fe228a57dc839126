"""Hangzhou (杭州, 330100): the first health code, February 2020.

Compact JWS signed with ES256 over a JSON payload that names the state in Chinese (绿码 / 黄码 /
红码, and 灰码 while a back-end check is pending), Unix-second times, 24-hour validity, and the
holder's full resident identity number inside the signed payload.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.codecs import jws, strictjson
from gateway.crypto import Algorithm
from gateway.identity import IdentityScheme
from gateway.model import IssuerId, RegionCode
from regions.common.formats import unix_s
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
    name="hangzhou",
    code=RegionCode("330100"),
    issuer=IssuerId("hangzhou"),
    display_name="杭州健康码",
    algorithm=Algorithm.ES256,
    identity=IdentityScheme.CN_RESIDENT_ID,
    states={Level.GREEN: "绿码", Level.YELLOW: "黄码", Level.RED: "红码", Level.PENDING: "灰码"},
)
LOOK = Look(
    languages=("zh", "en"),
    name={"zh": "杭州健康码", "en": "Hangzhou Health Code"},
    tagline={"zh": "自主申报，亮码通行", "en": "Declare, then show your code"},
    accent="#1e5aa8",
    states=standard_states(("绿码", "黄码", "红码", "灰码 · 审核中")),
    mask=(3, 4),
)
VALIDITY = timedelta(hours=24)


class Hangzhou(OfflineRegion):
    spec = SPEC

    def issue(
        self, holder: Holder, state: str, now: datetime, secrets: Secrets, declaration_id: str
    ) -> IssuedCode:
        issued_at = now.replace(microsecond=0)
        expires_at = issued_at + VALIDITY
        payload = {
            "iss": self.spec.issuer,
            "iat": unix_s(issued_at),
            "exp": unix_s(expires_at),
            "hc": state,
            "idn": holder.id_number,
        }
        header = {"alg": secrets.key.algorithm.value, "kid": secrets.kid, "typ": "JWT"}
        code = jws.sign(header, strictjson.dumps(payload), secrets.key)
        return IssuedCode(code, state, issued_at, expires_at)


def build(context: RegionContext) -> Hangzhou:
    return Hangzhou()
