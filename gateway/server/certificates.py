"""The gateway's TLS certificate, key and operators' CA, re-read without a restart.

gRPC's dynamic server credentials ask a fetcher at each new TLS handshake whether there is a new
certificate configuration. :class:`ServerCertificates` answers from what it last read: the files
are looked at every ``check_seconds`` (their modification time, size and inode) and whenever
:meth:`ServerCertificates.check` is called with ``force`` (``huren serve`` does on SIGHUP). New
files are read and checked exactly as at start (a certificate that matches its key, within its
validity); files that do not pass are refused with one logged line naming the problem and the
ones in use stay. Connections already established keep the certificate they were made with;
new ones get the new one. Both listeners (verification, and the registry's mutual TLS with the
operators' CA) follow the same files.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from gateway.errors import TlsFilesInvalid
from gateway.lifecycle import TLS_CHECK_SECONDS

if TYPE_CHECKING:
    from gateway.server.app import TlsFiles

log = logging.getLogger(__name__)

_Stamp = tuple[tuple[int, int, int] | None, ...]


class ServerCertificates:
    """See the module docstring."""

    def __init__(self, tls: TlsFiles, check_seconds: float = TLS_CHECK_SECONDS) -> None:
        """Read the files now.

        Raises:
            TlsFilesInvalid: naming a file that is missing or cannot be used.
        """
        self.tls = tls
        self.check_seconds = check_seconds
        self._stamp = self._stamps()
        self._material = tls.read()
        self.generation = 0
        """Incremented each time new files are served."""

    def _stamps(self) -> _Stamp:
        stamps: list[tuple[int, int, int] | None] = []
        for path in (self.tls.ca, self.tls.certificate, self.tls.key):
            try:
                status = os.stat(path)
            except OSError:
                stamps.append(None)
                continue
            stamps.append((status.st_mtime_ns, status.st_size, status.st_ino))
        return tuple(stamps)

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

    def check(self, *, force: bool = False) -> bool:
        """Read the files again if they changed (always with ``force``); True if new ones are
        served from now on."""
        stamp = self._stamps()
        if not force and stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            material = self.tls.read()
        except TlsFilesInvalid as error:
            log.error("TLS files not taken, the ones in use stay: %s", error)
            return False
        if material == self._material:
            return False
        self._material = material  # before the generation: a fetcher reads them in that order
        self.generation += 1
        log.warning(
            "TLS certificate and key re-read from %s: new connections use them",
            Path(self.tls.directory),
        )
        return True

    async def watch(self) -> None:
        """Look at the files every ``check_seconds`` (never when it is 0)."""
        if self.check_seconds <= 0:
            return
        while True:
            await asyncio.sleep(self.check_seconds)
            self.check()
