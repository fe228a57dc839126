"""Checking a language's JSON Schema against its loader on real files and their mutations.

A mutation changes one place of a valid document: an unknown key added to a table, a required
key removed, a value of the wrong JSON type, or a string replaced by a wrong one. Every document
the loader accepts must validate against the schema; and a structural mistake (the first three
kinds) that the loader refuses must be refused by the schema too, which is what an editor needs.
Only the fourth kind may pass the schema and still be refused by the loader: rules between values
are the loader's (see :mod:`gateway.tomlschema`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

STRUCTURAL = frozenset({"unknown key", "missing key", "wrong type"})
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_WRONG_TYPES: tuple[Any, ...] = (7, 2.5, True, ["x"], {"x": 1}, "text")
_WRONG_STRINGS = ("", "bogus", "999999", "*", "CN", "Z" * 300)


def toml_text(document: dict[str, Any]) -> str:
    """``document`` as TOML: scalars first, then one ``[table]`` per top-level table."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in document.items() if not isinstance(v, dict)]
    for name, value in document.items():
        if isinstance(value, dict):
            lines.append(f"[{_key(name)}]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in value.items())
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if _BARE.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


@dataclass(frozen=True)
class Mutant:
    kind: str
    where: str
    document: dict[str, Any]


def mutants(
    document: dict[str, Any], required: Callable[[tuple[str, ...]], bool]
) -> Iterator[Mutant]:
    """Every single-place mutation of ``document``; ``required(path)`` says which keys may not
    be removed without the loader refusing (others are removed too, as a harmless change)."""
    for path, value in _places(document, ()):
        where = ".".join(path)
        parent_path, last = path[:-1], path[-1]
        if isinstance(value, dict):
            yield Mutant("unknown key", where, _set(document, (*path, "no_such_key"), 1))
        kind = "missing key" if required(path) else "optional key removed"
        yield Mutant(kind, where, _removed(document, parent_path, last))
        for wrong in _WRONG_TYPES:
            if type(wrong) is not type(value) and not (
                isinstance(value, dict) and isinstance(wrong, dict)
            ):
                yield Mutant("wrong type", where, _set(document, path, wrong))
        if isinstance(value, str):
            for wrong in _WRONG_STRINGS:
                yield Mutant("wrong string", where, _set(document, path, wrong))
        if isinstance(value, list) and value:
            yield Mutant("wrong type", f"{where}[0]", _set(document, path, [7, *value[1:]]))
            yield Mutant("wrong string", f"{where}[0]", _set(document, path, ["bogus", *value[1:]]))
            yield Mutant(
                "wrong string", f"{where}[twice]", _set(document, path, [*value, value[0]])
            )


def _places(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if path:
        yield path, value
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _places(inner, (*path, key))


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


def _removed(document: dict[str, Any], parent: tuple[str, ...], key: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target = changed
    for step in parent:
        target = target[step]
    del target[key]
    return changed


def schema_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = Draft202012Validator(schema)
    return [e.message for e in validator.iter_errors(document)]


def check_against_loader(
    schema: dict[str, Any],
    document: dict[str, Any],
    required: Callable[[tuple[str, ...]], bool],
    accepted: Callable[[str], bool],
) -> int:
    """Asserts that the schema and the loader (``accepted`` of TOML text) agree on every
    mutation of ``document``, as the module says; returns how many were checked."""
    checked = 0
    for mutant in mutants(document, required):
        loaded = accepted(toml_text(mutant.document))
        errors = schema_errors(schema, mutant.document)
        if loaded:
            assert errors == [], (mutant.kind, mutant.where, errors)
        elif mutant.kind in STRUCTURAL:
            assert errors, (mutant.kind, mutant.where, "the loader refuses it; the schema not")
        checked += 1
    return checked
