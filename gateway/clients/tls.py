"""What a client needs for TLS to a gateway, and where ``huren pki init`` puts it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import grpc


def operator_files(directory: Path, name: str) -> tuple[Path, Path]:
    """Operator ``name``'s certificate and private key in a ``huren pki init`` folder (names
    may hold dots, so these are not suffix replacements)."""
    folder = directory / "operators"
    return folder / f"{name}.pem", folder / f"{name}.key"


@dataclass(frozen=True, slots=True)
class TlsCredentials:
    """What a client needs for TLS: the CA it trusts and, for mutual TLS, its certificate."""

    ca: bytes
    certificate: bytes | None = None
    key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_pki(cls, directory: Path, name: str | None = None) -> TlsCredentials:
        """The CA of ``huren pki init DIR``, and operator ``name``'s certificate and key."""
        ca = (directory / "ca.pem").read_bytes()
        if name is None:
            return cls(ca)
        certificate, key = operator_files(directory, name)
        return cls(ca, certificate.read_bytes(), key.read_bytes())

    def channel(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.certificate
        )


class ChannelClient:
    """A synchronous client's channel to ``target``: TLS with ``credentials``, plaintext
    without; closed when the client is (use it as a context manager)."""

    def __init__(self, target: str, credentials: TlsCredentials | None) -> None:
        if credentials is None:
            self._channel = grpc.insecure_channel(target)
        else:
            self._channel = grpc.secure_channel(target, credentials.channel())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()
