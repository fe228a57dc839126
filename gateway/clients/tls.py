"""What a client needs for TLS to a gateway, and where ``huren pki init`` puts it."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import grpc

from gateway.clients.calls import Connection, calls
from gateway.crypto.pki import TlsFile
from gateway.errors import TlsFilesInvalid

MAX_TLS_FILE_BYTES = 1 << 20
"""A CA bundle, certificate or key file is read up to this size (1 MiB)."""


def read_tls_file(path: Path, hint: str = "") -> TlsFile:
    """A TLS file's content, named by the path the user gave.

    Raises:
        TlsFilesInvalid: if it cannot be read or is too large to be one; ``hint`` (how to make
            the file) is added to the message.
    """
    try:
        with path.open("rb") as f:
            content = f.read(MAX_TLS_FILE_BYTES + 1)
    except OSError as e:
        raise TlsFilesInvalid(f"{path}: cannot be read ({e.strerror}){hint}") from e
    if len(content) > MAX_TLS_FILE_BYTES:
        raise TlsFilesInvalid(f"{path}: over {MAX_TLS_FILE_BYTES} bytes: not a TLS file")
    return TlsFile(str(path), content)


def operator_files(directory: Path, name: str) -> tuple[Path, Path]:
    """Operator ``name``'s certificate and private key in a ``huren pki init`` folder (names
    may hold dots, so these are not suffix replacements)."""
    folder = directory / "operators"
    return folder / f"{name}.pem", folder / f"{name}.key"


def replica_files(directory: Path, name: str) -> tuple[Path, Path]:
    """Replica ``name``'s certificate and private key in a ``huren pki init`` folder."""
    folder = directory / "replicas"
    return folder / f"{name}.pem", folder / f"{name}.key"


@dataclass(frozen=True, slots=True)
class TlsCredentials:
    """What a client needs for TLS: the CA it trusts and, for mutual TLS, its certificate."""

    ca: bytes
    certificate: bytes | None = None
    key: bytes | None = field(default=None, repr=False)
    server_name: str | None = None
    """The name the server's certificate must carry, when it is not the host dialled (a
    gateway reached as 127.0.0.1 inside its container, whose certificate names its public
    host)."""

    def options(self) -> list[tuple[str, int | str]]:
        """The channel options these credentials need."""
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]

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

    def __init__(
        self,
        target: str,
        credentials: TlsCredentials | None,
        options: tuple[tuple[str, int | str], ...] = (),
    ) -> None:
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=list(options))
            mode = "plaintext"
        else:
            self._channel = grpc.secure_channel(
                target, credentials.channel(), options=[*options, *credentials.options()]
            )
            mode = "tls" if credentials.certificate is None else "mutual"
        self.connection = Connection(target, mode)

    def calls(self) -> AbstractContextManager[None]:
        """Calls in this block raise the project's errors (see :func:`calls`)."""
        return calls(self.connection)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()
