"""The traveller's page every region serves (亮码): declare, then show the code as a QR.

Routes added to a region's service (:func:`add_pages`):

- ``GET /`` (``?lang=zh|en``, and ``pt`` on Macau's): the page, in the region's look and words.
- ``GET /static/page.js``, ``/static/page.css``, ``/static/region.css``: the page's script and
  styles (the region's colours are written into ``region.css``).
- ``GET /api/codes/{code_id}.svg`` and ``.png``: the QR of a code a declaration answer named by
  ``code_id`` (the PNG is for printing), until that code expires.

Every response of a region carries a strict Content-Security-Policy (no inline script, nothing
from elsewhere), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``. The
page keeps nothing in the browser: no cookies, no storage; a reload forgets the declaration.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from aiohttp import web

from gateway import qr
from regions.common.look import Look, Panel
from regions.common.outbound import destination_css
from regions.common.service import CLOCK, CODES, OUTBOUND, REGION, REGION_LOOK
from regions.common.spec import CHINA_STANDARD_TIME, Level
from regions.common.words import JS_WORDS, WORDS

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
POLL_SECONDS = 2
"""How often a page showing a pending code asks again."""
SVG_SCALE = 4
PNG_SCALE = 8
"""Pixels per module: 8 px at 300 dpi prints modules of about 0.7 mm."""
_CODE_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_STATIC = {"page.js": "application/javascript", "page.css": "text/css"}


def _static(name: str) -> str:
    return (resources.files("regions.common") / "static" / name).read_text("utf-8")


@dataclass(frozen=True, slots=True)
class CodeView:
    """What the page shows about a code, filled in by the server (Zhejiang's code URL)."""

    level: Level | None
    """None: the code has expired."""
    holder: str
    issued_at: datetime
    expires_in: int
    code_id: str


def render(
    look: Look,
    region: str,
    lang: str,
    view: CodeView | None = None,
    path: str = "/",
    *,
    transfer: bool = False,
) -> str:
    """The page's HTML: the declaration form, or (``view``) one code shown by the server.
    ``path`` is where the language links point (the page's own address); ``transfer``: the
    page offers 转码 (:mod:`regions.common.outbound`)."""
    words = {f"w_{key}": texts.get(lang, texts["en"]) for key, texts in WORDS.items()}
    js_words = " ".join(
        f'data-{key.replace("_", "-")}="{html.escape(WORDS[key].get(lang, WORDS[key]["en"]))}"'
        for key in JS_WORDS
    )
    js_words += "".join(
        f' data-state-{level.value}="{html.escape(look.states[level][lang])}"'
        f' data-shape-{level.value}="{look.panels[level].shape}"'
        f' data-icon-{level.value}="{html.escape(look.panels[level].icon)}"'
        for level in Level
    )
    languages = " ".join(
        f'<a href="{html.escape(path)}?lang={each}" hreflang="{each}" lang="{each}"'
        + (' aria-current="true"' if each == lang else "")
        + f">{html.escape(WORDS['language'][each])}</a>"
        for each in look.languages
    )
    panel, state_word, level_class = _shown(look, lang, view)
    values: dict[str, str] = {key: html.escape(text) for key, text in words.items()}
    values.update(
        html_lang={"zh": "zh-CN", "en": "en", "pt": "pt"}[lang],
        lang=lang,
        region=region,
        name=html.escape(look.name[lang]),
        tagline=html.escape(look.tagline[lang]),
        languages=languages,
        poll=str(POLL_SECONDS),
        view="code" if view else "",
        appeals="1" if look.appeals else "",
        transfer="1" if transfer and not view else "",
        expires_in=str(view.expires_in) if view else "",
        js_words=js_words,
        declare_hidden=" hidden" if view else "",
        code_hidden="" if view else " hidden",
        again_hidden=" hidden" if view else "",
        level=level_class,
        shape=panel.shape,
        icon=html.escape(panel.icon),
        state_word=html.escape(state_word),
        qr_src=f"/api/codes/{view.code_id}.svg" if view and view.level else "",
        qr_hidden="" if view and view.level else " hidden",
        png_href=f"/api/codes/{view.code_id}.png" if view and view.level else "",
        png_hidden="" if view and view.level else " hidden",
        pending_hidden="" if view and view.level is Level.PENDING else " hidden",
        holder=html.escape(view.holder) if view else "",
        issued=_local(view.issued_at) if view else "",
        countdown=_duration(view.expires_in) if view else "",
    )
    return string.Template(_static("page.html")).substitute(values)


def _shown(look: Look, lang: str, view: CodeView | None) -> tuple[Panel, str, str]:
    if view is None:
        return look.panels[Level.PENDING], "", Level.PENDING.value
    if view.level is None:
        expired = WORDS["expired"]
        return _EXPIRED, expired.get(lang, expired["en"]), "expired"
    return look.panels[view.level], look.states[view.level][lang], view.level.value


_EXPIRED = Panel("#5b616b", "#ffffff", "square", "—")


def _local(instant: datetime) -> str:
    return instant.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: int) -> str:
    seconds = max(seconds, 0)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def region_css(look: Look) -> str:
    """The region's colours: the header's accent and one panel per level."""
    rules = [f".brand {{ background: {look.accent}; color: #ffffff; }}"]
    panels: Mapping[str, Panel] = {
        **{level.value: panel for level, panel in look.panels.items()},
        "expired": _EXPIRED,
    }
    for name, panel in panels.items():
        rules.append(
            f".level-{name} {{ background: {panel.background}; color: {panel.text}; }}\n"
            f".level-{name} .icon {{ background: {panel.text}; color: {panel.background}; }}"
        )
    return "\n".join(rules) + "\n"


# ---------------------------------------------------------------------- handlers


async def page(request: web.Request) -> web.Response:
    look = request.app[REGION_LOOK]
    lang = look.language(request.query.get("lang"))
    transfer = request.app[OUTBOUND] is not None
    text = render(look, request.app[REGION].spec.name, lang, transfer=transfer)
    return web.Response(text=text, content_type="text/html", headers=_NO_STORE)


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name == "region.css":
        text, kind = region_css(request.app[REGION_LOOK]), "text/css"
        outbound = request.app[OUTBOUND]
        if outbound is not None:
            text += destination_css(outbound)
    elif name in _STATIC:
        text, kind = _static(name), _STATIC[name]
    else:
        raise web.HTTPNotFound()
    return web.Response(text=text, content_type=kind, headers={"Cache-Control": "max-age=300"})


async def code_image(request: web.Request) -> web.Response:
    """The QR of a code the page showed: SVG for the screen, PNG for printing."""
    code_id, kind = request.match_info["id"], request.match_info["kind"]
    code = (
        request.app[CODES].get(code_id, request.app[CLOCK]())
        if _CODE_ID.fullmatch(code_id)
        else None
    )
    if code is None:
        return web.json_response({"error": "no such code (or it has expired)"}, status=404)
    try:
        symbol = qr.make(code)
    except qr.QrTooLarge as e:
        return web.json_response({"error": str(e)}, status=422)
    if kind == "png":
        return web.Response(
            body=symbol.png(scale=PNG_SCALE), content_type="image/png", headers=_NO_STORE
        )
    return web.Response(
        text=symbol.svg(scale=SVG_SCALE), content_type="image/svg+xml", headers=_NO_STORE
    )


_NO_STORE = {"Cache-Control": "no-store"}


def not_found_page(look: Look, lang: str) -> web.Response:
    """A 404 page in the region's words (an unknown or mistyped code URL)."""
    word = WORDS["unknown_code"]
    text = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(look.name[lang])}</title>"
        '<link rel="stylesheet" href="/static/page.css">'
        '<link rel="stylesheet" href="/static/region.css"></head><body>'
        f'<header class="brand"><h1>{html.escape(look.name[lang])}</h1></header>'
        f"<main><section><h2>{html.escape(word.get(lang, word['en']))}</h2></section></main>"
        "</body></html>"
    )
    return web.Response(status=404, text=text, content_type="text/html", headers=_NO_STORE)


async def _no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def add_pages(app: web.Application) -> None:
    """Serve the traveller's page on ``app`` (a region's service) and secure every response."""
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/favicon.ico", _no_icon)
    app.router.add_get(r"/api/codes/{id}.{kind:svg|png}", code_image)
    app.on_response_prepare.append(_security_headers)
