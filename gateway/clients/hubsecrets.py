"""A verifier replica's second line to its hub: the replica secrets, over mutual TLS.

The replica dials the hub's **registry** port with its own certificate (a pinned replica's,
``spiffe://huren.local/replica/<name>``) and asks ``GetReplicaSecrets`` with the digest of what it
holds; the hub answers the secrets, or that they are unchanged. What the answer is worth is
decided by the replica (:mod:`gateway.replica_secrets`). The answer is bounded by
:data:`~gateway.replica_secrets.MAX_SECRETS_BYTES`.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from gateway import wire
from gateway._generated.huren.v1 import registry_pb2 as pb
from gateway._generated.huren.v1 import registry_pb2_grpc as pb_grpc
from gateway.clients.tls import TlsCredentials
from gateway.errors import CallFailed, NotPermitted
from gateway.replica_secrets import MAX_SECRETS_BYTES, ReplicaSecrets

FETCH_TIMEOUT = 10.0
"""Seconds one ``GetReplicaSecrets`` may take."""


class HubSecrets:
    """``GetReplicaSecrets`` on the hub's registry port ``target``, with mutual TLS.

    ``credentials`` may be a function giving the credentials to use now: a fetch after it gives
    new ones (a rotated replica certificate) connects again with them."""

    def __init__(
        self, target: str, credentials: TlsCredentials | Callable[[], TlsCredentials]
    ) -> None:
        self.target = target
        self._credentials = credentials if callable(credentials) else lambda: credentials
        self._channel, self._used = self._connect()

    def _connect(self) -> tuple[grpc.aio.Channel, TlsCredentials]:
        credentials = self._credentials()
        if credentials.certificate is None or credentials.key is None:
            raise ValueError("the replica secrets need the replica's certificate and key")
        options: list[tuple[str, int | str]] = [
            ("grpc.max_receive_message_length", MAX_SECRETS_BYTES),
            *credentials.options(),
        ]
        self._stub = pb_grpc.RegistryServiceStub(
            channel := grpc.aio.secure_channel(self.target, credentials.channel(), options=options)
        )
        return channel, credentials

    async def fetch(self, known_digest: str) -> tuple[int, ReplicaSecrets | None]:
        """The hub's trust version, and its replica secrets (None if they are those of
        ``known_digest``).

        Raises:
            NotPermitted: the hub refused this certificate (not pinned, unpinned, not a
                replica's): the replica must drop what it holds.
            CallFailed: no answer (the hub is down, the network broke, a timeout).
        """
        if self._credentials() is not self._used:  # new files: a new connection
            old = self._channel
            self._channel, self._used = self._connect()
            await old.close(None)
        try:
            answer = await self._stub.GetReplicaSecrets(
                pb.GetReplicaSecretsRequest(known_digest=known_digest), timeout=FETCH_TIMEOUT
            )
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                raise NotPermitted(f"{code.name}: {error.details()}") from None
            raise CallFailed(code.name, error.details() or "") from None
        return answer.version, wire.replica_secrets_from(answer)

    async def close(self) -> None:
        await self._channel.close(None)
