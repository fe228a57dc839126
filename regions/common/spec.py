"""What a region is: its identity, its rules, and how it writes a code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Protocol

from gateway.crypto import Algorithm, PrivateKey
from gateway.model import IssuerId, RegionCode
from regions.common.declarations import Declaration

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
"""UTC+08:00 all year (China has not observed daylight saving time since 1991)."""


@dataclass(frozen=True, slots=True)
class RegionSpec:
    name: str
    code: RegionCode
    issuer: IssuerId
    display_name: str
    algorithm: Algorithm

    def profile_text(self) -> str:
        """The region's translation profile, as shipped in its package folder."""
        return (resources.files(f"regions.{self.name}") / "profile.toml").read_text("utf-8")


@dataclass(frozen=True, slots=True)
class IssuedCode:
    code: str
    state: str
    issued_at: datetime
    expires_at: datetime


class Region(Protocol):
    spec: RegionSpec

    def assess(self, declaration: Declaration, now: datetime) -> str:
        """The local state this region gives a declaration at ``now``."""
        ...

    def issue(
        self, declaration: Declaration, state: str, now: datetime, key: PrivateKey, kid: str
    ) -> IssuedCode:
        """Write and sign a code carrying ``state``."""
        ...
