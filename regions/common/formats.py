"""Small helpers regions use to write times the way each of them does."""

from __future__ import annotations

from datetime import datetime

from regions.common.spec import CHINA_STANDARD_TIME


def iso_local(instant: datetime) -> str:
    """RFC 3339 with the +08:00 offset, whole seconds: ``2022-04-01T10:00:00+08:00``."""
    return instant.astimezone(CHINA_STANDARD_TIME).replace(microsecond=0).isoformat()


def compact_local(instant: datetime) -> str:
    """``YYYYMMDDHHmmss`` in China Standard Time (Shanghai)."""
    return instant.astimezone(CHINA_STANDARD_TIME).strftime("%Y%m%d%H%M%S")


def unix_s(instant: datetime) -> int:
    return int(instant.timestamp())


def unix_ms(instant: datetime) -> int:
    return int(instant.timestamp()) * 1000 + instant.microsecond // 1000
