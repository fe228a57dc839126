"""Admitting a key offered for registration: safe, well-formed, and held by whoever offers it.

The key itself is checked by :mod:`gateway.crypto` (RSA size and exponent, even moduli, ROCA,
curves, Ed25519 small-order and non-canonical points, private members in a JWK) and
:mod:`gateway.registry.keyfiles` (formats, key ids). Here: an X.509 certificate must not have
expired, and the offer must carry a **proof of possession**: a signature by the offered key, with
its own algorithm, over ``"huren-pop-v1" NUL issuer_id NUL kid NUL request_id``. Binding the
request id means a proof cannot be replayed into another request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime

from gateway import crypto
from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.model import IssuerId, Reason
from gateway.registry.keyfiles import KeyEntry, read_certificate, read_keys
from gateway.registry.model import IssuerKey

POP_CONTEXT = b"huren-pop-v1"


@dataclass(frozen=True, slots=True)
class KeyOffer:
    kid: str
    key: bytes
    """A JWK (JSON), a PEM public key, or an X.509 certificate (PEM or DER)."""
    proof: bytes = field(repr=False)
    algorithm: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None


def pop_message(issuer: str, kid: str, request_id: str) -> bytes:
    """The bytes a proof of possession signs."""
    return b"\x00".join(
        [POP_CONTEXT, issuer.encode("utf-8"), kid.encode("utf-8"), request_id.encode("utf-8")]
    )


def prove(private: crypto.PrivateKey, issuer: str, kid: str, request_id: str) -> bytes:
    """A proof of possession (for operators' tools)."""
    return private.sign(pop_message(issuer, kid, request_id))


def admit(issuer: IssuerId, offer: KeyOffer, request_id: str, now: datetime) -> IssuerKey:
    """The registrable key for ``offer``.

    Raises:
        ConfigurationInvalid: ``ERR_KEY_WEAK`` / ``ERR_KEY_PRIVATE`` for an unsafe or malformed
            key or an expired certificate, ``ERR_IDENTIFIER`` for a key id mismatch, ``ERR_POP``
            without a valid proof of possession.
    """
    algorithm = crypto.Algorithm.from_name(offer.algorithm) if offer.algorithm else None
    if offer.algorithm and algorithm is None:
        raise ConfigurationInvalid(
            Reason.ERR_KEY_WEAK, f"unknown algorithm {offer.algorithm[:16]!r}"
        )
    entries = read_keys(offer.key, kid=offer.kid, algorithm=algorithm)
    if len(entries) != 1:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "offer exactly one key at a time")
    (entry,) = entries
    if entry.kid != offer.kid:
        raise ConfigurationInvalid(
            Reason.ERR_IDENTIFIER,
            f"the key says kid {entry.kid[:64]!r}, the offer {offer.kid[:64]!r}",
        )
    if entry.not_after is not None and entry.not_after <= now:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "the certificate has expired")
    if not offer.proof:
        raise ConfigurationInvalid(
            Reason.ERR_POP,
            f"no proof of possession for key {offer.kid[:64]!r}: whoever registers a key must "
            "sign with its private key (--signing-key)",
        )
    try:
        proven = entry.public_key.verify(pop_message(issuer, offer.kid, request_id), offer.proof)
    except CodeRejected:
        proven = False
    if not proven:
        raise ConfigurationInvalid(
            Reason.ERR_POP, "the proof of possession does not verify with the offered key"
        )
    key = entry.of(issuer)
    # An explicit window narrows the certificate's, never widens it.
    return replace(
        key,
        not_before=_later(key.not_before, offer.not_before),
        not_after=_earlier(key.not_after, offer.not_after),
    )


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(x for x in (a, b) if x is not None) if a or b else None


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(x for x in (a, b) if x is not None) if a or b else None


def offers_from_file(
    data: bytes,
    signing_keys: list[crypto.PrivateKey],
    *,
    issuer: str,
    request_id: str,
    kid: str | None = None,
    algorithm: crypto.Algorithm | None = None,
) -> list[KeyOffer]:
    """Key offers, each with its proof of possession, for every key in a key file.

    A file holding one key is offered as is (an X.509 certificate keeps its validity); a JWKS is
    split into one JWK per key. Each key is proven with the matching private key among
    ``signing_keys``; a key without one is offered without proof, so that the registry refuses
    it (``ERR_POP``) and audits the attempt like any other: nobody registers a key they do not
    hold.

    Raises:
        ConfigurationInvalid: for unreadable key files.
    """
    entries = read_keys(data, kid=kid, algorithm=algorithm)
    offers = []
    for entry in entries:
        private = next((k for k in signing_keys if k.public_key() == entry.public_key), None)
        if len(entries) == 1:
            material = data
        else:
            material = json.dumps({**entry.public_key.jwk(), "kid": entry.kid}).encode()
        offers.append(
            KeyOffer(
                kid=entry.kid,
                key=material,
                proof=prove(private, issuer, entry.kid, request_id) if private else b"",
                algorithm=entry.public_key.algorithm.value,
            )
        )
    return offers


class SignerCertificate:
    """A signer certificate read once by :func:`read_signer_certificate` (made nowhere else):
    its bytes as given and the key they hold, of no issuer yet. A change importing it binds the
    key to its issuer (:meth:`key_of`) without parsing the certificate again.

    The change imports ``entry`` while its audit names ``der``, so the two are paired by the
    reading alone: the constructor takes the reading's private token, and nothing (not
    ``dataclasses.replace``, not attribute assignment) pairs one certificate's bytes with
    another's key."""

    __slots__ = ("der", "entry")
    der: bytes
    entry: KeyEntry

    def __init__(self, der: bytes, entry: KeyEntry, token: object = None) -> None:
        if token is not _READ_HERE:
            raise TypeError("a SignerCertificate comes from read_signer_certificate only")
        object.__setattr__(self, "der", der)
        object.__setattr__(self, "entry", entry)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a SignerCertificate is read, not changed")

    def key_of(self, issuer: IssuerId) -> IssuerKey:
        return self.entry.of(issuer)


_READ_HERE = object()


def read_signer_certificate(certificate: bytes) -> SignerCertificate:
    """A signer certificate for a trust list of certificates whose private keys nobody here
    holds (EU DCC signer certificates): no proof of possession. Its key id is the
    certificate's; an RSA key is PS256, as EU DCC specifies.

    Raises:
        ConfigurationInvalid: for anything but one admissible X.509 certificate.
    """
    try:
        entry = read_certificate(certificate)
    except ConfigurationInvalid as e:
        if "explicit algorithm" not in str(e):
            raise
        entry = read_certificate(certificate, algorithm=crypto.Algorithm.PS256)
    assert entry.certificate_sha256 is not None
    return SignerCertificate(certificate, entry, _READ_HERE)


def certificate_key(issuer: IssuerId, certificate: bytes | SignerCertificate) -> IssuerKey:
    """A signer certificate (bytes, or as read already) as a key of ``issuer`` (see
    :func:`read_signer_certificate`).

    Raises:
        ConfigurationInvalid: for anything but one admissible X.509 certificate.
    """
    if not isinstance(certificate, SignerCertificate):
        certificate = read_signer_certificate(certificate)
    return certificate.key_of(issuer)


def describe_certificate_key(key: IssuerKey) -> str:
    """A certificate's key in a line: its id, algorithm, what it signs, when it is valid."""
    usage = ", ".join(sorted(key.usage)) if key.usage is not None else "any kind"
    valid = f"{key.not_before:%Y-%m-%d} to {key.not_after:%Y-%m-%d}"
    return f"{key.kid} ({key.public_key.algorithm.value}, signs {usage}, valid {valid})"
