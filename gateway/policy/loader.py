"""Load and validate a precedence policy from TOML text (the language is in docs/policies.md).

A policy is refused, with a message naming the offending key, if it has an unknown table or key,
an unknown strategy, a malformed region code, issuer id or duration, a severity adjustment to
GREEN (never allowed) or towards a less severe colour without ``unsafe = true``, a requirement the
destination cannot have, or anything else the gateway could not apply.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from gateway.errors import ConfigurationInvalid
from gateway.model import (
    Colour,
    IssuerId,
    Reason,
    RegionCode,
    format_span,
    parse_region_code,
    region_contains,
)
from gateway.policy.model import (
    MAX_TRANSFER_VALIDITY,
    NATIONAL,
    RANK,
    Freshness,
    Origins,
    PerOrigin,
    Policy,
    Prefer,
    Requirements,
    Strategy,
    Transfer,
)
from gateway.tomltable import Table, parse_document, parse_duration

MAX_SOURCE_BYTES = 64 * 1024
MAX_ENTRIES = 256
POLICY_ID = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
ISSUER_ID = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
STALE_IGNORE = "ignore"
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class PolicyError(ConfigurationInvalid):
    """A policy was refused; the message names the key and the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.ERR_POLICY, message)


def load_policy(source: str) -> Policy:
    """Parse and validate a policy.

    Raises:
        PolicyError: with a message naming the first problem found.
    """
    root = Table(parse_document(source, "policy", MAX_SOURCE_BYTES, PolicyError), "", PolicyError)

    meta = root.need_table("policy")
    policy_id = meta.need_text("id", max_len=64)
    if not POLICY_ID.fullmatch(policy_id):
        raise PolicyError("policy.id must be lower-case letters, digits, '.', '_' or '-'")
    version = meta.integer("version", low=1, high=1_000_000)
    destination = _destination(meta)
    description = meta.text("description", required=False, max_len=512) or ""
    unsafe = meta.boolean("unsafe", default=False)
    meta.done()

    combine = root.table("combine", required=False)
    strategy, prefer = Strategy.MOST_SEVERE, Prefer.SPECIFIC
    if combine is not None:
        strategy = combine.choice("strategy", Strategy, default=Strategy.MOST_SEVERE)
        if combine.has("prefer") and strategy is not Strategy.JURISDICTION:
            raise PolicyError("combine.prefer is only used with strategy 'jurisdiction'")
        prefer = combine.choice("prefer", Prefer, default=Prefer.SPECIFIC)
        combine.done()

    recognise, exclude = Origins(everywhere=True), Origins()
    trust = root.table("trust", required=False)
    if trust is not None:
        if trust.has("regions") or trust.has("issuers"):
            recognise = _origins(trust, "regions", "issuers", everywhere_allowed=True)
        exclude = _origins(trust, "exclude_regions", "exclude_issuers", everywhere_allowed=False)
        trust.done()
        if recognise.empty or (
            not recognise.everywhere
            and not recognise.issuers - exclude.issuers
            and all(exclude.match(r, IssuerId("")) for r in recognise.regions)
        ):
            raise PolicyError("trust recognises no origin: list regions (or '*') or issuers")

    freshness = Freshness()
    table = root.table("freshness", required=False)
    if table is not None:
        freshness = _freshness(table)

    severity: PerOrigin[Mapping[Colour, Colour]] = PerOrigin()
    table = root.table("severity", required=False)
    if table is not None:
        severity = _severity(table, unsafe)

    require = Requirements()
    table = root.table("require", required=False)
    if table is not None:
        require = Requirements(
            own_region=table.boolean("own_region", default=False),
            issuers=tuple(IssuerId(i) for i in _issuers(table, "issuers")),
        )
        table.done()
        if require.own_region and destination is None:
            raise PolicyError("require.own_region needs a destination region, not 'national'")
        if (
            require.own_region
            and destination is not None
            and exclude.match(destination, IssuerId(""))
        ):
            raise PolicyError("require.own_region: the destination's own region is excluded")
        if (
            require.own_region
            and destination is not None
            and not recognise.everywhere
            and not recognise.issuers
            and not any(
                (region_contains(destination, r) or region_contains(r, destination))
                and not exclude.match(r, IssuerId(""))
                for r in recognise.regions
            )
        ):
            raise PolicyError(
                f"require.own_region: trust recognises no origin in {destination}, so the "
                "requirement could never be met"
            )
        for issuer in require.issuers:
            if issuer in exclude.issuers:
                raise PolicyError(f"require.issuers: {issuer} is excluded by trust.exclude_issuers")
    transfer = Transfer()
    table = root.table("transfer", required=False)
    if table is not None:
        transfer = _transfer(table)
    root.done()

    return Policy(
        id=policy_id,
        version=version,
        destination=destination,
        description=description,
        strategy=strategy,
        prefer=prefer,
        recognise=recognise,
        exclude=exclude,
        freshness=freshness,
        severity=severity,
        require=require,
        unsafe=unsafe,
        transfer=transfer,
        source_sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
    )


def _destination(meta: Table) -> RegionCode | None:
    text = meta.need_text("destination", max_len=16)
    if text == NATIONAL:
        return None
    return _region(text, meta.key("destination"))


def _region(text: str, where: str) -> RegionCode:
    try:
        return parse_region_code(text)
    except ValueError as e:
        raise PolicyError(f"{where}: {e}") from e


def _regions(table: Table, key: str, *, everywhere_allowed: bool) -> tuple[bool, list[RegionCode]]:
    values = table.text_list(key, max_items=MAX_ENTRIES, max_len=16)
    everywhere = "*" in values
    if everywhere and not everywhere_allowed:
        raise PolicyError(f"{table.key(key)} cannot be '*'")
    if everywhere and len(values) > 1:
        raise PolicyError(f"{table.key(key)}: '*' already covers every region")
    return everywhere, [_region(v, table.key(key)) for v in values if v != "*"]


def _issuers(table: Table, key: str) -> list[str]:
    values = table.text_list(key, max_items=MAX_ENTRIES, max_len=64)
    for value in values:
        if not ISSUER_ID.fullmatch(value):
            raise PolicyError(f"{table.key(key)}: {value[:64]!r} is not an issuer id")
    return values


def _origins(
    table: Table, regions_key: str, issuers_key: str, *, everywhere_allowed: bool
) -> Origins:
    everywhere, regions = _regions(table, regions_key, everywhere_allowed=everywhere_allowed)
    issuers = _issuers(table, issuers_key)
    return Origins(everywhere, tuple(regions), frozenset(IssuerId(i) for i in issuers))


def _per_origin(
    table: Table, convert: Callable[[Any, str], T]
) -> tuple[dict[RegionCode, T], dict[IssuerId, T]]:
    """The ``regions`` and ``issuers`` sub-tables of ``table``, each value through ``convert``."""
    regions: dict[RegionCode, T] = {}
    issuers: dict[IssuerId, T] = {}
    for key in ("regions", "issuers"):
        sub = table.table(key, required=False)
        if sub is None:
            continue
        items = sub.items()
        if len(items) > MAX_ENTRIES:
            raise PolicyError(f"{table.key(key)} has more than {MAX_ENTRIES} entries")
        for name, value in items:
            where = sub.key(name)
            if key == "regions":
                regions[_region(name, where)] = convert(value, where)
            elif ISSUER_ID.fullmatch(name):
                issuers[IssuerId(name)] = convert(value, where)
            else:
                raise PolicyError(f"{where}: {name[:64]!r} is not an issuer id")
    return regions, issuers


def _frozen(values: dict[K, V]) -> Mapping[K, V]:
    return MappingProxyType(values)


def _duration(value: Any, where: str) -> timedelta:
    parsed = parse_duration(value) if isinstance(value, str) else None
    if parsed is None or parsed <= timedelta(0):
        raise PolicyError(f"{where} must be a positive duration like '30m', '6h' or '3d'")
    return parsed


def _freshness(table: Table) -> Freshness:
    default = table.duration("max_age")
    regions, issuers = _per_origin(table, _duration)
    stale_text = table.text("stale", required=False, max_len=16) or STALE_IGNORE
    stale: Colour | None = None
    if stale_text != STALE_IGNORE:
        allowed = [c.value for c in Colour if c is not Colour.GREEN]
        if stale_text not in allowed:
            choices = ", ".join(repr(v) for v in [STALE_IGNORE, *allowed])
            raise PolicyError(f"freshness.stale is {stale_text!r}; expected one of {choices}")
        stale = Colour(stale_text)
    table.done()
    if default is None and not regions and not issuers:
        raise PolicyError("freshness needs max_age, or entries under regions or issuers")
    return Freshness(PerOrigin(default, _frozen(regions), _frozen(issuers)), stale)


def _severity(table: Table, unsafe: bool) -> PerOrigin[Mapping[Colour, Colour]]:
    def convert(value: Any, where: str) -> Mapping[Colour, Colour]:
        if not isinstance(value, dict) or not value:
            raise PolicyError(f'{where} must be a table like {{ YELLOW = "RED" }}')
        names = [c.value for c in Colour]
        mapping: dict[Colour, Colour] = {}
        for source, target in value.items():
            if source not in names or not isinstance(target, str) or target not in names:
                raise PolicyError(
                    f"{where}.{source}: colours are {', '.join(repr(n) for n in names)}"
                )
            read_as, colour = Colour(target), Colour(source)
            if read_as is Colour.GREEN and colour is not Colour.GREEN:
                raise PolicyError(f"{where}.{source}: nothing may be read as GREEN")
            if RANK[read_as] < RANK[colour] and not unsafe:
                raise PolicyError(
                    f"{where}.{source}: reading {source} as {target} is less severe; "
                    "only a policy marked unsafe = true may do that"
                )
            if read_as is not colour:
                mapping[colour] = read_as
        return _frozen(mapping)

    regions, issuers = _per_origin(table, convert)
    table.done()
    if not regions and not issuers:
        raise PolicyError("severity needs entries under regions or issuers")
    return PerOrigin(None, _frozen(regions), _frozen(issuers))


def _transfer(table: Table) -> Transfer:
    attest = table.boolean("attest", default=False)
    max_validity = MAX_TRANSFER_VALIDITY
    if table.has("max_validity"):
        if not attest:
            raise PolicyError("transfer.max_validity is only used with attest = true")
        given = table.duration("max_validity")
        assert given is not None
        if given > MAX_TRANSFER_VALIDITY:
            raise PolicyError(
                f"transfer.max_validity: at most {format_span(MAX_TRANSFER_VALIDITY)}"
            )
        max_validity = given
    _, accept = _regions(table, "accept", everywhere_allowed=False)
    table.done()
    if len(set(accept)) != len(accept):
        raise PolicyError("transfer.accept lists a region twice")
    return Transfer(attest, max_validity, tuple(accept))
