"""The HTTP service every simulated region runs (aiohttp).

- ``POST /api/declarations``: a JSON declaration in, ``201 {"code", "state", "expires_at"}`` out;
  ``400 {"error", "field"}`` for a refused declaration, ``413`` over the body limit, ``415``
  without a JSON content type.
- ``GET /api/keys``: the region's public keys as a JWKS.
- ``GET /healthz``: liveness.

Identity numbers are never logged.
"""

from __future__ import annotations

import functools
import json
import logging

from aiohttp import web

from gateway.clock import Clock
from regions.common.declarations import MAX_BODY_BYTES, DeclarationInvalid, parse_declaration
from regions.common.keys import SigningKey
from regions.common.spec import CHINA_STANDARD_TIME, Region

log = logging.getLogger(__name__)
_dumps = functools.partial(json.dumps, ensure_ascii=False)

REGION_KEY: web.AppKey[Region] = web.AppKey("region")
SIGNING_KEY: web.AppKey[SigningKey] = web.AppKey("signing_key")
CLOCK_KEY: web.AppKey[Clock] = web.AppKey("clock")


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


async def declare(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        return _error(415, "send the declaration as application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _error(413, f"declaration larger than {MAX_BODY_BYTES} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"declaration larger than {MAX_BODY_BYTES} bytes")
    try:
        declaration = parse_declaration(body)
    except DeclarationInvalid as e:
        return _error(400, str(e), e.field)
    region = request.app[REGION_KEY]
    signing = request.app[SIGNING_KEY]
    now = request.app[CLOCK_KEY]()
    state = region.assess(declaration, now)
    issued = region.issue(declaration, state, now, signing.key, signing.kid)
    log.info("%s issued a %s code", region.spec.name, state)
    return web.json_response(
        {
            "code": issued.code,
            "state": issued.state,
            "expires_at": issued.expires_at.astimezone(CHINA_STANDARD_TIME).isoformat(),
        },
        status=201,
        dumps=_dumps,
    )


async def keys(request: web.Request) -> web.Response:
    jwks = {"keys": [request.app[SIGNING_KEY].jwk()]}
    return web.json_response(jwks, headers={"Cache-Control": "max-age=300"})


async def healthz(request: web.Request) -> web.Response:
    spec = request.app[REGION_KEY].spec
    return web.json_response({"status": "ok", "region": spec.name, "code": spec.code})


def make_app(region: Region, signing: SigningKey, clock: Clock) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[REGION_KEY] = region
    app[SIGNING_KEY] = signing
    app[CLOCK_KEY] = clock
    app.router.add_post("/api/declarations", declare)
    app.router.add_get("/api/keys", keys)
    app.router.add_get("/healthz", healthz)
    return app
