"""Simulated regional health-code issuers, each with its own schema, keys and rules.

Regions depend on the gateway's public types (codecs, crypto, model); the gateway never imports
regions. Each region is a subpackage with its ``SPEC``, a ``build(context)`` factory, its
``profile.toml`` and its data files (``risk_areas.json``, ``contacts.json``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from regions.common.look import Look
from regions.common.spec import Region, RegionContext, RegionSpec

REGIONS: tuple[str, ...] = (
    "hangzhou",
    "zhejiang",
    "beijing",
    "shanghai",
    "guangdong",
    "macau",
    "hubei",
)


def _module(name: str) -> ModuleType:
    if name not in REGIONS:
        raise KeyError(name)
    return importlib.import_module(f"regions.{name}")


def spec_of(name: str) -> RegionSpec:
    """The region called ``name`` (raises KeyError for an unknown name)."""
    spec: RegionSpec = _module(name).SPEC
    return spec


def build_region(name: str, context: RegionContext) -> Region:
    region: Region = _module(name).build(context)
    return region


def look_of(name: str) -> Look:
    """How region ``name``'s traveller page looks (raises KeyError for an unknown name)."""
    look: Look = _module(name).LOOK
    return look
