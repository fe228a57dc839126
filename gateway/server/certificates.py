"""TLS files re-read without a restart: the gateway's certificate, key and operators' CA, and a
replica's own certificate, key and hub CA.

:class:`FollowedFiles` holds what it last read of a set of files: the files are looked at every
``check_seconds`` (their modification time, size and inode) and whenever
:meth:`FollowedFiles.check` is called with ``force`` (``huren serve`` does on SIGHUP). New files
are read and checked exactly as at start (a certificate that matches its key, within its
validity, a CA file with certificates in it); files that do not pass are refused with one logged
line naming the problem and the ones in use stay.

- :class:`ServerCertificates` (the servers): gRPC's dynamic server credentials ask a fetcher at
  each new TLS handshake whether there is a new certificate configuration, answered from what was
  last read. Connections already established keep the certificate they were made with; new ones
  get the new one. Both listeners (verification, and the registry's mutual TLS with the
  operators' CA) follow the same files.
- :class:`HubCertificates` (a replica, as a client of its hub): the hub's CA and, with
  ``--replica-cert``, the replica's certificate and key. The replica's channels to the hub ask
  for :meth:`HubCertificates.credentials` when they connect, so the next connection (a
  ``GetReplicaSecrets`` fetch, a reconnection of the trust-list feed) uses new files, and the
  replica is told (:attr:`HubCertificates.changed`) so that it fetches its secrets again at once.

At start ``huren serve`` reads each file once (:class:`StartReads`, shared by the sets of files it
follows): the hub's CA that is the server's ``ca.pem`` is the same bytes, and what the start
checked is what it serves, even while the files are being replaced. After the start each set
re-reads its own files, as above.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import grpc

from gateway.clients.tls import TlsCredentials, read_tls_file
from gateway.crypto.pki import TlsFile, check_tls_files
from gateway.errors import TlsFilesInvalid
from gateway.lifecycle import TLS_CHECK_SECONDS

if TYPE_CHECKING:
    from gateway.server.app import TlsFiles

log = logging.getLogger(__name__)

Reader = Callable[[Path, str], TlsFile]
"""Reads one TLS file (:func:`~gateway.clients.tls.read_tls_file`: a path and the hint for a
missing one)."""
_FileStamp = tuple[int, int, int] | None
_Stamp = tuple[_FileStamp, ...]


def file_stamp(path: Path) -> _FileStamp:
    """What tells a file changed: its modification time, size and inode (None if missing)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size, status.st_ino


class FileSet(Protocol):
    """Files read and checked together."""

    @property
    def paths(self) -> tuple[Path, ...]: ...

    @property
    def name(self) -> str:
        """What they are, for the log."""
        ...

    def read(self, read: Reader = read_tls_file) -> tuple[bytes, ...]:
        """Their contents, each file read with ``read``, checked.

        Raises:
            TlsFilesInvalid: naming a file that is missing or cannot be used.
        """
        ...


def read_tls_files(
    ca: Path,
    pair: tuple[Path, Path] | None,
    *,
    ca_hint: str = "",
    hint: str = "",
    read: Reader = read_tls_file,
) -> tuple[bytes, ...]:
    """(CA,) or, with a certificate and key ``pair``, (CA, certificate, key): each file read
    once (with ``read``), then checked together (:func:`~gateway.crypto.pki.check_tls_files`,
    now). The one reading of TLS files for the servers' and a replica's (the hints: how to make
    the files).

    Raises:
        TlsFilesInvalid: naming a file that is missing or cannot be used.
    """
    read_ca = read(ca, ca_hint)
    if pair is None:
        check_tls_files(read_ca, None, None, datetime.now(UTC))
        return (read_ca.content,)
    certificate, key = (read(path, hint) for path in pair)
    check_tls_files(read_ca, certificate, key, datetime.now(UTC))
    return read_ca.content, certificate.content, key.content


class StartReads:
    """The TLS files of one start, each read once: the first reading of a path is kept, with
    the file's stamp taken before it, and given again to every set of files that names the
    same path. Only for the start: the sets re-read their files themselves afterwards."""

    def __init__(self, read: Reader = read_tls_file) -> None:
        self._read = read
        self._stamps: dict[Path, _FileStamp] = {}
        self._files: dict[Path, TlsFile] = {}

    def stamp(self, path: Path) -> _FileStamp:
        """``path``'s stamp when the start first looked at it."""
        if path not in self._stamps:
            self._stamps[path] = file_stamp(path)
        return self._stamps[path]

    def read(self, path: Path, hint: str = "") -> TlsFile:
        """``path`` as the start first read it (stamped before, so that a change after the
        reading is seen by the next check).

        Raises:
            TlsFilesInvalid: if it cannot be read or is too large to be one.
        """
        if path not in self._files:
            self.stamp(path)
            self._files[path] = self._read(path, hint)
        return self._files[path]


class FollowedFiles:
    """See the module docstring."""

    def __init__(
        self,
        files: FileSet,
        check_seconds: float = TLS_CHECK_SECONDS,
        *,
        start: StartReads | None = None,
    ) -> None:
        """Read the files now (as ``start`` read them, when given: shared with other sets).

        Raises:
            TlsFilesInvalid: naming a file that is missing or cannot be used.
        """
        start = start or StartReads()
        self.files = files
        self.check_seconds = check_seconds
        self._stamp = tuple(start.stamp(path) for path in files.paths)
        self._material = files.read(start.read)
        self.generation = 0
        """Incremented each time new files are taken."""

    def _stamps(self) -> _Stamp:
        return tuple(file_stamp(path) for path in self.files.paths)

    def check(self, *, force: bool = False) -> bool:
        """Read the files again if they changed (always with ``force``); True if new ones are
        used from now on."""
        stamp = self._stamps()
        if not force and stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            material = self.files.read()
        except TlsFilesInvalid as error:
            log.error("TLS files not taken, the ones in use stay: %s", error)
            return False
        if material == self._material:
            return False
        self._material = material  # before the generation: a fetcher reads them in that order
        self.generation += 1
        self._taken()
        log.warning("%s re-read: new connections use them", self.files.name)
        return True

    def _taken(self) -> None:
        """New files were taken (for subclasses)."""

    async def watch(self) -> None:
        """Look at the files every ``check_seconds`` (never when it is 0)."""
        if self.check_seconds <= 0:
            return
        while True:
            await asyncio.sleep(self.check_seconds)
            self.check()


class ServerCertificates(FollowedFiles):
    """The gateway's TLS files (see the module docstring)."""

    def __init__(
        self,
        tls: TlsFiles,
        check_seconds: float = TLS_CHECK_SECONDS,
        *,
        start: StartReads | None = None,
    ) -> None:
        super().__init__(tls, check_seconds, start=start)
        self.tls = tls

    @property
    def ca(self) -> bytes:
        """The CA certificates (``ca.pem``) in use now."""
        return self._material[0]

    def _configuration(self, mutual: bool) -> grpc.ServerCertificateConfiguration:
        ca, certificate, key = self._material
        return grpc.ssl_server_certificate_configuration(
            [(key, certificate)], root_certificates=ca if mutual else None
        )

    def credentials(self, *, mutual: bool) -> grpc.ServerCredentials:
        """Credentials that follow the files: server-authenticated TLS, or with ``mutual`` a
        client certificate signed by the CA required at the handshake."""
        served = [self.generation]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # Called by gRPC at each new handshake, in its own thread: only read here.
            generation = self.generation
            if served[0] == generation:
                return None
            served[0] = generation
            return self._configuration(mutual)

        return grpc.dynamic_ssl_server_credentials(
            self._configuration(mutual),
            fetch,  # type: ignore[arg-type]  # grpc documents None as "no change"; stubs do not
            require_client_authentication=mutual,
        )


@dataclass(frozen=True, slots=True)
class HubTlsFiles:
    """What a replica dials its hub with: the hub's CA (``--hub-ca``) and, for the replica
    secrets, its own certificate and key (``--replica-cert``, ``--replica-key``)."""

    ca: Path
    certificate: Path | None = None
    key: Path | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.ca, self.certificate, self.key) if p is not None)

    @property
    def name(self) -> str:
        if self.certificate is None:
            return f"the hub's CA {self.ca}"
        return f"the replica certificate {self.certificate}, its key and the hub's CA {self.ca}"

    def read(self, read: Reader = read_tls_file) -> tuple[bytes, ...]:
        """(CA,) or (CA, certificate, key), each file read with ``read``, checked as a server's
        TLS files are.

        Raises:
            TlsFilesInvalid: naming a file that is missing or cannot be used.
        """
        pair = (
            None if self.certificate is None or self.key is None else (self.certificate, self.key)
        )
        return read_tls_files(self.ca, pair, ca_hint="; give the hub's CA with --hub-ca", read=read)


class HubCertificates(FollowedFiles):
    """A replica's TLS files as a client of its hub (see the module docstring)."""

    def __init__(
        self,
        files: HubTlsFiles,
        check_seconds: float = TLS_CHECK_SECONDS,
        *,
        start: StartReads | None = None,
    ) -> None:
        super().__init__(files, check_seconds, start=start)
        self._credentials = self._made()
        self.changed: list[Callable[[], None]] = []
        """Called each time new files are taken."""

    @property
    def mutual(self) -> bool:
        """True with a replica certificate (the replica secrets can be fetched)."""
        return len(self._material) == 3

    def credentials(self) -> TlsCredentials:
        """The credentials a new connection to the hub uses now (the same object until new
        files are taken)."""
        return self._credentials

    def _made(self) -> TlsCredentials:
        material = self._material
        if len(material) == 3:
            return TlsCredentials(material[0], material[1], material[2])
        return TlsCredentials(material[0])

    def _taken(self) -> None:
        self._credentials = self._made()
        for listener in self.changed:
            listener()
