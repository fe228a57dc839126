"""Certificates for mutual TLS: a development CA, the gateway's server certificate, operators'
client certificates, and reading an operator's identity from a certificate; and self-signed
certificates for code-signing keys (an issuer's signer, an EU DCC style DSC), for development.

An operator's identity is a URI subject alternative name (SPIFFE style):

- ``spiffe://huren.local/region/<GB/T 2260 code>/operator/<name>`` for a regional operator;
- ``spiffe://huren.local/admin/<name>`` for the hub administrator;
- ``spiffe://huren.local/replica/<name>`` for a verifier replica (it may only fetch the secrets
  it verifies with; docs/scaling.md).

A production deployment uses its own PKI: any CA whose certificates carry these URIs works (see
docs/operators.md). The registry also pins each operator's public key (SPKI SHA-256), so removing
an operator takes effect at once, whatever the certificate says.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.errors import TlsFilesInvalid

TRUST_DOMAIN = "spiffe://huren.local/"
NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
_OPERATOR = re.compile(
    r"spiffe://huren\.local/region/([1-8][0-9]{5}|[A-Z]{2})/operator/([a-z0-9._-]{1,64})"
)
_ADMIN = re.compile(r"spiffe://huren\.local/admin/([a-z0-9._-]{1,64})")
_REPLICA = re.compile(r"spiffe://huren\.local/replica/([a-z0-9._-]{1,64})")


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who a client certificate says it is, and the key it holds."""

    name: str
    region: str | None
    """The operator's region, or None for the hub administrator and a replica."""
    spki_sha256: str
    client_auth: bool = True
    """Whether the certificate may authenticate a client (extended key usage ``clientAuth``;
    a certificate without the extension may not)."""
    replica: bool = False
    """A verifier replica's certificate (``spiffe://huren.local/replica/<name>``)."""

    @property
    def admin(self) -> bool:
        return self.region is None and not self.replica

    @property
    def label(self) -> str:
        if self.replica:
            return f"replica:{self.name}"
        return f"admin:{self.name}" if self.admin else f"operator:{self.region}:{self.name}"


def server_name(certificate: TlsFile) -> str:
    """The first name a server certificate carries (a DNS name, else an IP address): what a
    client must ask for to be answered with it.

    Raises:
        TlsFilesInvalid: naming the file if it is not a PEM certificate or names no host.
    """
    try:
        cert = x509.load_pem_x509_certificate(certificate.content)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        raise TlsFilesInvalid(
            f"{certificate.name}: not a PEM certificate with subject alternative names"
        ) from None
    names = [
        *sans.get_values_for_type(x509.DNSName),
        *map(str, sans.get_values_for_type(x509.IPAddress)),
    ]
    if not names:
        raise TlsFilesInvalid(f"{certificate.name}: the certificate names no host")
    return names[0]


def peer_identity(certificate_pem: bytes) -> PeerIdentity:
    """The identity in a (verified) client certificate.

    Raises:
        ValueError: unless the certificate names exactly one huren identity.
    """
    cert = x509.load_pem_x509_certificate(certificate_pem)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as e:
        raise ValueError("certificate has no subject alternative names") from e
    uris = [
        u
        for u in sans.get_values_for_type(x509.UniformResourceIdentifier)
        if u.startswith(TRUST_DOMAIN)
    ]
    if len(uris) != 1:
        raise ValueError("certificate must name exactly one huren identity")
    spki = _spki_sha256(cert)
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        client_auth = ExtendedKeyUsageOID.CLIENT_AUTH in usages
    except x509.ExtensionNotFound:
        client_auth = False
    if m := _OPERATOR.fullmatch(uris[0]):
        return PeerIdentity(m.group(2), m.group(1), spki, client_auth)
    if m := _ADMIN.fullmatch(uris[0]):
        return PeerIdentity(m.group(1), None, spki, client_auth)
    if m := _REPLICA.fullmatch(uris[0]):
        return PeerIdentity(m.group(1), None, spki, client_auth, replica=True)
    raise ValueError("certificate names no valid huren identity")


def _spki_sha256(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def certificate_pin(certificate_pem: bytes) -> str:
    """SHA-256 of the certificate's SubjectPublicKeyInfo, hex (what the registry pins)."""
    return _spki_sha256(x509.load_pem_x509_certificate(certificate_pem))


@dataclass(frozen=True, slots=True)
class Issued:
    certificate_pem: bytes
    key_pem: bytes = field(repr=False)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_ca(common_name: str = "huren development CA", days: int = 1825) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _leaf(
    ca: Issued,
    common_name: str,
    names: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    days: int,
) -> Issued:
    ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_server(ca: Issued, hosts: list[str], days: int = 365) -> Issued:
    """The gateway's server certificate for ``hosts`` (DNS names or IP addresses)."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return _leaf(ca, "huren gateway", names, ExtendedKeyUsageOID.SERVER_AUTH, days)


def issue_operator(ca: Issued, name: str, region: str | None, days: int = 365) -> Issued:
    """A client certificate for an operator of ``region``, or the hub administrator."""
    if not NAME.fullmatch(name):
        raise ValueError("operator names are lower-case letters, digits, '.', '_' or '-'")
    uri = (
        f"{TRUST_DOMAIN}admin/{name}"
        if region is None
        else f"{TRUST_DOMAIN}region/{region}/operator/{name}"
    )
    return _leaf(
        ca, name, [x509.UniformResourceIdentifier(uri)], ExtendedKeyUsageOID.CLIENT_AUTH, days
    )


def issue_replica(ca: Issued, name: str, days: int = 365) -> Issued:
    """A client certificate for verifier replica ``name``."""
    if not NAME.fullmatch(name):
        raise ValueError("replica names are lower-case letters, digits, '.', '_' or '-'")
    uri = f"{TRUST_DOMAIN}replica/{name}"
    return _leaf(
        ca, name, [x509.UniformResourceIdentifier(uri)], ExtendedKeyUsageOID.CLIENT_AUTH, days
    )


def self_signed(
    key: CertificateIssuerPrivateKeyTypes,
    common_name: str,
    *,
    not_before: datetime,
    not_after: datetime,
    extended_key_usage: list[x509.ObjectIdentifier] | None = None,
    country: str | None = None,
) -> x509.Certificate:
    """A self-signed certificate for a code-signing key (EC, RSA or Ed25519), valid in the window
    given, with an extended key usage when one is given (EU DCC key usages). Development and
    tests: an issuer's real certificates come from its own PKI or a national trust list."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if country is not None:
        attributes.insert(0, x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    name = x509.Name(attributes)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if extended_key_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_key_usage), critical=False)
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, digest)


# ---------------------------------------------------------------------- TLS files, checked first


@dataclass(frozen=True, slots=True)
class TlsFile:
    """A TLS file's content and what to call it in a message (the path the user gave)."""

    name: str
    content: bytes


def check_tls_files(
    ca: TlsFile, certificate: TlsFile | None, key: TlsFile | None, now: datetime
) -> None:
    """Check TLS files before gRPC sees them (gRPC's own messages name no file): the CA file
    holds PEM certificates, the certificate is a PEM certificate valid at ``now``, the key an
    unencrypted PEM private key, and the two belong together.

    Raises:
        TlsFilesInvalid: naming the file and what is wrong with it.
    """
    try:
        roots = x509.load_pem_x509_certificates(ca.content)
    except ValueError:
        roots = []
    if not roots:
        raise TlsFilesInvalid(f"{ca.name}: no PEM certificate in it (the CA certificate)")
    if certificate is None or key is None:
        return
    try:
        leaf = x509.load_pem_x509_certificate(certificate.content)
    except ValueError:
        raise TlsFilesInvalid(f"{certificate.name}: not a PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key.content, password=None)
    except TypeError:
        raise TlsFilesInvalid(f"{key.name}: the key is encrypted; give it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsFilesInvalid(f"{key.name}: not a PEM private key") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if private.public_key().public_bytes(der, spki) != leaf.public_key().public_bytes(der, spki):
        raise TlsFilesInvalid(f"{key.name} is not the key of the certificate {certificate.name}")
    if leaf.not_valid_after_utc <= now:
        expired = leaf.not_valid_after_utc.isoformat()
        raise TlsFilesInvalid(f"{certificate.name}: the certificate expired on {expired}")
    if leaf.not_valid_before_utc > now:
        starts = leaf.not_valid_before_utc.isoformat()
        raise TlsFilesInvalid(f"{certificate.name}: the certificate is not valid before {starts}")
