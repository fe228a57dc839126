"""A verifier replica's line to its hub: the signed trust lists the hub publishes, as texts.

The replica keeps one ``WatchTrustList`` stream open: the hub sends its current list at once
and each new one as it publishes it (a change within ``PUBLISH_SECONDS``, a heartbeat every
third of the freshness window). When the stream fails or ends (the hub stopped, the network
broke), the feed asks ``GetTrustList`` once, waits with exponential backoff and full jitter
(from ``first_backoff`` to ``max_backoff`` seconds), and opens the stream again; every
answer on the stream resets the backoff. Credentials given as a function are asked at each
connection: new ones (a rotated hub CA) are used from the next reconnection. What the texts are
worth is not decided here: the replica verifies each (:mod:`gateway.replica`). Every answer is
bounded by the trust list's size limit.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable

import grpc

from gateway import wire
from gateway._generated.huren.v1 import registry_pb2 as pb
from gateway._generated.huren.v1 import registry_pb2_grpc as pb_grpc
from gateway.clients.tls import TlsCredentials
from gateway.trustlist import MAX_TRUST_LIST_MESSAGE_BYTES

log = logging.getLogger(__name__)

POLL_TIMEOUT = 5.0
"""Seconds a ``GetTrustList`` poll may take."""


class HubFeed:
    """Signed trust-list texts from the hub at ``target`` (TLS with ``credentials``)."""

    def __init__(
        self,
        target: str,
        credentials: TlsCredentials | Callable[[], TlsCredentials] | None,
        *,
        first_backoff: float = 0.25,
        max_backoff: float = 5.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.target = target
        self._credentials: Callable[[], TlsCredentials | None] = (
            credentials if callable(credentials) else lambda: credentials
        )
        self._used: TlsCredentials | None = None
        self._first = first_backoff
        self._max = max_backoff
        self._jitter = jitter
        self.connected = False
        """True while the watch stream is open."""

    def _channel(self) -> grpc.aio.Channel:
        options: list[tuple[str, int | str]] = [
            # A list and its envelope; anything larger is refused by gRPC before it is read.
            ("grpc.max_receive_message_length", MAX_TRUST_LIST_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            # gRPC's own reconnection backoff grows to 120 s: a hub back after a long outage
            # would wait that long for its replicas. Bounded like the feed's own.
            ("grpc.initial_reconnect_backoff_ms", int(self._first * 1000)),
            ("grpc.min_reconnect_backoff_ms", int(self._first * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(self._max * 1000)),
        ]
        self._used = credentials = self._credentials()
        if credentials is None:
            return grpc.aio.insecure_channel(self.target, options=options)
        options.extend(credentials.options())
        return grpc.aio.secure_channel(self.target, credentials.channel(), options=options)

    async def lists(self, known_version: Callable[[], int]) -> AsyncIterator[str]:
        """Each trust-list text the hub publishes, forever (cancel the consumer to stop).

        ``known_version`` is asked each time the stream opens: lists older than the version
        the replica holds are not even sent.
        """
        backoff = self._first
        while True:  # a new channel when new credentials were taken (a rotated CA)
            async with self._channel() as channel:
                stub = pb_grpc.RegistryServiceStub(channel)
                while self._credentials() is self._used:
                    try:
                        request = pb.WatchTrustListRequest(known_version=known_version())
                        async for answer in stub.WatchTrustList(request):
                            self.connected = True
                            backoff = self._first
                            yield wire.trust_list_from(answer).jws
                        log.warning("the hub %s ended the trust-list stream", self.target)
                    except grpc.aio.AioRpcError as error:
                        log.warning(
                            "trust-list stream from %s failed: %s", self.target, error.code().name
                        )
                    self.connected = False
                    try:  # the fallback: one poll, then the stream again after the backoff
                        polled = await stub.GetTrustList(
                            pb.GetTrustListRequest(), timeout=POLL_TIMEOUT
                        )
                        yield wire.trust_list_from(polled).jws
                    except grpc.aio.AioRpcError as error:
                        log.warning(
                            "trust-list poll of %s failed: %s", self.target, error.code().name
                        )
                    await asyncio.sleep(backoff * self._jitter())
                    backoff = min(backoff * 2, self._max)
