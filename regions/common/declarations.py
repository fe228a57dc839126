"""A traveller's self-declaration (自主申报), parsed strictly at the region's HTTP boundary."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from gateway.codecs import strictjson
from gateway.errors import CodeRejected
from gateway.identity import is_cn_resident_id

MAX_BODY_BYTES = 16 * 1024
MAX_TRIPS = 30
MAX_SYMPTOMS = 10
_PHONE = re.compile(r"1[3-9][0-9]{9}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FIELDS = {"id_number", "name", "phone", "trips", "symptoms", "contact"}
_TRIP_FIELDS = {"place", "from", "to"}


class DeclarationInvalid(ValueError):
    """A declaration was refused; ``field`` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True, slots=True)
class Trip:
    place: str
    start: date
    end: date


@dataclass(frozen=True, slots=True)
class Declaration:
    """Identity fields never appear in ``repr`` (they would end up in logs)."""

    id_number: str = field(repr=False)
    name: str = field(repr=False)
    phone: str = field(repr=False)
    trips: tuple[Trip, ...]
    symptoms: tuple[str, ...]
    contact: bool


def parse_declaration(body: bytes) -> Declaration:
    """Parse a JSON declaration.

    Raises:
        DeclarationInvalid: naming the first field that is missing, unknown or malformed.
    """
    try:
        data = strictjson.loads(body, max_bytes=MAX_BODY_BYTES, max_depth=4)
    except CodeRejected as e:
        raise DeclarationInvalid("body", f"body is not acceptable JSON ({e.reason.value})") from e
    if not isinstance(data, dict):
        raise DeclarationInvalid("body", "body must be a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise DeclarationInvalid(unknown[0][:32], "unknown field")
    id_number = _text(data, "id_number", 18)
    if not is_cn_resident_id(id_number):
        raise DeclarationInvalid("id_number", "not a valid resident identity number")
    name = _text(data, "name", 32)
    phone = _text(data, "phone", 11)
    if not _PHONE.fullmatch(phone):
        raise DeclarationInvalid("phone", "not an 11-digit mobile number")
    trips = data.get("trips", [])
    if not isinstance(trips, list) or len(trips) > MAX_TRIPS:
        raise DeclarationInvalid("trips", f"must be a list of at most {MAX_TRIPS} trips")
    symptoms = data.get("symptoms", [])
    if (
        not isinstance(symptoms, list)
        or len(symptoms) > MAX_SYMPTOMS
        or not all(isinstance(s, str) and 0 < len(s) <= 32 for s in symptoms)
    ):
        raise DeclarationInvalid(
            "symptoms", f"must be a list of at most {MAX_SYMPTOMS} short texts"
        )
    contact = data.get("contact", False)
    if not isinstance(contact, bool):
        raise DeclarationInvalid("contact", "must be true or false")
    return Declaration(
        id_number=id_number,
        name=name,
        phone=phone,
        trips=tuple(_trip(t, i) for i, t in enumerate(trips)),
        symptoms=tuple(symptoms),
        contact=contact,
    )


def _text(data: dict[str, Any], key: str, max_len: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= max_len or not value.isprintable():
        raise DeclarationInvalid(key, f"required text of at most {max_len} characters")
    return value


def _trip(value: Any, index: int) -> Trip:
    where = f"trips[{index}]"
    if not isinstance(value, dict) or set(value) != _TRIP_FIELDS:
        raise DeclarationInvalid(where, "a trip is an object with exactly place, from and to")
    place = value["place"]
    if not isinstance(place, str) or not 0 < len(place) <= 64 or not place.isprintable():
        raise DeclarationInvalid(f"{where}.place", "required text of at most 64 characters")
    try:
        start, end = _date(value["from"]), _date(value["to"])
    except ValueError as e:
        raise DeclarationInvalid(where, "from and to must be dates as YYYY-MM-DD") from e
    if end < start:
        raise DeclarationInvalid(where, "to is before from")
    return Trip(place, start, end)


def _date(value: Any) -> date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("not YYYY-MM-DD")
    return date.fromisoformat(value)
