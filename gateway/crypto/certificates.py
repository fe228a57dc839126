"""X.509 signer certificates (EU DCC DSCs): their key, validity and extended key usages, read
BER-tolerantly where national trust lists need it, and the EU DCC key id of a certificate.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from gateway.codecs.algorithms import Algorithm
from gateway.crypto.keys import PublicKey, bind
from gateway.errors import ConfigurationInvalid
from gateway.model import Reason


@dataclass(frozen=True)
class Certificate:
    """The facts the registry needs from an X.509 signer certificate."""

    der: bytes
    public_key: PublicKey
    not_before: datetime
    not_after: datetime
    subject: str
    extended_key_usages: frozenset[str]

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.der).digest()


def certificate_kid(certificate_sha256: bytes) -> str:
    """The EU DCC key id of a signer certificate: the first 8 bytes of its SHA-256, base64."""
    return base64.b64encode(certificate_sha256[:8]).decode("ascii")


def load_certificate(data: bytes, algorithm: Algorithm | None = None) -> Certificate:
    """Load an X.509 certificate (PEM or DER) and admit its public key.

    Raises:
        ConfigurationInvalid: ``ERR_KEY_WEAK`` for an unparseable certificate or inadmissible key.
    """
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ConfigurationInvalid(Reason.ERR_KEY_WEAK, "not a valid X.509 certificate") from e
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usages = frozenset(oid.dotted_string for oid in eku)
    except x509.ExtensionNotFound:
        usages = frozenset()
    except ValueError:
        # Some national signer certificates encode an extension in BER rather than DER (an
        # explicit cA=FALSE, an empty ExtendedKeyUsage); the library then refuses to read any
        # extension. The usages are read directly from the certificate's bytes instead.
        usages = _extended_key_usages(cert.public_bytes(serialization.Encoding.DER))
    return Certificate(
        der=cert.public_bytes(serialization.Encoding.DER),
        public_key=bind(key, algorithm),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject=cert.subject.rfc4514_string(),
        extended_key_usages=usages,
    )


_EKU_OID = bytes.fromhex("551d25")  # 2.5.29.37, id-ce-extKeyUsage


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """One DER/BER element at ``at``: (tag, start of content, end of content).

    Raises:
        ValueError: for a truncated or indefinite-length element.
    """
    tag = data[at]
    length = data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:
            raise ValueError("unsupported length")
        length = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + length > len(data):
        raise ValueError("truncated element")
    return tag, at, at + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out, at = [], start
    while at < end:
        element = _tlv(data, at)
        out.append(element)
        at = element[2]
    return out


def _oid(encoded: bytes) -> str:
    first = encoded[0]
    arcs, value = [min(first // 40, 2), first - 40 * min(first // 40, 2)], 0
    for byte in encoded[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _extended_key_usages(der: bytes) -> frozenset[str]:
    """The extended key usage OIDs of a certificate, read from its bytes (BER-tolerant).

    Raises:
        ConfigurationInvalid: ``ERR_KEY_WEAK`` if the certificate cannot be walked.
    """
    try:
        _, start, end = _tlv(der, 0)  # Certificate
        _, start, end = _tlv(der, start)  # tbsCertificate
        for tag, content, _ in _children(der, start, end):
            if tag != 0xA3:  # [3] extensions
                continue
            _, first, last = _tlv(der, content)
            for _, ext_start, ext_end in _children(der, first, last):
                parts = _children(der, ext_start, ext_end)
                if der[parts[0][1] : parts[0][2]] != _EKU_OID:
                    continue
                _, value_start, _ = parts[-1]  # OCTET STRING extnValue
                _, seq_start, seq_end = _tlv(der, value_start)
                return frozenset(
                    _oid(der[a:b]) for t, a, b in _children(der, seq_start, seq_end) if t == 0x06
                )
        return frozenset()
    except (IndexError, ValueError) as e:
        raise ConfigurationInvalid(
            Reason.ERR_KEY_WEAK, "certificate extensions are malformed"
        ) from e
