"""The HTTP service every simulated region runs (aiohttp).

Travellers:

- ``POST /api/declarations``: a JSON declaration in. ``201 {"id", "state", "code", "expires_at",
  "pending"}``; a declaration that needs a back-end check gets the region's pending code, or
  ``202`` with no code if the region has no pending state.
- ``GET /api/declarations/{id}``: the current code, freshly issued (after the back-end check has
  completed: the final one). The declaration id is the traveller's capability; it is random.
  Both answers also carry what the traveller's page shows: ``level`` (green / yellow / red /
  pending), ``issued_at``, ``expires_in`` (seconds, by the issuer's clock), ``holder`` (the
  masked identity number) and ``code_id``, which names the code for its QR images
  (``GET /api/codes/{code_id}.svg`` and ``.png``, :mod:`regions.common.pages`).
- ``POST /api/appeals`` (``{"declaration_id", "reason"}``) and ``GET /api/appeals/{id}``: dispute
  a colour and follow the appeal, with every step recorded.

Operators (``Authorization: Bearer <token>``, tokens in the state directory):

- ``GET /api/appeals?status=open`` and ``POST /api/appeals/{id}/decision``
  (``{"decision": "accept" | "reject", "reason", "level"}``): an accepted appeal issues a corrected
  code at ``level`` (default green).

Travellers who carry the hub's attestation (转码, regions started with the hub's trust list):
``POST /api/transfers`` (``{"attestation", "id_number", "name"?}``): ``201`` with the region's
own GREEN code, as a declaration's answer, or a refusal with its ``reason``
(:mod:`regions.common.transfers`). Regions started with ``--transfer-peer`` also carry their
own travellers' status elsewhere (:mod:`regions.common.outbound`): ``GET
/api/transfer-destinations``, ``POST /api/attestations`` (``{"code_id", "destination"}``) and
``POST /api/conversions`` (``{"attestation", "destination", "id_number", "name"?}``).

Everyone: ``GET /api/keys`` (JWKS), ``GET /healthz``.

Errors are JSON ``{"error", "field"}``; bodies are bounded; identity numbers are never logged.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.clock import Clock
from gateway.codecs import strictjson
from gateway.errors import CodeRejected
from regions.common import outbound as out
from regions.common.codebook import CodeBook
from regions.common.declarations import MAX_BODY_BYTES, DeclarationInvalid, parse_declaration
from regions.common.identity import masked
from regions.common.look import Look
from regions.common.outbound import Outbound
from regions.common.rules import Rules
from regions.common.spec import (
    CHINA_STANDARD_TIME,
    Holder,
    IssuedCode,
    Level,
    Region,
    Secrets,
)
from regions.common.store import RegionStore, StoredDeclaration
from regions.common.transfers import MAX_ATTESTATION_CHARS, USE_LIMIT, Transfers
from regions.common.transfers import Refusal as TransferRefusal
from regions.common.transfers import check as check_transfer

log = logging.getLogger(__name__)
_dumps = functools.partial(json.dumps, ensure_ascii=False)
MAX_REASON_CHARS = 500


@dataclass(frozen=True, slots=True)
class Operators:
    """Operator bearer tokens, stored as SHA-256 digests; one is created on first start."""

    digests: dict[str, str]  # name -> hex digest

    @classmethod
    def load_or_create(cls, state_dir: Path) -> Operators:
        path = state_dir / "operators.json"
        if not path.exists():
            token = secrets.token_urlsafe(24)
            token_path = state_dir / "operator.token"
            fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
            digest = hashlib.sha256(token.encode()).hexdigest()
            content = json.dumps({"operators": {"duty-officer": digest}})
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(content)
        return cls(dict(json.loads(path.read_text())["operators"]))

    def who(self, header: str | None) -> str | None:
        """The operator a ``Bearer`` header authenticates, or None."""
        if not header or not header.startswith("Bearer "):
            return None
        digest = hashlib.sha256(header[len("Bearer ") :].encode()).hexdigest()
        found = None
        for name, expected in self.digests.items():
            if hmac.compare_digest(digest, expected):
                found = name
        return found


REGION: web.AppKey[Region] = web.AppKey("region")
RULES: web.AppKey[Rules] = web.AppKey("rules")
SECRETS: web.AppKey[Secrets] = web.AppKey("secrets")
STORE: web.AppKey[RegionStore] = web.AppKey("store")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
OPERATORS: web.AppKey[Operators] = web.AppKey("operators")
REGION_LOOK: web.AppKey[Look] = web.AppKey("look")
CODES: web.AppKey[CodeBook] = web.AppKey("codes")
TRANSFERS: web.AppKey[Transfers | None] = web.AppKey("transfers")
OUTBOUND: web.AppKey[Outbound | None] = web.AppKey("outbound")


def error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status, dumps=_dumps)


async def _json_body(request: web.Request) -> tuple[bytes | None, web.Response | None]:
    if request.content_type != "application/json":
        return None, error(415, "send application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return None, error(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        return await request.read(), None
    except web.HTTPRequestEntityTooLarge:
        return None, error(413, f"body larger than {MAX_BODY_BYTES} bytes")


async def _json_object(
    request: web.Request, fields: set[str]
) -> tuple[dict[str, Any] | None, web.Response | None]:
    """A bounded JSON object body with only ``fields``, or the response refusing it."""
    body, refused = await _json_body(request)
    if refused is not None:
        return None, refused
    assert body is not None
    try:
        value = strictjson.loads(body, max_bytes=MAX_BODY_BYTES, max_depth=4)
    except CodeRejected as e:
        return None, error(400, f"body is not acceptable JSON ({e.reason.value})", "body")
    if not isinstance(value, dict):
        return None, error(400, "body must be a JSON object", "body")
    unknown = sorted(set(value) - fields)
    if unknown:
        return None, error(400, "unknown field", unknown[0][:32])
    return value, None


def _issue(app: web.Application, stored: StoredDeclaration, level: Level) -> IssuedCode | None:
    region, secrets_ = app[REGION], app[SECRETS]
    state = region.spec.states.get(level)
    if state is None:
        return None
    decl = stored.declaration
    holder = Holder(decl.id_number, decl.name)
    return region.issue(holder, state, app[CLOCK](), secrets_, stored.id)


def _current(app: web.Application, declaration_id: str) -> dict[str, Any] | None:
    """The declaration's current code: after a due back-end review, the final one."""
    store, rules, now = app[STORE], app[RULES], app[CLOCK]()
    stored = store.declaration(declaration_id)
    if stored is None:
        return None
    if stored.level is Level.PENDING and stored.review_due and now >= stored.review_due:
        final = rules.assess(stored.declaration, now, reviewed=True)
        store.complete_review(stored.id, final)
        stored = store.declaration(declaration_id)
        assert stored is not None
    issued = _issue(app, stored, stored.effective)
    head, tail = app[REGION_LOOK].mask
    return {
        "id": stored.id,
        "pending": stored.effective is Level.PENDING,
        "level": stored.effective.value,
        "state": issued.state if issued else None,
        "code": issued.code if issued else None,
        "code_id": app[CODES].add(issued.code, issued.expires_at, now) if issued else None,
        "issued_at": _local(issued.issued_at) if issued else None,
        "expires_at": _local(issued.expires_at) if issued else None,
        "expires_in": int((issued.expires_at - now).total_seconds()) if issued else None,
        "holder": masked(stored.declaration.id_number, head, tail),
    }


def _local(instant: Any) -> str:
    return str(instant.astimezone(CHINA_STANDARD_TIME).isoformat())


async def declare(request: web.Request) -> web.Response:
    body, refused = await _json_body(request)
    if refused is not None:
        return refused
    assert body is not None
    try:
        declaration = parse_declaration(body)
    except DeclarationInvalid as e:
        return error(400, str(e), e.field)
    app = request.app
    now, rules = app[CLOCK](), app[RULES]
    level = rules.assess(declaration, now)
    due = now + timedelta(seconds=rules.check_seconds) if level is Level.PENDING else None
    declaration_id = secrets.token_urlsafe(16)
    app[STORE].add_declaration(declaration_id, body, level, due, now)
    current = _current(app, declaration_id)
    assert current is not None
    log.info("%s: declaration assessed %s", app[REGION].spec.name, level.value)
    return web.json_response(current, status=201 if current["code"] else 202, dumps=_dumps)


async def current_code(request: web.Request) -> web.Response:
    current = _current(request.app, request.match_info["id"])
    if current is None:
        return error(404, "no such declaration")
    return web.json_response(current, dumps=_dumps)


async def convert(request: web.Request) -> web.Response:
    """``POST /api/transfers`` (转码): see :mod:`regions.common.transfers`."""
    app = request.app
    transfers = app[TRANSFERS]
    if transfers is None:
        return error(404, "this region does not convert attestations (no hub trust list)")
    data, refused = await _json_object(request, {"attestation", "id_number", "name"})
    if data is None:
        assert refused is not None
        return refused
    try:
        text = _text(data, "attestation", MAX_ATTESTATION_CHARS)
        number = _text(data, "id_number", 18)
        name = _text(data, "name", 64) if "name" in data else ""
    except DeclarationInvalid as e:
        return error(400, str(e), e.field)
    region, now = app[REGION], app[CLOCK]()
    checked = check_transfer(transfers, region.spec.code, text, number, now)
    if isinstance(checked, TransferRefusal):
        log.info("%s: attestation refused (%s)", region.spec.name, checked.reason)
        return checked.response()
    uses = app[STORE].use_transfer(checked.ref, USE_LIMIT, now)
    if uses is None:
        refusal = TransferRefusal(
            409, "USE_LIMIT", f"this attestation was already converted {USE_LIMIT} times here"
        )
        return refusal.response()
    state = region.spec.states[Level.GREEN]
    issued = region.issue(
        Holder(number, name), state, now, app[SECRETS], f"transfer-{secrets.token_urlsafe(12)}"
    )
    head, tail = app[REGION_LOOK].mask
    log.info("%s: attestation converted (use %d of %d)", region.spec.name, uses, USE_LIMIT)
    body = {
        "level": Level.GREEN.value,
        "state": issued.state,
        "code": issued.code,
        "code_id": app[CODES].add(issued.code, issued.expires_at, now),
        "issued_at": _local(issued.issued_at),
        "expires_at": _local(issued.expires_at),
        "expires_in": int((issued.expires_at - now).total_seconds()),
        "holder": masked(number, head, tail),
        "attestation": {
            "destination": checked.destination,
            "expires_at": _local(checked.expires_at),
            "uses": uses,
            "uses_left": USE_LIMIT - uses,
        },
    }
    return web.json_response(body, status=201, dumps=_dumps)


def _outbound(request: web.Request) -> Outbound:
    found = request.app[OUTBOUND]
    if found is None:
        raise web.HTTPNotFound(
            text=_dumps({"error": "this region carries no status elsewhere (no transfer peers)"}),
            content_type="application/json",
        )
    return found


async def transfer_destinations(request: web.Request) -> web.Response:
    """``GET /api/transfer-destinations``: where the page offers 转码."""
    return web.json_response(out.destinations_answer(_outbound(request)), dumps=_dumps)


async def ask_attestation(request: web.Request) -> web.Response:
    """``POST /api/attestations``: the hub's attestation of a code this region showed."""
    outbound = _outbound(request)
    data, refused = await _json_object(request, {"code_id", "destination"})
    if data is None:
        assert refused is not None
        return refused
    try:
        code_id = _text(data, "code_id", 64)
        destination = _text(data, "destination", 6)
    except DeclarationInvalid as e:
        return error(400, str(e), e.field)
    app, now = request.app, request.app[CLOCK]()
    code = app[CODES].get(code_id, now)
    if code is None:
        return error(404, "no such code (or it has expired)", "code_id")
    answer = await out.attest(outbound, code, destination)
    if isinstance(answer, web.Response):
        return answer
    colour = answer.decision.colour
    decision = {
        "colour": colour.value if colour else "GREY",
        "reason": answer.decision.reason.value,
    }
    if answer.attestation is None or answer.expires_at is None:
        assert answer.refused is not None
        log.info(
            "%s: the hub gave no attestation (%s)",
            app[REGION].spec.name,
            answer.refused.refusal.value,
        )
        return out.refusal(
            422, answer.refused.refusal.value, answer.refused.detail, decision=decision
        )
    body = {
        "attestation": answer.attestation,
        "attestation_id": app[CODES].add(answer.attestation, answer.expires_at, now),
        "destination": destination,
        "expires_at": _local(answer.expires_at),
        "expires_in": int((answer.expires_at - now).total_seconds()),
        "expiry_bound": answer.bound,
        "decision": decision,
    }
    return web.json_response(body, status=201, dumps=_dumps)


async def relay_conversion(request: web.Request) -> web.Response:
    """``POST /api/conversions``: the destination's issuer converts the attestation."""
    outbound = _outbound(request)
    fields = {"attestation", "destination", "id_number", "name"}
    data, refused = await _json_object(request, fields)
    if data is None:
        assert refused is not None
        return refused
    try:
        relayed = {
            "attestation": _text(data, "attestation", MAX_ATTESTATION_CHARS),
            "id_number": _text(data, "id_number", 18),
        }
        if "name" in data:
            relayed["name"] = _text(data, "name", 64)
        destination = _text(data, "destination", 6)
    except DeclarationInvalid as e:
        return error(400, str(e), e.field)
    app, now = request.app, request.app[CLOCK]()
    converted = await out.convert(outbound, destination, relayed, now)
    if isinstance(converted, web.Response):
        return converted
    body = {
        **converted.answer,
        "code_id": app[CODES].add(converted.code, converted.expires_at, now),
    }
    return web.json_response(body, status=201, dumps=_dumps)


async def keys(request: web.Request) -> web.Response:
    secrets_ = request.app[SECRETS]
    public = secrets_.key.public_key()
    jwk = {**public.jwk(), "kid": secrets_.kid, "alg": public.algorithm.value, "use": "sig"}
    return web.json_response({"keys": [jwk]}, headers={"Cache-Control": "max-age=300"})


async def healthz(request: web.Request) -> web.Response:
    spec = request.app[REGION].spec
    return web.json_response({"status": "ok", "region": spec.name, "code": spec.code})


async def file_appeal(request: web.Request) -> web.Response:
    data, refused = await _json_object(request, {"declaration_id", "reason"})
    if data is None:
        assert refused is not None
        return refused
    try:
        declaration_id = _text(data, "declaration_id", 64)
        reason = _text(data, "reason", MAX_REASON_CHARS)
    except DeclarationInvalid as e:
        return error(400, str(e), e.field)
    store = request.app[STORE]
    if store.declaration(declaration_id) is None:
        return error(404, "no such declaration", "declaration_id")
    appeal_id = secrets.token_urlsafe(12)
    store.add_appeal(appeal_id, declaration_id, reason, request.app[CLOCK]())
    return web.json_response({"appeal_id": appeal_id, "status": "open"}, status=201)


async def appeal_status(request: web.Request) -> web.Response:
    appeal = request.app[STORE].appeal(request.match_info["id"])
    if appeal is None:
        return error(404, "no such appeal")
    return web.json_response(_appeal_view(appeal), dumps=_dumps)


def _appeal_view(appeal: dict[str, Any]) -> dict[str, Any]:
    view = {
        k: appeal[k]
        for k in (
            "id",
            "declaration_id",
            "status",
            "reason",
            "decision_reason",
            "filed_at",
            "decided_at",
            "decided_by",
        )
    }
    if appeal.get("corrected_code"):
        view["corrected"] = {
            "code": appeal["corrected_code"],
            "state": appeal["corrected_state"],
            "expires_at": appeal["corrected_expires_at"],
        }
    if "events" in appeal:
        view["events"] = appeal["events"]
    return view


def _operator(request: web.Request) -> str | None:
    return request.app[OPERATORS].who(request.headers.get("Authorization"))


async def list_appeals(request: web.Request) -> web.Response:
    if _operator(request) is None:
        return error(401, "operator token required")
    status = request.query.get("status")
    if status not in (None, "open", "accepted", "rejected"):
        return error(400, "status must be open, accepted or rejected", "status")
    appeals = [_appeal_view(a) for a in request.app[STORE].appeals(status)]
    return web.json_response({"appeals": appeals}, dumps=_dumps)


async def decide_appeal(request: web.Request) -> web.Response:
    operator = _operator(request)
    if operator is None:
        return error(401, "operator token required")
    data, refused = await _json_object(request, {"decision", "reason", "level"})
    if data is None:
        assert refused is not None
        return refused
    try:
        decision = _text(data, "decision", 8)
        reason = _text(data, "reason", MAX_REASON_CHARS)
        if decision not in ("accept", "reject"):
            raise DeclarationInvalid("decision", "decision must be accept or reject")
        level = Level(data.get("level", "green"))
        if level is Level.PENDING:
            raise ValueError("pending")
    except DeclarationInvalid as e:
        return error(400, str(e), e.field)
    except ValueError:
        return error(400, "level must be green, yellow or red", "level")
    app, appeal_id = request.app, request.match_info["id"]
    store = app[STORE]
    appeal = store.appeal(appeal_id)
    if appeal is None:
        return error(404, "no such appeal")
    corrected = None
    if decision == "accept":
        stored = store.declaration(appeal["declaration_id"])
        assert stored is not None
        issued = _issue(app, stored, level)
        assert issued is not None
        corrected = (level, issued.code, issued.state, issued.expires_at)
    if not store.decide(
        appeal_id,
        accepted=decision == "accept",
        reason=reason,
        operator=operator,
        now=app[CLOCK](),
        corrected=corrected,
    ):
        return error(409, "the appeal is already decided")
    decided = store.appeal(appeal_id)
    assert decided is not None
    return web.json_response(_appeal_view(decided), dumps=_dumps)


def _text(data: dict[str, Any], key: str, max_len: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= max_len or not value.isprintable():
        raise DeclarationInvalid(key, f"required text of at most {max_len} characters")
    return value


def make_app(
    region: Region,
    rules: Rules,
    secrets_: Secrets,
    store: RegionStore,
    clock: Clock,
    operators: Operators,
    look: Look,
    transfers: Transfers | None = None,
    outbound: Outbound | None = None,
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[REGION_LOOK], app[CODES] = look, CodeBook()
    app[REGION], app[RULES], app[SECRETS] = region, rules, secrets_
    app[STORE], app[CLOCK], app[OPERATORS] = store, clock, operators
    app[TRANSFERS], app[OUTBOUND] = transfers, outbound
    app.router.add_post("/api/transfers", convert)
    app.router.add_get("/api/transfer-destinations", transfer_destinations)
    app.router.add_post("/api/attestations", ask_attestation)
    app.router.add_post("/api/conversions", relay_conversion)
    app.router.add_post("/api/declarations", declare)
    app.router.add_get("/api/declarations/{id}", current_code)
    app.router.add_post("/api/appeals", file_appeal)
    app.router.add_get("/api/appeals", list_appeals)
    app.router.add_get("/api/appeals/{id}", appeal_status)
    app.router.add_post("/api/appeals/{id}/decision", decide_appeal)
    app.router.add_get("/api/keys", keys)
    app.router.add_get("/healthz", healthz)
    app.router.add_routes(region.routes())
    app.on_cleanup.append(_close_store)
    if transfers is not None:
        app.on_startup.append(_follow_hub)
        app.on_cleanup.insert(0, _stop_following)
    if outbound is not None:
        app.on_startup.append(_connect_hub)
        app.on_cleanup.insert(0, _disconnect_hub)
    return app


async def _connect_hub(app: web.Application) -> None:
    outbound = app[OUTBOUND]
    if outbound is not None:
        outbound.start()


async def _disconnect_hub(app: web.Application) -> None:
    outbound = app[OUTBOUND]
    if outbound is not None:
        await outbound.stop()


async def _follow_hub(app: web.Application) -> None:
    transfers = app[TRANSFERS]
    if transfers is not None:
        transfers.trust.start()


async def _stop_following(app: web.Application) -> None:
    transfers = app[TRANSFERS]
    if transfers is not None:
        await transfers.trust.stop()


async def _close_store(app: web.Application) -> None:
    app[STORE].close()
