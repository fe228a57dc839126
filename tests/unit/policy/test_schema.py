"""The policy language's JSON Schema agrees with its loader (issue 12): every policy the gateway
accepts validates, and every structural mistake the gateway refuses, the schema refuses too."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from gateway.errors import ConfigurationInvalid
from gateway.policy import load_policy, policy_schema
from tests.conftest import REPO
from tests.schemacheck import check_against_loader, schema_errors
from tests.unit.policy.test_loader import FULL

REQUIRED = {("policy",), ("policy", "id"), ("policy", "version"), ("policy", "destination")}


def _documented() -> list[str]:
    """The complete policies in docs/policies.md's TOML blocks (fragments are left out)."""
    text = (REPO / "docs" / "policies.md").read_text("utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    return [b for b in blocks if b.lstrip().startswith("[policy]")]


SOURCES = {
    **{p.parent.name: p.read_text("utf-8") for p in sorted(REPO.glob("regions/*/policy.toml"))},
    **{f"policies.md#{n}": b for n, b in enumerate(_documented(), 1)},
    "test_loader.FULL": FULL,
}


def _accepted(source: str) -> bool:
    try:
        load_policy(source)
    except ConfigurationInvalid:
        return False
    return True


def test_the_committed_schema_is_the_one_the_code_builds() -> None:
    committed = json.loads((REPO / "docs" / "schemas" / "policy.schema.json").read_text("utf-8"))
    assert committed == policy_schema()


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_policy_the_gateway_accepts_validates(name: str) -> None:
    source = SOURCES[name]
    assert _accepted(source), name
    assert schema_errors(policy_schema(), tomllib.loads(source)) == []


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_mutations_agree_with_the_loader(name: str) -> None:
    schema = policy_schema()
    document = tomllib.loads(SOURCES[name])
    assert check_against_loader(schema, document, lambda path: path in REQUIRED, _accepted) > 20
