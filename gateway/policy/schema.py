"""The JSON Schema of a precedence policy file, from the loader's own rules
(:mod:`gateway.policy.loader`; see :mod:`gateway.tomlschema` for what a schema can and cannot
say)."""

from __future__ import annotations

from gateway import tomlschema as s
from gateway.model import Colour
from gateway.policy.loader import ISSUER_ID, MAX_ENTRIES, POLICY_ID, STALE_IGNORE
from gateway.policy.model import NATIONAL, Prefer, Strategy


def policy_schema() -> s.Schema:
    """The schema ``docs/schemas/policy.schema.json`` holds."""
    region = s.region_code()
    issuer = s.matching(ISSUER_ID, 64)
    regions = s.unique_list(region, MAX_ENTRIES)
    issuers = s.unique_list(issuer, MAX_ENTRIES)
    colours = s.choice(c.value for c in Colour)

    def per_origin(value: s.Schema) -> dict[str, s.Schema]:
        return {
            "regions": s.keyed(region, value, MAX_ENTRIES),
            "issuers": s.keyed(issuer, value, MAX_ENTRIES),
        }

    readings = {
        "type": "object",
        "propertyNames": colours,
        "additionalProperties": colours,
        "minProperties": 1,
    }
    root = s.table(
        {
            "policy": s.table(
                {
                    "id": s.matching(POLICY_ID, 64),
                    "version": s.integer(1, 1_000_000),
                    "destination": {"anyOf": [{"const": NATIONAL}, region]},
                    "description": s.text(512),
                    "unsafe": s.boolean(),
                },
                required=("id", "version", "destination"),
            ),
            "combine": s.table({"strategy": s.choice(Strategy), "prefer": s.choice(Prefer)}),
            "trust": s.table(
                {
                    "regions": s.unique_list({"anyOf": [{"const": "*"}, region]}, MAX_ENTRIES),
                    "issuers": issuers,
                    "exclude_regions": regions,
                    "exclude_issuers": issuers,
                }
            ),
            "freshness": s.table(
                {
                    "max_age": s.duration(),
                    "stale": s.choice(
                        [STALE_IGNORE, *(c.value for c in Colour if c is not Colour.GREEN)]
                    ),
                    **per_origin(s.duration()),
                }
            ),
            "severity": s.table(per_origin(readings)),
            "require": s.table({"own_region": s.boolean(), "issuers": issuers}),
            "transfer": s.table(
                {"attest": s.boolean(), "max_validity": s.duration(), "accept": regions}
            ),
        },
        required=("policy",),
    )
    return s.document(
        "huren precedence policy",
        "A destination's precedence policy (docs/policies.md). The structure only: "
        "`huren policy check` applies every rule.",
        root,
    )
