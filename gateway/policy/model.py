"""The frozen objects a precedence policy compiles into (the language is in docs/policies.md).

A policy belongs to one destination region (or is the national policy) and says how that
destination turns a traveller's verified codes into one colour: which origins it recognises, how
old a code may be, how it reads other origins' colours, which codes it requires, and how the
remaining colours combine. It is validated once, when loaded; deciding only reads it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Final, Generic, TypeVar

from gateway.model import (
    Colour,
    IssuerId,
    RegionCode,
    format_span,
    region_contains,
    region_prefix,
)

T = TypeVar("T")

NATIONAL: Final = "national"
"""The destination name of the national policy (used where a region has none of its own)."""

RANK: Final = {Colour.GREEN: 0, Colour.GREY: 1, Colour.YELLOW: 2, Colour.RED: 3}
"""How severe a *valid* code's colour is when codes are combined: a region's own pending code
(GREY) is not a pass, so it outranks GREEN, but says less than a YELLOW or a RED."""


def more_severe(a: Colour, b: Colour) -> Colour:
    return a if RANK[a] >= RANK[b] else b


class Strategy(enum.Enum):
    MOST_SEVERE = "most_severe"
    """The most severe colour among the recognised codes decides."""
    DESTINATION_FIRST = "destination_first"
    """The destination's own codes decide when there are any; otherwise most_severe."""
    FRESHEST = "freshest"
    """The most recently issued code decides (the most severe among equally recent ones)."""
    JURISDICTION = "jurisdiction"
    """Where one code's region lies within another's, only the more specific (or the more
    general) takes part; the rest combine by most_severe."""


class Prefer(enum.Enum):
    SPECIFIC = "specific"
    GENERAL = "general"


@dataclass(frozen=True, slots=True)
class Origins:
    """A set of origins: regions (each covering the regions within it), or everywhere, and
    issuers by id."""

    everywhere: bool = False
    regions: tuple[RegionCode, ...] = ()
    issuers: frozenset[IssuerId] = frozenset()

    def match(self, region: RegionCode, issuer: IssuerId) -> str | None:
        """Why the origin is in the set (``issuers.x``, ``regions.330000``, ``*``), or None."""
        if issuer in self.issuers:
            return f"issuer {issuer}"
        for code in self.regions:
            if region_contains(code, region):
                return f"region {code}"
        return "every region" if self.everywhere else None

    @property
    def empty(self) -> bool:
        return not (self.everywhere or self.regions or self.issuers)


@dataclass(frozen=True, slots=True)
class PerOrigin(Generic[T]):
    """A value per origin: the issuer's own entry wins, then the most specific region entry
    that contains the code's region, then the default."""

    default: T | None = None
    regions: Mapping[RegionCode, T] = field(default_factory=lambda: MappingProxyType({}))
    issuers: Mapping[IssuerId, T] = field(default_factory=lambda: MappingProxyType({}))

    def lookup(self, region: RegionCode, issuer: IssuerId) -> tuple[T | None, str]:
        """The value for an origin and where it came from (for explanations)."""
        if issuer in self.issuers:
            return self.issuers[issuer], f"issuer {issuer}"
        best: RegionCode | None = None
        for code in self.regions:
            if region_contains(code, region) and (
                best is None or len(region_prefix(code)) > len(region_prefix(best))
            ):
                best = code
        if best is not None:
            return self.regions[best], f"region {best}"
        return self.default, "default"

    @property
    def empty(self) -> bool:
        return self.default is None and not self.regions and not self.issuers


@dataclass(frozen=True, slots=True)
class Freshness:
    max_age: PerOrigin[timedelta] = field(default_factory=PerOrigin)
    stale: Colour | None = None
    """None: a code older than its maximum age is ignored; a colour: it counts as at least that
    colour."""


@dataclass(frozen=True, slots=True)
class Requirements:
    """Codes the destination insists on (码上加码, "a code on a code")."""

    own_region: bool = False
    """A valid, recognised code from an issuer of the destination's own region."""
    issuers: tuple[IssuerId, ...] = ()
    """A valid, recognised code from each of these issuers (the national hub's, for example)."""

    @property
    def code_stacking(self) -> bool:
        return self.own_region or bool(self.issuers)


MAX_TRANSFER_VALIDITY: Final = timedelta(hours=24)
"""The longest a transfer attestation may live, whatever a policy says (docs/transfer.md)."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """转码: what the destination says about transfer attestations (docs/transfer.md)."""

    attest: bool = False
    """The hub may issue an attestation for a GREEN decision made under this policy. Off by
    default: a destination opts in, audited like every policy change."""
    max_validity: timedelta = MAX_TRANSFER_VALIDITY
    """The longest an attestation issued under this policy lives (at most 24 h; never past
    what its source codes allow)."""
    accept: tuple[RegionCode, ...] = ()
    """The destinations whose attestations count here (a province covers its cities). Empty:
    no attestation counts, whatever [trust] says."""

    def accepts(self, destination: RegionCode) -> RegionCode | None:
        """The entry under which an attestation made for ``destination`` counts, or None."""
        return next((a for a in self.accept if region_contains(a, destination)), None)


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    version: int
    destination: RegionCode | None
    """The region this policy decides for, or None for the national policy."""
    description: str = ""
    strategy: Strategy = Strategy.MOST_SEVERE
    prefer: Prefer = Prefer.SPECIFIC
    recognise: Origins = field(default_factory=lambda: Origins(everywhere=True))
    exclude: Origins = field(default_factory=Origins)
    freshness: Freshness = field(default_factory=Freshness)
    severity: PerOrigin[Mapping[Colour, Colour]] = field(default_factory=PerOrigin)
    require: Requirements = field(default_factory=Requirements)
    unsafe: bool = False
    """Allows severity adjustments towards *less* severe colours (never to GREEN)."""
    transfer: Transfer = field(default_factory=Transfer)
    source_sha256: str = ""

    @property
    def label(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def key(self) -> str:
        """Where the registry files it: the destination region code, or ``national``."""
        return self.destination or NATIONAL

    def recognises(self, region: RegionCode, issuer: IssuerId) -> bool:
        """Whether codes of this origin take part at all (on the trust list, not excluded)."""
        return (
            self.recognise.match(region, issuer) is not None
            and self.exclude.match(region, issuer) is None
        )

    def flags(self) -> list[str]:
        """What an auditor should notice about this policy."""
        out = []
        if self.require.own_region:
            out.append("code-stacking: requires a code from the destination's own region")
        for issuer in self.require.issuers:
            out.append(f"code-stacking: requires a code from issuer {issuer}")
        if self.unsafe:
            out.append("unsafe: may read some colours as less severe than their issuers do")
        if self.transfer.attest:
            out.append(
                "transfer: the hub attests GREEN decisions made here "
                f"(valid at most {format_span(self.transfer.max_validity)})"
            )
        if self.transfer.accept:
            out.append(
                f"transfer: attestations made for {', '.join(self.transfer.accept)} count here"
            )
        return out


DEFAULT_NATIONAL: Final = Policy(
    id="national-default",
    version=0,
    destination=None,
    description="built in: every registered issuer recognised, the most severe colour decides",
)
"""The policy used where neither the destination nor the hub has registered one."""
