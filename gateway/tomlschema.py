"""JSON Schema (draft 2020-12) for the TOML languages, from the same rules the loaders apply.

Each language's schema (:mod:`gateway.policy.schema`, :mod:`gateway.profiles.schema`) is built
from its loader's own constants: key names, enumerations, identifier patterns, length and count
limits (the fragments here mirror :class:`gateway.tomltable.Table`'s checks one for one). An
editor or a CI job in any language validates a file's structure with it; the rules that relate
one key to another (a severity that may not read a colour as less severe without ``unsafe``, a
requirement its own trust excludes, a profile's colour rules) are the loader's alone: run
``huren policy check`` / ``huren profile check`` for the verdict that counts.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.model import PROVINCE_PREFIXES
from gateway.tomltable import DURATION

Schema = dict[str, Any]

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _anchored(pattern: re.Pattern[str]) -> str:
    """A Python pattern used with ``fullmatch``, as an anchored ECMA-262 pattern (the patterns
    used here are in the syntax both share)."""
    return f"^(?:{pattern.pattern.removeprefix('^').removesuffix('$')})$"


def text(max_len: int) -> Schema:
    """``Table.text``: a string of 1 to ``max_len`` characters."""
    return {"type": "string", "minLength": 1, "maxLength": max_len}


def matching(pattern: re.Pattern[str], max_len: int) -> Schema:
    return {**text(max_len), "pattern": _anchored(pattern)}


def integer(low: int, high: int) -> Schema:
    """``Table.integer``."""
    return {"type": "integer", "minimum": low, "maximum": high}


def boolean() -> Schema:
    return {"type": "boolean"}


def choice(enum_type: type[enum.Enum] | Iterable[str]) -> Schema:
    """``Table.choice``: one of the enumeration's values."""
    values = [m.value for m in enum_type] if isinstance(enum_type, type) else list(enum_type)
    return {"type": "string", "enum": values}


def unique_list(item: Schema, max_items: int) -> Schema:
    """``Table.text_list``: at most ``max_items``, none twice."""
    return {"type": "array", "items": item, "maxItems": max_items, "uniqueItems": True}


def duration() -> Schema:
    """``Table.duration``: ``'30m'``, ``'6h'``, ``'3d'``."""
    return matching(DURATION, 16)


def region_code() -> Schema:
    """:func:`gateway.model.parse_region_code`: a GB/T 2260 code with a known province prefix,
    or an ISO 3166-1 alpha-2 country code other than CN, or 100000 (the nation)."""
    provinces = "|".join(sorted(PROVINCE_PREFIXES))
    pattern = f"^(?:(?!CN$)[A-Z]{{2}}|(?:{provinces})[0-9]{{4}}|100000)$"
    return {"type": "string", "pattern": pattern}


def table(properties: Mapping[str, Schema], required: Iterable[str] = (), **extra: Any) -> Schema:
    """``Table`` with ``done()``: these keys and no others."""
    schema: Schema = {"type": "object", "properties": dict(properties)}
    schema["additionalProperties"] = False
    if required:
        schema["required"] = list(required)
    return {**schema, **extra}


def keyed(names: Schema, values: Schema, max_entries: int) -> Schema:
    """A table whose keys are names (region codes, issuer ids), each with a value."""
    return {
        "type": "object",
        "propertyNames": names,
        "additionalProperties": values,
        "maxProperties": max_entries,
    }


def document(title: str, description: str, root: Schema) -> Schema:
    return {"$schema": DRAFT, "title": title, "description": description, **root}
