"""Shanghai (随申码, 310000).

Shanghai's own compact text envelope: ``SH1:`` then ``|``-separated fields (issuer, key id,
status 0 / 1 / 2, local time ``YYYYMMDDHHmmss`` in Shanghai, full identity number) and a
detached RSA-PSS (PS256) signature over everything before the last ``|``. Each code is valid for
30 minutes. Shanghai has no pending state: a declaration awaiting review gets no code yet.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.codecs import delimited
from gateway.crypto import Algorithm
from gateway.identity import IdentityScheme
from gateway.model import IssuerId, RegionCode
from regions.common.formats import compact_local
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
    name="shanghai",
    code=RegionCode("310000"),
    issuer=IssuerId("shanghai"),
    display_name="随申码",
    algorithm=Algorithm.PS256,
    identity=IdentityScheme.CN_RESIDENT_ID,
    states={Level.GREEN: "0", Level.YELLOW: "1", Level.RED: "2"},
)
LOOK = Look(
    languages=("zh", "en"),
    name={"zh": "随申码", "en": "Suishen Code (Shanghai)"},
    tagline={"zh": "随申办 · 健康码", "en": "Shanghai health code"},
    accent="#1d4e89",
    states=standard_states(("绿码", "黄码", "红码", "审核中")),
    mask=(1, 1),
)
PREFIX, DELIMITER = "SH1:", "|"
VALIDITY = timedelta(minutes=30)


class Shanghai(OfflineRegion):
    spec = SPEC

    def issue(
        self, holder: Holder, state: str, now: datetime, secrets: Secrets, declaration_id: str
    ) -> IssuedCode:
        issued_at = now.replace(microsecond=0)
        values = [self.spec.issuer, secrets.kid, state, compact_local(issued_at), holder.id_number]
        code = delimited.sign_text(PREFIX, DELIMITER, values, secrets.key.sign)
        return IssuedCode(code, state, issued_at, issued_at + VALIDITY)


def build(context: RegionContext) -> Shanghai:
    return Shanghai()
