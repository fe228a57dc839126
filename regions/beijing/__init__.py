"""Beijing (北京健康宝, 110000).

COSE_Sign1 signed with EdDSA (Ed25519), as ``BJ1:`` + base45(zlib(...)), over a CBOR map with
integer keys: 1 issuer, 6 issued-at (Unix seconds), 10 the state in words (未见异常 "nothing
abnormal", 居家观察 "home observation", 集中观察 "central observation", 弹窗 "pop-up": needs
checking, given while the back-end review runs), 11 the holder as a pseudonym (the number sealed
with AES-SIV under Beijing's key, which the hub also holds). Valid until 24:00 in Beijing of the
day it was issued.
"""

from __future__ import annotations

import base64
from datetime import datetime

from gateway.codecs import cose, strictcbor, textform
from gateway.crypto import Algorithm
from gateway.identity import IdentityScheme
from gateway.model import IssuerId, RegionCode
from gateway.profiles.times import end_of_local_day
from regions.common.formats import unix_s
from regions.common.identity import pseudonym
from regions.common.look import Look
from regions.common.spec import (
    CHINA_STANDARD_TIME,
    Holder,
    IssuedCode,
    Level,
    OfflineRegion,
    RegionContext,
    RegionSpec,
    Secrets,
)

SPEC = RegionSpec(
    name="beijing",
    code=RegionCode("110000"),
    issuer=IssuerId("beijing"),
    display_name="北京健康宝",
    algorithm=Algorithm.EDDSA,
    identity=IdentityScheme.PSEUDONYM,
    states={
        Level.GREEN: "未见异常",
        Level.YELLOW: "居家观察",
        Level.RED: "集中观察",
        Level.PENDING: "弹窗",
    },
    binary_kid=True,
)
LOOK = Look(
    languages=("zh", "en"),
    name={"zh": "北京健康宝", "en": "Beijing Health Kit"},
    tagline={"zh": "本人信息扫码登记", "en": "Self-check and registration"},
    accent="#a3262a",
    states={
        Level.GREEN: {"zh": "未见异常", "en": "Nothing abnormal"},
        Level.YELLOW: {"zh": "居家观察", "en": "Home observation"},
        Level.RED: {"zh": "集中观察", "en": "Central observation"},
        Level.PENDING: {"zh": "弹窗 · 审核中", "en": "Pop-up: under review"},
    },
    mask=(1, 1),
)
PREFIX = "BJ1:"


class Beijing(OfflineRegion):
    spec = SPEC

    def issue(
        self, holder: Holder, state: str, now: datetime, secrets: Secrets, declaration_id: str
    ) -> IssuedCode:
        issued_at = now.replace(microsecond=0)
        claims = {
            1: self.spec.issuer,
            6: unix_s(issued_at),
            10: state,
            11: pseudonym(secrets.pseudonym_key, holder.id_number, self.spec.issuer),
        }
        kid = base64.b64decode(secrets.kid)
        message = cose.sign(strictcbor.dumps(claims), secrets.key, kid)
        expires_at = end_of_local_day(issued_at, CHINA_STANDARD_TIME)
        return IssuedCode(textform.encode(PREFIX, message), state, issued_at, expires_at)


def build(context: RegionContext) -> Beijing:
    return Beijing()
