"""A region's local rules, as data: risk areas, close-contact lists, and back-end reviews.

Each region ships ``risk_areas.json`` (areas with a risk level, the look-back window, and how
its back-end review resolves places it does not know yet) and ``contacts.json`` (phone numbers
on the close-contact list). The assessment is the same everywhere; the words differ by region.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from regions.common.declarations import Declaration
from regions.common.spec import CHINA_STANDARD_TIME, Level, RegionSpec

_LEVELS = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True, slots=True)
class Rules:
    window_days: int
    check_seconds: int
    risk: dict[str, str]
    """Place code or name -> "low" | "medium" | "high"."""
    reviews: dict[str, str]
    """How the back-end review resolves places that are not on the list (default "low")."""
    contacts: frozenset[str]

    @classmethod
    def load(cls, spec: RegionSpec) -> Rules:
        areas = json.loads(spec.data("risk_areas.json"))
        contacts = json.loads(spec.data("contacts.json"))
        risk: dict[str, str] = {}
        for area in areas["areas"]:
            risk[area["code"]] = risk[area["name"]] = area["risk"]
        return cls(
            window_days=int(areas["window_days"]),
            check_seconds=int(areas["check_seconds"]),
            risk=risk,
            reviews=dict(areas.get("reviews", {})),
            contacts=frozenset(contacts["phones"]),
        )

    def assess(self, declaration: Declaration, now: datetime, *, reviewed: bool = False) -> Level:
        """The level of a declaration at ``now``.

        Without ``reviewed``, a recent trip to a place not on the list makes it PENDING; with it,
        such places take the outcome of the back-end review.
        """
        today = now.astimezone(CHINA_STANDARD_TIME).date()
        since = today - timedelta(days=self.window_days)
        levels = set()
        for trip in declaration.trips:
            if trip.end < since:
                continue
            known = self.risk.get(trip.place)
            if known is None:
                known = self.reviews.get(trip.place, "low") if reviewed else "unknown"
            levels.add(known)
        if declaration.contact or declaration.phone in self.contacts or "high" in levels:
            return Level.RED
        if declaration.symptoms or "medium" in levels:
            return Level.YELLOW
        if "unknown" in levels:
            return Level.PENDING
        return Level.GREEN
