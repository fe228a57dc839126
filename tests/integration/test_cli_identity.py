"""``huren identity check`` run as a user runs it: it predicts, from the linking material, exactly
what the issuer vectors (docs/issuer-vectors.json) and so the gateway derive, never shows the
number, and refuses bad input in one line with exit status 2."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, resident_id
from tests.integration.cli import huren

DATA: dict[str, Any] = json.loads((REPO / "docs" / "issuer-vectors.json").read_text("utf-8"))
PERSON = DATA["person"]
NUMBER = PERSON["number"]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """The vectors' linking key, subject secret and pseudonym key, as hex files."""
    secrets = DATA["secrets"]
    files = {}
    for name, value in (
        ("link", "link_key_hex"),
        ("subject", "subject_secret_hex"),
        ("pseudonym", "pseudonym_key_hex"),
    ):
        files[name] = tmp_path / f"{name}.key"
        files[name].write_text(secrets[value] + "\n")
    return files


def _check(keys: dict[str, Path], *extra: str, number: str = NUMBER, stdin: str | None = None):
    return huren(
        *("identity", "check", "--number", number, "--link-key", str(keys["link"])),
        *extra,
        stdin=stdin,
    )


def _never_shows(result: Any, number: str = NUMBER) -> None:
    for text in (result.stdout, result.stderr):
        assert number not in text
        assert number[6:14] not in text  # not even the date of birth


def test_it_predicts_what_the_vectors_and_the_gateway_derive(keys):
    result = _check(
        keys,
        *("--subject-key", str(keys["subject"])),
        *("--pseudonym-key", str(keys["pseudonym"]), "--issuer", "vec-cose"),
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "number     a valid resident identity number (GB 11643); not shown",
        f"masked     {PERSON['masked_identity']}",
        f"link hash  {PERSON['link_hash']}  (base64url; hex {PERSON['link_hash_hex']})",
        f"subject    {PERSON['subject']}",
        f"pseudonym  {_b64url(PERSON['pseudonyms_hex']['vec-cose'])}  (base64url; AES-SIV for "
        "issuer vec-cose)",
    ]
    _never_shows(result)
    # The subject reference is the one every valid vector about this person carries.
    linked = [v for v in DATA["vectors"] if v["expected"]["subject"] == PERSON["subject"]]
    assert len(linked) >= 7


def _b64url(hex_text: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hex_text)).rstrip(b"=").decode()


def test_json_and_a_number_from_stdin(keys):
    """``--number -`` keeps the number out of the process list; the pseudonym is bound to the
    issuer id, so another issuer gets other bytes."""
    result = _check(
        keys,
        *("--pseudonym-key", str(keys["pseudonym"]), "--issuer", "vec-jws-pseudonym", "--json"),
        number="-",
        stdin=NUMBER + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "masked_identity": PERSON["masked_identity"],
        "link_hash": PERSON["link_hash"],
        "link_hash_hex": PERSON["link_hash_hex"],
        "subject": None,
        "pseudonym": _b64url(PERSON["pseudonyms_hex"]["vec-jws-pseudonym"]),
        "pseudonym_issuer": "vec-jws-pseudonym",
    }
    _never_shows(result)


def test_without_the_subject_key_it_says_what_is_missing(keys):
    result = _check(keys)
    assert result.returncode == 0, result.stderr
    assert "subject    (needs --subject-key: the gateway's subject.key)" in result.stdout
    assert "pseudonym" not in result.stdout


MALFORMED = [
    (NUMBER[:17] + ("0" if NUMBER[17] != "0" else "1"), "its check character"),
    (NUMBER[:17] + "x", "17 digits, then a digit or an upper-case X"),
    (NUMBER[:10], "must be 18 characters"),
    (resident_id(district="990106"), "not a province code"),
    (resident_id(born="19900230"), "not a real date of birth"),
    ("", "must be 18 characters"),
]


@pytest.mark.parametrize(
    ("number", "why"),
    MALFORMED,
    ids=["check-character", "lower-case-x", "short", "province", "no-such-date", "empty"],
)
def test_a_malformed_number_is_one_line_and_exit_2(keys, number, why):
    result = _check(keys, number=number)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "huren identity check: the number is not a valid resident identity number: "
        f"{_reason(why)}\n"
    )
    if number:
        _never_shows(result, number)


def _reason(fragment: str) -> str:
    reasons = [
        "it must be 18 characters: 17 digits, then a digit or an upper-case X",
        "its first two digits are not a province code",
        "characters 7 to 14 are not a real date of birth",
        "its check character (the 18th) does not match the first 17 digits",
    ]
    return next(r for r in reasons if fragment in r)


def test_bad_keys_and_options_are_one_line_and_exit_2(keys, tmp_path):
    short = tmp_path / "short.key"
    short.write_text("00" * 16)
    not_hex = tmp_path / "not-hex.key"
    not_hex.write_text("link key\n")
    pseudonym_32 = tmp_path / "pseudonym-32.key"
    pseudonym_32.write_text("11" * 32)
    cases = [
        (
            ["--link-key", str(short)],
            "huren: ERR_KEY_WEAK: short.key holds 16 bytes; the linking key is at least 32",
        ),
        (["--link-key", str(not_hex)], "huren: ERR_KEY_WEAK: not-hex.key does not hold hex"),
        (
            ["--link-key", str(keys["link"]), "--pseudonym-key", str(keys["pseudonym"])],
            "huren identity check: --pseudonym-key and --issuer go together",
        ),
        (
            ["--link-key", str(keys["link"]), "--issuer", "Vec Cose", "--pseudonym-key", "x"],
            "huren identity check: --issuer must be an issuer id (lower-case letters, digits, "
            "'.', '_', '-')",
        ),
        (
            ["--link-key", str(keys["link"]), "--pseudonym-key", str(pseudonym_32)],
            "huren: ERR_KEY_WEAK: a pseudonym key is 64 bytes",
        ),
        (
            ["--link-key", str(tmp_path / "missing.key")],
            f"huren: [Errno 2] No such file or directory: '{tmp_path / 'missing.key'}'",
        ),
    ]
    for options, message in cases:
        extra = ["--issuer", "vec-cose"] if str(pseudonym_32) in options else []
        result = huren("identity", "check", "--number", NUMBER, *options, *extra)
        assert (result.returncode, result.stdout) == (2, ""), options
        assert result.stderr == message + "\n", options
        _never_shows(result)
