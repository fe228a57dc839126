"""A fault-injecting HTTP proxy for an online issuer's verification API, on loopback.

Modes: ``pass`` (forward to the real issuer), ``refuse`` (close the connection at once), ``hang``
(never answer), ``drip`` (answer one byte every 0.2 s), ``error`` (HTTP 500), ``garbage`` (200
with ASCII junk), ``binary`` (200 with random bytes), ``wrong-type`` (200 text/html), ``huge`` (200 with 1 MiB), ``forged`` (a
well-formed answer signed with a key the hub does not know), ``replay`` (the previous genuine
answer again), ``redirect`` (HTTP ``redirect_status`` with ``Location: redirect_to``).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from gateway.codecs import base64url, jws, strictjson
from gateway.crypto import Algorithm, PrivateKey
from gateway.online import ANSWER_TYPE


@dataclass
class FaultyUpstream:
    upstream: str
    mode: str = "pass"
    last_answer: str | None = None
    calls: int = 0
    url: str = ""
    redirect_to: str = ""
    redirect_status: int = 307
    _runner: web.AppRunner | None = field(default=None, repr=False)
    _rogue: PrivateKey = field(default_factory=lambda: PrivateKey.generate(Algorithm.ES256))

    async def start(self) -> FaultyUpstream:
        app = web.Application()
        app.router.add_post("/api/verify", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/verify"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        body = await request.read()
        if self.mode == "refuse":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "error":
            return web.Response(status=500, text="internal error")
        if self.mode == "redirect":
            return web.Response(status=self.redirect_status, headers={"Location": self.redirect_to})
        if self.mode == "garbage":
            junk = base64url.encode(os.urandom(200)) + "." + base64url.encode(os.urandom(40))
            return web.Response(text=junk, content_type=ANSWER_TYPE)
        if self.mode == "binary":
            return web.Response(body=os.urandom(300), content_type=ANSWER_TYPE)
        if self.mode == "wrong-type":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        if self.mode == "huge":
            return web.Response(body=b"A" * (1 << 20), content_type=ANSWER_TYPE)
        if self.mode == "drip":
            response = web.StreamResponse(headers={"Content-Type": ANSWER_TYPE})
            await response.prepare(request)
            for _ in range(100):
                await response.write(b"e")
                await asyncio.sleep(0.2)
            return response
        if self.mode == "forged":
            question = json.loads(body)
            claims = {"iss": "zhejiang", "token": question["token"], "nonce": question["nonce"]}
            claims |= {"status": "green", "issued_at": "2026-01-01T00:00:00+08:00"}
            text = jws.sign({"alg": "ES256", "kid": "rogue"}, strictjson.dumps(claims), self._rogue)
            return web.Response(text=text, content_type=ANSWER_TYPE)
        if self.mode == "replay" and self.last_answer is not None:
            return web.Response(text=self.last_answer, content_type=ANSWER_TYPE)
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.upstream, data=body, headers=dict(request.headers)) as answer,
        ):
            text = await answer.text()
            if answer.status == 200:
                self.last_answer = text
            return web.Response(status=answer.status, text=text, content_type=answer.content_type)


def random_token() -> str:
    return base64url.encode(os.urandom(16))
