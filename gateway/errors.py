"""The gateway's error tree. Each branch says what the caller can do about it.

- :class:`CodeRejected`: the presented code is not acceptable. Inside the verify pipeline this
  becomes a normal verdict with its reason; it never escapes as a transport error.
- :class:`RequestInvalid`: the request itself is malformed (gRPC ``INVALID_ARGUMENT``); fix it.
- :class:`ConfigurationInvalid`: a profile, key or registry entry is refused; fix the input.
- :class:`StorageUnavailable`: the database is busy or failing; retry later (``UNAVAILABLE``).

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


class RequestInvalid(HurenError):
    """The request is malformed or over a limit (maps to gRPC ``INVALID_ARGUMENT``)."""


class ConfigurationInvalid(HurenError):
    """A profile, key, issuer or setting was refused; ``reason`` and the message say why."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class NotPermitted(HurenError):
    """The caller may not do this (gRPC ``PERMISSION_DENIED``); it was audited."""


class NotAuthenticated(HurenError):
    """The caller did not prove who it is (gRPC ``UNAUTHENTICATED``)."""


class RequestConflict(HurenError):
    """A request id was reused for a different request (gRPC ``ALREADY_EXISTS``)."""


class NotFound(HurenError):
    """The named issuer, key or operator does not exist (gRPC ``NOT_FOUND``)."""


class Abandoned(HurenError):
    """The caller's deadline passed before the change committed; it was rolled back (gRPC
    ``DEADLINE_EXCEEDED``)."""


class StorageUnavailable(HurenError):
    """The registry database cannot be used right now; the operation may be retried."""
