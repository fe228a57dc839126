"""What a region is: its identity, its vocabulary, and how it writes a code."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Protocol

from aiohttp import web

from gateway.crypto import Algorithm, PrivateKey
from gateway.identity import IdentityScheme
from gateway.model import IssuerId, RegionCode

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
"""UTC+08:00 all year (China has not observed daylight saving time since 1991)."""


class Level(enum.Enum):
    """The outcome of a region's assessment, before it is written in the region's own words."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    PENDING = "pending"
    """The declaration needs a back-end check that has not finished."""


@dataclass(frozen=True, slots=True)
class RegionSpec:
    name: str
    code: RegionCode
    issuer: IssuerId
    display_name: str
    algorithm: Algorithm
    identity: IdentityScheme
    states: Mapping[Level, str]
    """The region's word for each level. Without a PENDING word, a declaration awaiting its
    back-end check gets no code until the check completes (HTTP 202)."""
    binary_kid: bool = False
    """COSE regions: the key id is 8 bytes (EU DCC style), published as standard base64."""

    def profile_text(self) -> str:
        """The region's translation profile, as shipped in its package folder."""
        return (resources.files(f"regions.{self.name}") / "profile.toml").read_text("utf-8")

    def data(self, name: str) -> str:
        return (resources.files(f"regions.{self.name}") / name).read_text("utf-8")


@dataclass(frozen=True, slots=True)
class Secrets:
    """What a region signs and seals with. ``link_key`` comes from the hub (masked-link regions);
    ``pseudonym_key`` is the region's own, shared with the hub (pseudonym regions)."""

    key: PrivateKey = field(repr=False)
    kid: str
    link_key: bytes | None = field(default=None, repr=False)
    pseudonym_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Holder:
    """The person a code is for. Never printed: ``repr`` hides everything."""

    id_number: str = field(repr=False)
    name: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class IssuedCode:
    code: str
    state: str
    issued_at: datetime
    expires_at: datetime


class TokenBook(Protocol):
    """Where an online region records the tokens it hands out (the region's store)."""

    def add_token(
        self,
        token: str,
        declaration_id: str,
        state: str,
        issued_at: datetime,
        expires_at: datetime,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RegionContext:
    """What a running region service gives its region: its records, its public address and its
    state directory."""

    tokens: TokenBook
    public_url: str
    state_dir: Path


class Region(Protocol):
    spec: RegionSpec

    def issue(
        self, holder: Holder, state: str, now: datetime, secrets: Secrets, declaration_id: str
    ) -> IssuedCode:
        """Write and sign a code carrying ``state`` for ``holder`` at ``now``."""
        ...

    def routes(self) -> list[web.RouteDef]:
        """Region-specific HTTP routes beyond the common ones (most regions have none)."""
        ...


class OfflineRegion:
    """Base for regions whose codes are verified offline: no HTTP routes of their own."""

    spec: RegionSpec

    def routes(self) -> list[web.RouteDef]:
        return []
