"""Simulated regional health-code issuers, each with its own schema, keys and rules.

Regions depend on the gateway's public types (codecs, crypto, model); the gateway never imports
regions. Each region is a subpackage with its profile file and data files; ``REGIONS`` names the
ones ``huren region serve NAME`` can start.
"""

from __future__ import annotations

import importlib

from regions.common.spec import Region

REGIONS: tuple[str, ...] = ("hangzhou",)


def load_region(name: str) -> Region:
    """The region called ``name`` (raises KeyError for an unknown name)."""
    if name not in REGIONS:
        raise KeyError(name)
    module = importlib.import_module(f"regions.{name}")
    region: Region = module.REGION
    return region
