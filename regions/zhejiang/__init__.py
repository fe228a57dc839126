"""Zhejiang (浙江健康码, 330000): codes verified online by their issuer.

A Zhejiang code is a URL with an opaque token (``<public url>/hc/v1/<token>``), valid 5 minutes.
Nothing in it can be checked offline: the hub asks ``POST /api/verify`` (see gateway.online for
the protocol), authenticating itself with HMAC-SHA-256 under a client secret that Zhejiang issued
to it, and Zhejiang answers with an ES256-signed JWS: the status (green / yellow / red, or init
while the back-end check runs), issue and expiry times in RFC 3339 with +08:00, and the holder as
a masked number (first 3, last 4) with the link hash under the hub's key.

Zhejiang overlaps Hangzhou (a province and a city inside it): both issue codes for one person.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.codecs import base64url, jws, strictjson
from gateway.crypto import Algorithm
from gateway.errors import CodeRejected
from gateway.identity import SECRET_BYTES, IdentityScheme
from gateway.model import IssuerId, RegionCode
from gateway.online import (
    ANSWER_TYPE,
    CLIENT_HEADER,
    REQUEST_WINDOW_SECONDS,
    SIGNATURE_HEADER,
    UNKNOWN_TOKEN,
    signature_matches,
)
from regions.common.formats import iso_local
from regions.common.identity import link, masked
from regions.common.look import Look, standard_states
from regions.common.pages import CodeView, not_found_page, render
from regions.common.service import CLOCK, CODES, REGION_LOOK, SECRETS, STORE, error
from regions.common.spec import (
    Holder,
    IssuedCode,
    Level,
    RegionContext,
    RegionSpec,
    Secrets,
    TokenBook,
)

SPEC = RegionSpec(
    name="zhejiang",
    code=RegionCode("330000"),
    issuer=IssuerId("zhejiang"),
    display_name="浙江健康码",
    algorithm=Algorithm.ES256,
    identity=IdentityScheme.MASKED_LINK,
    states={Level.GREEN: "green", Level.YELLOW: "yellow", Level.RED: "red", Level.PENDING: "init"},
)
LOOK = Look(
    languages=("zh", "en"),
    name={"zh": "浙江健康码", "en": "Zhejiang Health Code"},
    tagline={"zh": "浙里办 · 一码通行", "en": "One code across Zhejiang"},
    accent="#0f6468",
    states=standard_states(("绿码", "黄码", "红码", "灰码 · 审核中")),
    mask=(3, 4),
)
TOKEN_VALIDITY = timedelta(minutes=5)
CODE_PATH = "/hc/v1/"
VERIFY_PATH = "/api/verify"
MAX_REQUEST_BYTES = 4096
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


@dataclass(frozen=True, slots=True)
class HubClient:
    """The credential Zhejiang issued to the hub for its verification API."""

    client_id: str
    secret: bytes

    @classmethod
    def load_or_create(cls, state_dir: Path) -> HubClient:
        path = client_file(state_dir)
        if not path.exists():
            state_dir.mkdir(parents=True, exist_ok=True)
            document = {"client_id": "huren-hub", "secret": secrets.token_hex(SECRET_BYTES)}
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(document, f)
        document = json.loads(path.read_text())
        return cls(document["client_id"], bytes.fromhex(document["secret"]))


def client_file(state_dir: Path) -> Path:
    """Where Zhejiang keeps the hub's credential (the operator hands it to the gateway)."""
    return state_dir / "hub-client.json"


class Zhejiang:
    spec = SPEC

    def __init__(self, tokens: TokenBook, public_url: str, client: HubClient) -> None:
        self.tokens = tokens
        self.code_prefix = public_url.rstrip("/") + CODE_PATH
        self.client = client

    def issue(
        self, holder: Holder, state: str, now: datetime, secrets_: Secrets, declaration_id: str
    ) -> IssuedCode:
        issued_at = now.replace(microsecond=0)
        expires_at = issued_at + TOKEN_VALIDITY
        token = secrets.token_urlsafe(16)
        self.tokens.add_token(token, declaration_id, state, issued_at, expires_at)
        return IssuedCode(self.code_prefix + token, state, issued_at, expires_at)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(VERIFY_PATH, self.verify),
            web.get(CODE_PATH + "{token}", self.code_page),
        ]

    async def code_page(self, request: web.Request) -> web.Response:
        """What a phone camera opens: the code's own page (colour, masked identity, validity,
        the URL again as a QR) for a browser, the same facts as JSON for anything else.

        The hub never comes here: it asks ``POST /api/verify`` and trusts only the signed answer.
        """
        app, now = request.app, request.app[CLOCK]()
        look = app[REGION_LOOK]
        lang = look.language(request.query.get("lang"))
        wants_html = "text/html" in request.headers.get("Accept", "")
        token = request.match_info["token"]
        row = app[STORE].token(token) if _TOKEN.fullmatch(token) else None
        if row is None:
            if wants_html:
                return not_found_page(look, lang)
            return error(404, "no such code")
        stored = app[STORE].declaration(row["declaration_id"])
        assert stored is not None
        issued_at = datetime.fromisoformat(row["issued_at"])
        expires_at = datetime.fromisoformat(row["expires_at"])
        levels = {word: level for level, word in SPEC.states.items()}
        level = levels[row["state"]] if now < expires_at else None
        holder = masked(stored.declaration.id_number, *look.mask)
        expires_in = max(0, int((expires_at - now).total_seconds()))
        if not wants_html:
            facts = {
                "level": level.value if level else "expired",
                "state": row["state"],
                "holder": holder,
                "issued_at": iso_local(issued_at),
                "expires_at": iso_local(expires_at),
                "expires_in": expires_in,
            }
            return web.json_response(facts, headers={"Cache-Control": "no-store"})
        code_id = app[CODES].add(self.code_prefix + token, expires_at, now)
        view = CodeView(level, holder, issued_at, expires_in, code_id)
        text = render(look, SPEC.name, lang, view, path=request.path)
        return web.Response(
            text=text, content_type="text/html", headers={"Cache-Control": "no-store"}
        )

    async def verify(self, request: web.Request) -> web.Response:
        """The hub asks about a token; the answer is signed so the hub can trust it."""
        if request.headers.get(CLIENT_HEADER) != self.client.client_id:
            return error(401, "unknown client")
        body = await request.content.read(MAX_REQUEST_BYTES + 1)
        if len(body) > MAX_REQUEST_BYTES:
            return error(413, "request too large")
        if not signature_matches(
            self.client.secret, body, request.headers.get(SIGNATURE_HEADER, "")
        ):
            return error(401, "bad request signature")
        app, now = request.app, request.app[CLOCK]()
        try:
            question = strictjson.loads(body, max_bytes=MAX_REQUEST_BYTES, max_depth=2)
            token, nonce = question["token"], question["nonce"]
            asked_at = datetime.fromisoformat(question["at"])
        except (CodeRejected, KeyError, TypeError, ValueError):
            return error(400, "malformed request")
        if (
            not isinstance(token, str)
            or not isinstance(nonce, str)
            or set(question) != {"token", "nonce", "at"}
        ):
            return error(400, "malformed request")
        if (
            asked_at.tzinfo is None
            or abs((now - asked_at).total_seconds()) > REQUEST_WINDOW_SECONDS
        ):
            return error(401, "request time outside the window")
        store, signing = app[STORE], app[SECRETS]
        row = store.token(token)
        record = None
        if row is not None:
            stored = store.declaration(row["declaration_id"])
            assert stored is not None
            record = TokenRecord(
                row["state"],
                datetime.fromisoformat(row["issued_at"]),
                datetime.fromisoformat(row["expires_at"]),
                stored.declaration.id_number,
            )
        text = answer(token, nonce, record, signing)
        return web.Response(text=text, content_type=ANSWER_TYPE)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What Zhejiang knows about a token it issued."""

    state: str
    issued_at: datetime
    expires_at: datetime
    id_number: str = field(repr=False)


def answer(token: str, nonce: str, record: TokenRecord | None, signing: Secrets) -> str:
    """Zhejiang's signed answer about ``token`` (a compact JWS, ES256)."""
    body: dict[str, Any] = {"iss": SPEC.issuer, "token": token, "nonce": nonce}
    if record is None:
        body["error"] = UNKNOWN_TOKEN
    else:
        body.update(
            status=record.state,
            issued_at=iso_local(record.issued_at),
            expires_at=iso_local(record.expires_at),
            holder={
                "masked": masked(record.id_number, 3, 4),
                "link": base64url.encode(link(signing.link_key, record.id_number)),
            },
        )
    header = {"alg": "ES256", "kid": signing.kid, "typ": "JWT"}
    return jws.sign(header, strictjson.dumps(body), signing.key)


def build(context: RegionContext) -> Zhejiang:
    return Zhejiang(context.tokens, context.public_url, HubClient.load_or_create(context.state_dir))
