"""The profile language's JSON Schema agrees with its loader (issue 12): every profile the
gateway accepts validates, and every structural mistake the gateway refuses, the schema refuses
too (an unknown key, a missing key, a value of the wrong type)."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest

from gateway.errors import ConfigurationInvalid
from gateway.profiles import load_profile, profile_schema
from tests.conftest import REPO
from tests.schemacheck import check_against_loader, schema_errors, toml_text
from tests.unit.profiles.test_loader import BASE, DELIMITED


def _documented() -> list[str]:
    """The complete profiles in the docs' TOML blocks (fragments are left out)."""
    blocks = []
    for doc in ("profiles.md", "operators.md", "issuers.md"):
        path = REPO / "docs" / doc
        if path.is_file():
            text = path.read_text("utf-8")
            blocks += re.findall(r"```toml(?: [^\n]*)?\n(.*?)```", text, re.S)  # toml file=NAME too
    return [b for b in blocks if "[profile]" in b and "[envelope]" in b]


SOURCES = {
    **{
        f"regions/{p.parent.name}": p.read_text("utf-8")
        for p in REPO.glob("regions/*/profile.toml")
    },
    **{
        f"formats/{p.stem}": p.read_text("utf-8")
        for p in REPO.glob("gateway/profiles/formats/*.toml")
    },
    **{
        f"issuer-vectors/{p.stem}": p.read_text("utf-8")
        for p in REPO.glob("docs/issuer-vectors/*.toml")
    },
    "independent_issuer/xiamen": (
        REPO / "tests" / "integration" / "independent_issuer" / "xiamen.toml"
    ).read_text("utf-8"),
    **{f"docs#{n}": b for n, b in enumerate(_documented(), 1)},
    "test_loader.BASE": BASE,
    "test_loader.DELIMITED": DELIMITED,
}


def _accepted(source: str) -> bool:
    try:
        load_profile(source)
    except ConfigurationInvalid:
        return False
    return True


def _required(document: dict[str, Any]):
    """Which keys the loader cannot do without, for this document."""
    envelope = document["envelope"]
    identity = document["claims"]["identity"]
    needed = {
        ("profile",),
        ("profile", "id"),
        ("profile", "version"),
        ("envelope",),
        ("envelope", "format"),
        ("envelope", "text"),
        ("envelope", "payload"),
        ("claims",),
        ("claims", "issued_at"),
        ("claims", "identity"),
        ("claims", "identity", "scheme"),
        *(("claims", "identity", k) for k in identity if k != "scheme"),
        ("states",),
        ("colours",),
        ("colours", "otherwise"),
        ("colours", "rule"),
        ("validity", "until"),
        ("validity", "zone"),
    }
    if "states" in document:
        needed.add(("claims", "state"))
    for name, value in document["claims"].items():
        if isinstance(value, dict) and "path" in value:
            needed.add(("claims", name, "path"))
            if "format" in value:
                needed.add(("claims", name, "format"))
            if value.get("format") == "local":
                needed |= {("claims", name, "pattern"), ("claims", name, "zone")}
    if envelope.get("format") in ("cose", "delimited") or envelope.get("text") == "numeric":
        needed.add(("envelope", "prefix"))
    if envelope.get("format") == "delimited":
        needed |= {("envelope", k) for k in ("delimiter", "fields", "kid", "signature")}
    return needed.__contains__


def test_the_committed_schema_is_the_one_the_code_builds() -> None:
    committed = json.loads((REPO / "docs" / "schemas" / "profile.schema.json").read_text("utf-8"))
    assert committed == profile_schema()


def test_every_kind_of_profile_is_among_the_sources() -> None:
    formats = {tomllib.loads(s)["envelope"]["format"] for s in SOURCES.values()}
    assert formats == {"jws", "cose", "delimited", "online"}
    assert any("colours" in tomllib.loads(s) for s in SOURCES.values())


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_profile_the_gateway_accepts_validates(name: str) -> None:
    source = SOURCES[name]
    assert _accepted(source), name
    assert schema_errors(profile_schema(), tomllib.loads(source)) == []


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_mutations_agree_with_the_loader(name: str) -> None:
    schema = profile_schema()
    document = tomllib.loads(SOURCES[name])
    assert check_against_loader(schema, document, _required(document), _accepted) > 20


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["envelope"].update(format="cose"), "a jws text form in a cose envelope"),
        (lambda d: d["envelope"].update(compression="ZIP"), "compression other than DEF"),
        (lambda d: d["envelope"].update(delimiter="|"), "a delimiter outside delimited"),
        (lambda d: d["envelope"].update(prefix="HC1:"), "a prefix on a compact JWS"),
        (lambda d: d["claims"].update(state="a..b"), "a field path with an empty segment"),
        (lambda d: d["claims"].update(state=".".join("a" * 13)), "13 path segments"),
        (lambda d: d["states"].update(x="BLUE"), "an unknown colour"),
        (lambda d: d.update(colours={"otherwise": "GREEN", "rule": []}), "colours with states"),
        (lambda d: d["claims"]["identity"].update(link="h"), "a link for a full number"),
        (lambda d: d["validity"].update(zone="Asia/Shanghai"), "a zone without until"),
    ],
)
def test_the_schema_says_which_keys_go_together(change, where) -> None:
    document = tomllib.loads(SOURCES["regions/hangzhou"])
    change(document)
    assert not _accepted(toml_text(document)), where
    assert schema_errors(profile_schema(), document), where
