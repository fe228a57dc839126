"""The command line's failures, as a shell user meets them: one line on standard error naming
the problem, exit status 2, nothing on standard output, and never a traceback (issue 12)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.cli.pki import create_development_pki
from tests.integration.cli import huren, huren_bytes, init_state, running


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The single line a failed command printed; it contains every one of ``words``."""
    assert "Traceback" not in result.stderr, result.stderr
    assert (result.returncode, result.stdout) == (2, ""), (result.returncode, result.stderr)
    assert result.stderr.endswith("\n"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    line = result.stderr.rstrip("\n")
    assert line.startswith("huren: "), line
    for word in words:
        assert word in line, (word, line)
    return line


@dataclass(frozen=True)
class Served:
    pki: Path
    state: Path
    gateway: str
    registry: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A TLS gateway on 127.0.0.1 (both ports) with its PKI, and a second, unrelated PKI."""
    root = tmp_path_factory.mktemp("served")
    create_development_pki(root / "pki")
    create_development_pki(root / "other")
    init_state(root / "state")
    serve = ["serve", "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"]
    with running(
        *serve, "--state-dir", str(root / "state"), "--tls-dir", str(root / "pki")
    ) as line:
        match = re.search(r"listening on (\S+) .*registry on (\S+)\)", line)
        assert match, line
        yield Served(root / "pki", root / "state", match[1], match[2])


# ------------------------------------------------------------------ serve


def test_serve_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = "{}:{}".format(*taken.getsockname())
        result = huren(
            *("serve", "--insecure", "--init", "--state-dir", str(tmp_path / "state")),
            *("--listen", address),
        )
    one_line_error(result, f"cannot listen on {address}", "in use")


def test_serve_names_a_missing_or_unusable_tls_file(tmp_path: Path) -> None:
    create_development_pki(tmp_path / "pki")
    serve = ["serve", "--init", "--state-dir", str(tmp_path / "state"), "--listen", "127.0.0.1:0"]
    (tmp_path / "pki" / "gateway.key").unlink()
    missing = huren(*serve, "--tls-dir", str(tmp_path / "pki"))
    one_line_error(missing, "gateway.key: cannot be read", "huren pki init")
    create_development_pki(tmp_path / "other")
    shutil.copy(tmp_path / "other" / "gateway.key", tmp_path / "pki" / "gateway.key")
    mismatched = huren(*serve, "--tls-dir", str(tmp_path / "pki"))
    one_line_error(mismatched, "gateway.key is not the key of the certificate", "gateway.pem")
    (tmp_path / "pki" / "ca.pem").write_text("not a certificate\n")
    garbage = huren(*serve, "--tls-dir", str(tmp_path / "pki"))
    one_line_error(garbage, "ca.pem: no PEM certificate in it")


# ------------------------------------------------------------------ verify's input


@pytest.mark.parametrize(
    ("stdin", "byte"),
    [
        ("测试".encode("gbk"), "0xb2 at offset 0"),  # GBK text
        (b"eyJhbGciOiJFUzI1NiJ9.e30.\xff\n", "0xff at offset 25"),  # one stray byte
    ],
    ids=["gbk", "stray-byte"],
)
def test_verify_refuses_standard_input_that_is_not_utf8(stdin: bytes, byte: str) -> None:
    result = huren_bytes("verify", "--insecure", "--gateway", "127.0.0.1:1", stdin=stdin)
    one_line_error(result, "standard input is not UTF-8 text", byte, "iconv")


def test_verify_refuses_an_argument_that_is_not_utf8() -> None:
    # A byte that is not UTF-8 reaches Python as a lone surrogate; the shell passes it as is.
    result = huren("verify", "--insecure", "--gateway", "127.0.0.1:1", "HC1:\udcb2")
    one_line_error(result, "argument 1 is not UTF-8 text")


def test_recognise_refuses_standard_input_that_is_not_utf8() -> None:
    result = huren_bytes(
        *("recognise", "--insecure", "--gateway", "127.0.0.1:1", "--at", "110000"),
        stdin="测试".encode("gbk"),
    )
    one_line_error(result, "standard input is not UTF-8 text")


# ------------------------------------------------------------------ trust lists


@pytest.fixture(scope="module")
def trust_list(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Path:
    saved = tmp_path_factory.mktemp("trust") / "trust.jws"
    fetched = huren(
        *("operator", "trust-list", "--gateway", served.gateway, "--pki", str(served.pki)),
        *("--out", str(saved)),
    )
    assert fetched.returncode == 0, fetched.stderr
    checked = huren("trustlist", "verify", str(saved), "--key", str(_public_key(served)))
    assert checked.returncode == 0, checked.stderr
    return saved


def _public_key(served: Served) -> Path:
    return served.state / "trustlist-key.jwk"


def test_trustlist_verify_names_a_key_file_of_the_wrong_kind(
    served: Served, trust_list: Path, tmp_path: Path
) -> None:
    certificate = huren("trustlist", "verify", str(trust_list), "--key", str(served.pki / "ca.pem"))
    one_line_error(certificate, "ca.pem holds a certificate, not the trust-list key")
    private = served.state / "trustlist-key.pem"
    secret = huren("trustlist", "verify", str(trust_list), "--key", str(private))
    one_line_error(secret, "trustlist-key.pem is a private key: give the public one")
    (tmp_path / "broken.jwk").write_text('{"kty": "EC", ')
    broken = huren("trustlist", "verify", str(trust_list), "--key", str(tmp_path / "broken.jwk"))
    one_line_error(broken, "broken.jwk: not a JWK")


def test_trustlist_verify_refuses_a_binary_file(served: Served, tmp_path: Path) -> None:
    binary = tmp_path / "trust.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    result = huren("trustlist", "verify", str(binary), "--key", str(_public_key(served)))
    one_line_error(result, "trust.bin is not a trust list: it is not text")


# ------------------------------------------------------------------ TLS, client side


def test_a_bad_tls_file_is_named_before_any_connection(served: Served, tmp_path: Path) -> None:
    (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n")
    ca = ["--gateway", served.gateway, "--ca"]
    one_line_error(huren("verify", *ca, str(tmp_path / "garbage.pem"), "x"), "garbage.pem")
    one_line_error(
        huren("verify", *ca, str(tmp_path / "absent.pem"), "x"), "absent.pem: cannot be read"
    )
    operators = served.pki / "operators"
    mixed = huren(
        *("operator", "list-issuers", "--gateway", served.registry, "--pki", str(served.pki)),
        *("--cert", str(operators / "hub-admin.pem"), "--key", str(operators / "beijing-ops.key")),
    )
    one_line_error(mixed, "beijing-ops.key is not the key of the certificate", "hub-admin.pem")
    expired = _expired_copy(operators / "hub-admin.pem", served.pki, tmp_path)
    old = huren(
        *("operator", "list-issuers", "--gateway", served.registry, "--pki", str(served.pki)),
        *("--cert", str(expired), "--key", str(operators / "hub-admin.key")),
    )
    one_line_error(old, "expired.pem: the certificate expired on")


def _expired_copy(certificate: Path, pki: Path, folder: Path) -> Path:
    """``certificate`` re-issued by the same CA with a validity that ended yesterday."""
    original = x509.load_pem_x509_certificate(certificate.read_bytes())
    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(ca.subject)
        .public_key(original.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now - timedelta(days=1))
    )
    for extension in original.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    path = folder / "expired.pem"
    path.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


def test_a_refused_handshake_says_which_side_and_why(served: Served) -> None:
    other = served.pki.parent / "other"
    wrong_ca = huren("verify", "--gateway", served.gateway, "--pki", str(other), "x")
    one_line_error(wrong_ca, "does not verify with the CA given", "another CA signed it")
    operators = other / "operators"
    stranger = huren(
        *("operator", "list-issuers", "--gateway", served.registry, "--ca"),
        str(served.pki / "ca.pem"),
        *("--cert", str(operators / "hub-admin.pem"), "--key", str(operators / "hub-admin.key")),
    )
    one_line_error(stranger, "does not accept this client certificate", "CA it does not trust")
    no_certificate = huren("verify", "--gateway", served.registry, "--pki", str(served.pki), "x")
    one_line_error(no_certificate, "asks for a client certificate")
    plaintext = huren("verify", "--gateway", served.gateway, "--insecure", "x")
    one_line_error(plaintext, "expects TLS")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        address = "{}:{}".format(*closed.getsockname())
    nobody = huren("verify", "--gateway", address, "--pki", str(served.pki), "x")
    one_line_error(nobody, f"nothing is listening at {address}")
