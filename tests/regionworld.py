"""All seven regions in-process, registered in one trust snapshot: for property tests.

Codes are minted exactly as the regional services mint them (the same region objects and
secrets); Zhejiang's online answers come from its own answer function, so the whole online path
of the pure core runs without HTTP. A test may amend an answer's payload before it is signed
again with Zhejiang's key: what Zhejiang itself could answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.codecs import base64url, jws, strictjson
from gateway.identity import IdentityKeys
from gateway.limits import Limits
from gateway.model import Verdict
from gateway.online import OnlineAnswer
from gateway.registry import TrustSnapshot, TrustState
from gateway.verify import Question, begin, finish_online
from regions import REGIONS, build_region, spec_of
from regions.common.keys import load_secrets
from regions.common.onboarding import registration
from regions.common.spec import Holder, IssuedCode, Level, Region, RegionContext, Secrets
from regions.zhejiang import TokenRecord, answer
from tests.conftest import LINK_KEY, SUBJECT_SECRET, add_issuer

ZHEJIANG_URL = "http://zhejiang.test"


@dataclass
class MemoryTokens:
    """Zhejiang's token records, in memory; declaration ids are the holders' numbers here."""

    records: dict[str, TokenRecord] = field(default_factory=dict)

    def add_token(
        self, token: str, declaration_id: str, state: str, issued_at: datetime, expires_at: datetime
    ) -> None:
        self.records[token] = TokenRecord(state, issued_at, expires_at, declaration_id)


@dataclass
class RegionsWorld:
    trust: TrustSnapshot
    identities: IdentityKeys
    regions: dict[str, tuple[Region, Secrets]]
    tokens: MemoryTokens
    limits: Limits = field(default_factory=Limits)

    def issue(self, name: str, number: str, state: str, at: datetime) -> IssuedCode:
        region, secrets = self.regions[name]
        return region.issue(Holder(number, "测试"), state, at, secrets, number)

    def issue_level(self, name: str, number: str, level: Level, at: datetime) -> IssuedCode:
        return self.issue(name, number, spec_of(name).states[level], at)

    def verify(
        self, code: str, now: datetime, *, amend: Callable[[dict[str, Any]], None] | None = None
    ) -> Verdict:
        """Verify ``code`` at ``now``; an online code gets Zhejiang's answer, its payload first
        changed by ``amend`` (then signed again with Zhejiang's key) if given."""
        first = begin(
            code, trust=self.trust, now=now, limits=self.limits, identities=self.identities
        )
        if not isinstance(first, Question):
            return first
        nonce = "n" * 24
        record = self.tokens.records.get(first.token)
        secrets = self.regions["zhejiang"][1]
        text = answer(first.token, nonce, record, secrets)
        if amend is not None:
            header, payload, _ = text.split(".")
            body = json.loads(base64url.decode(payload))
            amend(body)
            text = jws.sign(
                json.loads(base64url.decode(header)), strictjson.dumps(body), secrets.key
            )
        return finish_online(
            first,
            OnlineAnswer(nonce, text=text),
            trust=self.trust,
            now=now,
            limits=self.limits,
            identities=self.identities,
        )


def build_world(base: Path) -> RegionsWorld:
    tokens = MemoryTokens()
    state = TrustState()
    regions: dict[str, tuple[Region, Secrets]] = {}
    for name in REGIONS:
        directory = base / name
        directory.mkdir(parents=True, exist_ok=True)
        url = ZHEJIANG_URL if name == "zhejiang" else f"http://{name}.test"
        region = build_region(name, RegionContext(tokens, url, directory))
        secrets = load_secrets(spec_of(name), directory, LINK_KEY)
        public = secrets.key.public_key()
        jwk = {**public.jwk(), "kid": secrets.kid, "alg": public.algorithm.value}
        found = registration(name, url, directory, json.dumps({"keys": [jwk]}).encode())
        state.add_profile(found.profile, found.profile_text)
        add_issuer(state, found.issuer)
        for key in found.keys:
            state.add_key(key)
        regions[name] = (region, secrets)
    return RegionsWorld(state.snapshot(), IdentityKeys(SUBJECT_SECRET, LINK_KEY), regions, tokens)
