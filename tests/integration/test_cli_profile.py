"""``huren profile ...`` run as a profile's author runs it: a separate process, files only, no
gateway, no registry, no network."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.integration.cli import huren_all

pytestmark = pytest.mark.slow

REGIONS = REPO / "regions"
FORMATS = REPO / "gateway" / "profiles" / "formats"


# ------------------------------------------------------------------ profile check


def test_profile_check_says_how_codes_are_signed_timed_and_carry_their_holder():
    """Issue 11, item 7: besides the summary, the allowed algorithms, every time's field, format
    and zone, and where the identity is read (and how it is carried)."""
    shanghai, beijing, eu, hubei = huren_all(
        ("profile", "check", str(REGIONS / "shanghai" / "profile.toml")),
        ("profile", "check", str(REGIONS / "beijing" / "profile.toml")),
        ("profile", "check", str(FORMATS / "eu-dcc.toml")),
        ("profile", "check", str(REGIONS / "hubei" / "profile.toml")),
    )
    for result in (shanghai, beijing, eu, hubei):
        assert (result.returncode, result.stderr) == (0, "")
    assert shanghai.stdout.splitlines() == [
        "profile shanghai@1: valid",
        "  envelope  delimited / delimited / delimited, codes start with 'SH1:'",
        "  signed    by keys of any algorithm the gateway admits (ES256, ES384, EdDSA, PS256)",
        "  issuer    iss",
        "  issued    time (local, pattern 'YYYYMMDDHHmmss' in Asia/Shanghai)",
        "  expiry    earliest of: issue + 30m",
        "  identity  cn-resident-id: full number at idn (masked in every verdict)",
        "  state     status (text)",
        "  state     '0' -> GREEN",
        "  state     '1' -> YELLOW",
        "  state     '2' -> RED",
        "  anything else -> refused (ERR_COLOUR_UNKNOWN)",
    ]
    # A state's note is shown beside it (issue 11, item 6).
    assert (
        "  identity  pseudonym: sealed number at 11 (opened with the issuer's pseudonym key)\n"
        in (beijing.stdout)
    )
    assert "  state     '弹窗' -> GREY  (pop-up: the holder must be checked before passing)\n" in (
        beijing.stdout
    )
    assert "  expiry    earliest of: end of day in Asia/Shanghai\n" in beijing.stdout
    for line in (
        "  signed    by ES256, PS256 keys only",
        "  region    1 must be the issuer's registered region",
        "  issued    6 (numeric-date)",
        "  expires   4 (numeric-date)",
        "  starts    5 (numeric-date, optional)",
        "  key ids   x509-sha256-8",
        "  identity  name-dob: family name at -260.1.nam.fnt, given name at -260.1.nam.gnt, "
        "date of birth at -260.1.dob",
    ):
        assert line in eu.stdout.splitlines(), line
    for line in (
        "  issued    iat (unix-ms)",
        "  expires   exp (unix-ms)",
        "  degrade   GREEN -> YELLOW after 72h",
        "  identity  masked-link: masked number at id.masked, link hash at id.hash",
        "  state     '99' -> GREY  (pending review)",
    ):
        assert line in hubei.stdout.splitlines(), line


def test_profile_check_refuses_a_broken_profile_in_one_line(tmp_path):
    broken = tmp_path / "profile.toml"
    broken.write_text(
        (REGIONS / "shanghai" / "profile.toml")
        .read_text("utf-8")
        .replace('pattern = "YYYYMMDDHHmmss"', 'pattern = "YYYY-MM-DDTHH:mm:ss"'),
        "utf-8",
    )
    not_utf8 = tmp_path / "latin1.toml"
    not_utf8.write_bytes('[profile]\nid = "café"\n'.encode("latin-1"))
    result, encoding, missing = huren_all(
        ("profile", "check", str(broken)),
        ("profile", "check", str(not_utf8)),
        ("profile", "check", str(tmp_path / "absent.toml")),
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "huren: ERR_PROFILE: claims.issued_at.pattern: pattern 'YYYY-MM-DDTHH:mm:ss': unknown "
        "pattern letter 'T' at position 10; quote letters that stand for themselves: 'T'\n"
    )
    assert (encoding.returncode, encoding.stdout) == (2, "")
    assert encoding.stderr == "huren: ERR_PROFILE: latin1.toml is not UTF-8 text (byte 19)\n"
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr.startswith("huren: [Errno 2] No such file or directory")
    assert len(missing.stderr.splitlines()) == 1
