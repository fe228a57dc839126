"""The gateway's error tree. Each branch says what the caller can do about it.

- :class:`CodeRejected`: the presented code is not acceptable. Inside the verify pipeline this
  becomes a normal verdict with its reason; it never escapes as a transport error.
- :class:`Refused`: the request was refused as it stands; the caller can fix it (or, for
  :class:`NotPermitted`, ask someone who may). Each subclass maps to one gRPC status code.
- :class:`Unavailable`: the caller did nothing wrong and cannot fix it: retry later (a busy
  database, a rate limit, a deadline) or wait for an administrator (a damaged registry).

Third-party exceptions are wrapped at the seam with ``raise ... from e``.
"""

from __future__ import annotations

from gateway.model import Reason


class HurenError(Exception):
    """Base of every error the gateway raises on purpose."""


class CodeRejected(HurenError):
    """A code failed a check; ``reason`` is the stable reason code, ``detail`` a sentence.

    ``detail`` must never contain the raw code or an identity number.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        if reason is Reason.OK:
            raise ValueError("CodeRejected needs a failure reason")
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------- refused: fix the request


class Refused(HurenError):
    """The request was refused as it stands; nothing changed."""


class RequestInvalid(Refused):
    """The request is malformed or over a limit (gRPC ``INVALID_ARGUMENT``)."""


class ConfigurationInvalid(Refused):
    """A profile, key, issuer or setting was refused; ``reason`` and the message say why."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CertificateRefused(ConfigurationInvalid):
    """One certificate of a change importing several was refused (and with it the change);
    ``position`` is its place in the change, from 0."""

    def __init__(self, reason: Reason, message: str, position: int) -> None:
        super().__init__(reason, message)
        self.position = position


class TlsFilesInvalid(Refused):
    """A TLS file (CA, certificate or key) cannot be used; the message names it and says why."""


class NotPermitted(Refused):
    """The caller may not do this (gRPC ``PERMISSION_DENIED``); it was audited."""


class NotAuthenticated(Refused):
    """The caller did not prove who it is (gRPC ``UNAUTHENTICATED``)."""


class RequestConflict(Refused):
    """A request id was reused for a different request (gRPC ``ALREADY_EXISTS``)."""


class NotFound(Refused):
    """The named issuer, key or operator does not exist (gRPC ``NOT_FOUND``)."""


# ---------------------------------------------------------------------- unavailable: not yours


class Unavailable(HurenError):
    """The request could not be served now; the caller did nothing wrong."""


class StorageUnavailable(Unavailable):
    """The registry database cannot be used right now; the operation may be retried."""


class RegistryDamaged(Unavailable):
    """The registry cannot show that it is the one its operators built (a damaged file, a broken
    audit chain, state changed outside the registry, an older copy): nothing is changed or
    served from it until an administrator restores it. The message says what was found."""


class Overloaded(Unavailable):
    """A rate limit or capacity bound was reached (gRPC ``RESOURCE_EXHAUSTED``); retry later."""


class Abandoned(Unavailable):
    """The caller's deadline passed before the change committed; it was rolled back (gRPC
    ``DEADLINE_EXCEEDED``)."""


# ---------------------------------------------------------------------- a gateway's answer


class CallRefused(Refused):
    """A gateway refused a call (clients): its status code name, its message, and the reason
    code it sent, if any."""

    def __init__(self, status: str, message: str, reason: Reason | None = None) -> None:
        super().__init__(f"gateway call failed: {status}: {message}")
        self.status = status
        self.reason = reason


class CallFailed(Unavailable):
    """A call to a gateway could not be answered (clients): unreachable, overloaded, timed out,
    or the gateway could not serve it; its status code name and message."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"gateway call failed: {status}: {message}")
        self.status = status
