"""Macau (澳门健康码, 820000).

COSE_Sign1 signed with ES256, as ``MO1:`` + base45(zlib(...)), over a CBOR map with Portuguese
text keys: ``iss``, ``iat`` and ``exp`` in Unix milliseconds, ``estado`` verde / amarelo /
vermelho, and ``titular.pseudonimo``, the holder's number sealed under Macau's pseudonym key. A
code is valid for at most 6 hours (the e-gates' rule). No pending state.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

from gateway.codecs import cose, strictcbor, textform
from gateway.crypto import Algorithm
from gateway.identity import IdentityScheme
from gateway.model import IssuerId, RegionCode
from regions.common.formats import unix_ms
from regions.common.identity import pseudonym
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
    name="macau",
    code=RegionCode("820000"),
    issuer=IssuerId("macau"),
    display_name="澳门健康码",
    algorithm=Algorithm.ES256,
    identity=IdentityScheme.PSEUDONYM,
    states={Level.GREEN: "verde", Level.YELLOW: "amarelo", Level.RED: "vermelho"},
    binary_kid=True,
)
LOOK = Look(
    languages=("zh", "pt", "en"),
    name={"zh": "澳门健康码", "pt": "Código de Saúde de Macau", "en": "Macao Health Code"},
    tagline={
        "zh": "澳门特别行政区政府卫生局",
        "pt": "Serviços de Saúde da RAEM",
        "en": "Health Bureau of the Macao SAR",
    },
    accent="#00664a",
    states=standard_states(("绿码", "黄码", "红码", "审核中")),
    mask=(1, 1),
)
PREFIX = "MO1:"
VALIDITY = timedelta(hours=6)


class Macau(OfflineRegion):
    spec = SPEC

    def issue(
        self, holder: Holder, state: str, now: datetime, secrets: Secrets, declaration_id: str
    ) -> IssuedCode:
        issued_at = now.replace(microsecond=0)
        expires_at = issued_at + VALIDITY
        claims = {
            "iss": self.spec.issuer,
            "iat": unix_ms(issued_at),
            "exp": unix_ms(expires_at),
            "estado": state,
            "titular": {
                "pseudonimo": pseudonym(secrets.pseudonym_key, holder.id_number, self.spec.issuer)
            },
        }
        message = cose.sign(strictcbor.dumps(claims), secrets.key, base64.b64decode(secrets.kid))
        return IssuedCode(textform.encode(PREFIX, message), state, issued_at, expires_at)


def build(context: RegionContext) -> Macau:
    return Macau()
