"""The checkpoint's web edge: an aiohttp app that is a client of the Verifier gRPC service.

It adds no verification logic: every colour it shows is the gateway's decision, received over
gRPC; anything else (the gateway unreachable, a timeout, an unexpected error) is an error, which
the page shows as the GREY "cannot verify" screen, never green.

Routes (docs/web.md, docs/api.md):

- ``GET /checkpoint?at=REGION[&lang=zh|en|pt]``: the page of one destination.
- ``POST /api/verify`` ``{"code", "destination"}`` → the verdict as ``huren verify --json``.
- ``POST /api/recognise`` ``{"codes", "destination"[, "at"]}`` → the decision as
  ``huren recognise --json``.
- ``POST /api/attest`` ``{"codes", "destination"}`` → the hub's answer as ``huren attest
  --json`` (转码: the attestation, or why there is none; docs/transfer.md).
- ``POST /api/decode`` (an image) → ``{"codes": [...]}``, read by zxing-cpp.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, Protocol

from aiohttp import web

from gateway.errors import CallRefused, HurenError
from gateway.model import Verdict, parse_region_code
from gateway.recognise import Decision
from gateway.report import attest_json, decision_json, verdict_json
from gateway.transfer import AttestOutcome
from gateway.web import words
from gateway.web.images import MAX_IMAGE_BYTES, ImageRefused, read_codes
from gateway.web.ratelimit import Rate, RateLimiter

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""No inline script, style or handler; nothing loaded from elsewhere."""

_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class Verifier(Protocol):
    """What the web edge needs of the gateway (an ``AsyncGatewayClient``)."""

    async def verify(self, code: str, destination: str = "") -> Verdict: ...

    async def recognise(
        self, codes: list[str], destination: str, at: datetime | None = None
    ) -> Decision: ...

    async def attest(self, codes: list[str], destination: str) -> AttestOutcome: ...


@dataclass(frozen=True, slots=True)
class WebLimits:
    """The web edge's bounds (docs/web.md names each)."""

    max_json_bytes: int = 64 * 1024
    max_codes: int = 100
    """Codes in one recognise request (the gateway's default batch limit)."""
    max_code_chars: int = 7089
    api_rate: Rate = field(default_factory=lambda: Rate(per_second=10, burst=30))
    """``/api/verify``, ``/api/recognise`` and ``/api/attest`` per client address."""
    decode_rate: Rate = field(default_factory=lambda: Rate(per_second=5, burst=15))
    """``/api/decode`` per client address (a camera sends about three frames a second)."""
    reset_seconds: int = 12
    """The result stays on screen this long, then the page is ready for the next traveller."""


class _Refusal(Exception):
    """An answer with an HTTP error status and the JSON error body."""

    def __init__(
        self, status: int, reason: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.headers = headers or {}


def checkpoint_app(verifier: Verifier, limits: WebLimits | None = None) -> web.Application:
    """The app; ``verifier`` is closed by the caller."""
    limits = limits or WebLimits()
    api_limiter, decode_limiter = RateLimiter(limits.api_rate), RateLimiter(limits.decode_rate)
    app = web.Application(client_max_size=MAX_IMAGE_BYTES + 1024, middlewares=[_headers, _errors])

    def limited(
        limiter: RateLimiter, handler: Callable[[web.Request], Awaitable[dict[str, Any]]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            wait = limiter.take(request.remote or "unknown")
            if wait:
                raise _Refusal(
                    429,
                    "RATE_LIMITED",
                    f"too many requests from this address; try again in {wait:.1f} s",
                    {"Retry-After": str(max(1, round(wait + 0.5)))},
                )
            return _json(await handler(request))

        return run

    async def verify(request: web.Request) -> dict[str, Any]:
        body = await _json_body(request, limits)
        code = _code(body.get("code"), limits)
        destination = _destination(body.get("destination", ""), required=False)
        return verdict_json(await _call(verifier.verify(code, destination)))

    async def recognise(request: web.Request) -> dict[str, Any]:
        body = await _json_body(request, limits)
        checked = _codes(body.get("codes"), limits)
        destination = _destination(body.get("destination"), required=True)
        at = _instant(body.get("at"))
        return decision_json(await _call(verifier.recognise(checked, destination, at)))

    async def attest(request: web.Request) -> dict[str, Any]:
        body = await _json_body(request, limits)
        checked = _codes(body.get("codes"), limits)
        destination = _destination(body.get("destination"), required=True)
        return attest_json(await _call(verifier.attest(checked, destination)))

    async def decode(request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_IMAGE_BYTES:
            raise _Refusal(
                413, "ERR_IMAGE_TOO_LARGE", f"an image may have at most {MAX_IMAGE_BYTES} bytes"
            )
        data = await request.read()
        try:
            return {"codes": read_codes(data)}
        except ImageRefused as e:
            status = 413 if e.reason == "ERR_IMAGE_TOO_LARGE" else 422
            raise _Refusal(status, e.reason, e.message) from None

    async def page(request: web.Request) -> web.Response:
        at = request.query.get("at", "")
        try:
            destination = parse_region_code(at)
        except ValueError:
            return _html(_choose_page(at), status=400 if at else 200)
        lang = words.language(request.query.get("lang"), destination)
        return _html(_checkpoint_page(destination, lang, limits))

    async def root(_: web.Request) -> web.Response:
        raise web.HTTPFound("/checkpoint")

    static = resources.files("gateway.web") / "static"

    def asset(name: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        body = (static / name).read_bytes()

        async def serve(_: web.Request) -> web.Response:
            return web.Response(
                body=body, content_type=content_type, headers={"Cache-Control": "no-cache"}
            )

        return serve

    async def no_icon(_: web.Request) -> web.Response:
        return web.Response(status=204)  # no favicon: nothing for the browser to log as missing

    app.router.add_get("/", root)
    app.router.add_get("/favicon.ico", no_icon)
    app.router.add_get("/checkpoint", page)
    app.router.add_get("/static/checkpoint.js", asset("checkpoint.js", "text/javascript"))
    app.router.add_get("/static/checkpoint.css", asset("checkpoint.css", "text/css"))
    app.router.add_post("/api/verify", limited(api_limiter, verify))
    app.router.add_post("/api/recognise", limited(api_limiter, recognise))
    app.router.add_post("/api/attest", limited(api_limiter, attest))
    app.router.add_post("/api/decode", limited(decode_limiter, decode))
    return app


async def _call(awaitable: Awaitable[Any]) -> Any:
    """A gateway call; its failure is an error answer, never a colour."""
    try:
        return await awaitable
    except CallRefused as e:
        raise _Refusal(400, e.reason.value if e.reason else e.status, str(e)) from None
    except HurenError as e:
        raise _Refusal(503, "UNAVAILABLE", f"the gateway did not answer: {e}") from None


async def _json_body(request: web.Request, limits: WebLimits) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limits.max_json_bytes:
        raise _Refusal(
            413, "ERR_TOO_LARGE", f"a JSON body may have at most {limits.max_json_bytes} bytes"
        )
    data = await request.content.read(limits.max_json_bytes + 1)
    if len(data) > limits.max_json_bytes:
        raise _Refusal(
            413, "ERR_TOO_LARGE", f"a JSON body may have at most {limits.max_json_bytes} bytes"
        )
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _Refusal(400, "ERR_REQUEST", "the body is not JSON (UTF-8)") from None
    if not isinstance(body, dict):
        raise _Refusal(400, "ERR_REQUEST", "the body must be a JSON object")
    return body


def _codes(value: object, limits: WebLimits) -> list[str]:
    if not isinstance(value, list) or not 0 < len(value) <= limits.max_codes:
        raise _Refusal(400, "ERR_REQUEST", f"codes must be a list of 1 to {limits.max_codes}")
    return [_code(c, limits) for c in value]


def _code(value: object, limits: WebLimits) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limits.max_code_chars:
        raise _Refusal(
            400, "ERR_REQUEST", f"a code must be text of 1 to {limits.max_code_chars} characters"
        )
    return value


def _destination(value: object, *, required: bool) -> str:
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str):
        raise _Refusal(400, "ERR_REQUEST", "destination must be a region code such as 310000")
    try:
        return parse_region_code(value)
    except ValueError as e:
        raise _Refusal(400, "ERR_REQUEST", str(e)) from None


def _instant(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if instant.tzinfo is None:
            raise ValueError
    except ValueError:
        raise _Refusal(400, "ERR_REQUEST", "at must be an RFC 3339 time with its offset") from None
    return instant


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", headers={"Cache-Control": "no-store"}
    )


@web.middleware
async def _headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as e:
        e.headers.update(_SECURITY_HEADERS)
        raise
    response.headers.update(_SECURITY_HEADERS)
    return response


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except _Refusal as e:
        return _json(
            {"error": {"reason": e.reason, "message": e.message}},
            e.status,
            e.headers,
        )
    except web.HTTPRequestEntityTooLarge:
        return _json(
            {"error": {"reason": "ERR_TOO_LARGE", "message": "the body is too large"}}, 413
        )
    except web.HTTPException:
        raise
    except Exception as e:  # fail closed: an unexpected error is an error, never a colour
        log.error("web edge: unexpected %s on %s", type(e).__name__, request.path)
        return _json({"error": {"reason": "ERR_INTERNAL", "message": "internal error"}}, 500)


def _choose_page(given: str) -> str:
    note = (
        f'<p class="error" role="alert">{html.escape(given[:16])}: not a region code</p>'
        if given
        else ""
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>扫码核验 Checkpoint</title><link rel="stylesheet" href="/static/checkpoint.css"></head>
<body><main class="choose"><h1>扫码核验 Checkpoint</h1>{note}
<form method="get" action="/checkpoint">
<label for="at">核验地行政区划代码 Region code of this checkpoint</label>
<input id="at" name="at" inputmode="numeric" pattern="[0-9]{{6}}" required placeholder="310000">
<button type="submit">打开 Open</button></form></main></body></html>
"""


def _checkpoint_page(destination: str, lang: str, limits: WebLimits) -> str:
    ui = words.UI[lang]
    e = html.escape
    table = e(json.dumps({**words.reason_table(lang), **dict(ui)}, ensure_ascii=False))
    langs = " ".join(
        f'<a href="/checkpoint?at={destination}&amp;lang={code}"'
        + (' aria-current="true"' if code == lang else "")
        + f">{name}</a>"
        for code, name in (("zh", "中文"), ("en", "English"), ("pt", "Português"))
        if code != "pt" or destination == words.MACAU
    )
    html_lang = {"zh": "zh-CN", "en": "en", "pt": "pt"}[lang]
    return f"""<!doctype html>
<html lang="{html_lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(ui["title"])} {destination}</title>
<link rel="stylesheet" href="/static/checkpoint.css">
<script src="/static/checkpoint.js" defer></script></head>
<body><main id="checkpoint" data-at="{destination}" data-lang="{lang}"
 data-reset="{limits.reset_seconds}" data-words="{table}">
<header><h1>{e(ui["title"])}</h1><p>{e(ui["at"])} <strong>{destination}</strong></p>
<nav aria-label="language">{langs}</nav></header>
<section id="input">
<form id="scan" autocomplete="off">
<label for="code">{e(ui["scan_label"])}</label>
<input id="code" name="code" autofocus spellcheck="false" autocapitalize="off">
<button id="add" type="submit">{e(ui["add"])}</button>
</form>
<p class="hint">{e(ui["scan_hint"])}</p>
<div class="tools">
<button id="camera" type="button">{e(ui["camera"])}</button>
<label class="upload" for="upload">{e(ui["upload"])}</label>
<input id="upload" type="file" accept="image/png,image/jpeg,image/webp,image/gif">
</div>
<video id="video" playsinline muted hidden></video>
<h2>{e(ui["codes"])}</h2>
<ul id="codes"><li class="empty">{e(ui["none_yet"])}</li></ul>
<button id="decide" type="button" disabled>{e(ui["decide"])}</button>
<p id="error" role="alert"></p>
</section>
<section id="result" hidden tabindex="-1">
<div id="panel" class="panel GREY"><span id="icon" aria-hidden="true"></span>
<strong id="word"></strong></div>
<p id="reason"></p>
<dl><dt>{e(ui["identity"])}</dt><dd id="identity"></dd></dl>
<ul id="verdicts"></ul>
<details id="why"><summary>{e(ui["explain"])}</summary><ol id="steps"></ol></details>
<button id="next" type="button">{e(ui["next"])}</button>
</section>
<p id="announce" class="sr-only" aria-live="assertive"></p>
</main></body></html>
"""


async def start(app: web.Application, listen: str) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on ``listen`` (HOST:PORT, port 0 for any); the runner and the page's base
    URL. The caller cleans the runner up.

    Raises:
        OSError: naming the address when it cannot be bound (in use, not this host's).
    """
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host or "127.0.0.1", int(port))
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise OSError(e.errno, f"cannot serve the web pages on {listen}: {e.strerror}") from None
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()  # type: ignore[attr-defined]
    return runner, f"http://{bound[0]}:{bound[1]}"
