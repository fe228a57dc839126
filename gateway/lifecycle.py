"""Process lifecycle shared by the long-running commands (gateway and regional issuers)."""

from __future__ import annotations

import asyncio
import signal

TLS_CHECK_SECONDS = 30.0
"""How often a server looks whether its TLS files changed, by default (``--tls-check-seconds``,
see gateway.server.certificates)."""


async def until_terminated() -> None:
    """Return when the process receives SIGTERM or SIGINT (the caller then shuts down cleanly)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
