"""Clocks. The core never reads the time: the edges take "now" once per request and pass it in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The system's current time, timezone-aware in UTC."""
    return datetime.now(UTC)
