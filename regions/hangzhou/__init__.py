"""Hangzhou (杭州, 330100): the first health code, February 2020.

Codes are compact JWS signed with ES256 over a JSON payload that names the state in Chinese
(绿码 / 黄码 / 红码, and 灰码 while a back-end check is pending), with Unix-second times and a
24-hour validity. The colour comes from the declaration and the risk-area list in
``risk_areas.json``:

- contact with a case, or a trip to a high-risk area in the last 14 days: 红码 (red);
- symptoms, or a trip to a medium-risk area: 黄码 (yellow);
- a trip to a place the list does not know: 灰码 (pending a back-end check);
- otherwise 绿码 (green).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources

from gateway.codecs import jws, strictjson
from gateway.crypto import Algorithm, PrivateKey
from gateway.model import IssuerId, RegionCode
from regions.common.declarations import Declaration
from regions.common.spec import CHINA_STANDARD_TIME, IssuedCode, RegionSpec

GREEN, YELLOW, RED, PENDING = "绿码", "黄码", "红码", "灰码"
VALIDITY = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RiskAreas:
    window_days: int
    risk: dict[str, str]  # place code or name -> "high" | "medium" | "low"

    @classmethod
    def load(cls) -> RiskAreas:
        data = json.loads((resources.files(__name__) / "risk_areas.json").read_text("utf-8"))
        risk: dict[str, str] = {}
        for area in data["areas"]:
            risk[area["code"]] = risk[area["name"]] = area["risk"]
        return cls(int(data["window_days"]), risk)


class Hangzhou:
    spec = RegionSpec(
        name="hangzhou",
        code=RegionCode("330100"),
        issuer=IssuerId("hangzhou"),
        display_name="杭州健康码",
        algorithm=Algorithm.ES256,
    )

    def __init__(self, areas: RiskAreas | None = None) -> None:
        self.areas = areas or RiskAreas.load()

    def assess(self, declaration: Declaration, now: datetime) -> str:
        today = now.astimezone(CHINA_STANDARD_TIME).date()
        since = today - timedelta(days=self.areas.window_days)
        recent = [t for t in declaration.trips if t.end >= since]
        levels = {self.areas.risk.get(t.place, "unknown") for t in recent}
        if declaration.contact or "high" in levels:
            return RED
        if declaration.symptoms or "medium" in levels:
            return YELLOW
        if "unknown" in levels:
            return PENDING
        return GREEN

    def issue(
        self, declaration: Declaration, state: str, now: datetime, key: PrivateKey, kid: str
    ) -> IssuedCode:
        issued_at = now.replace(microsecond=0)
        expires_at = issued_at + VALIDITY
        payload = {
            "iss": self.spec.issuer,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            "hc": state,
            "idn": declaration.id_number,
        }
        header = {"alg": key.algorithm.value, "kid": kid, "typ": "JWT"}
        code = jws.sign(header, strictjson.dumps(payload), key)
        return IssuedCode(code, state, issued_at, expires_at)


REGION = Hangzhou()
