"""The codes a region's pages have shown, kept in memory by a random id until they expire, so that
``GET /api/codes/{id}.png`` draws exactly the code the page showed (a code is re-signed, with a new
signature and sometimes a new token, each time it is fetched)."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from datetime import datetime

MAX_CODES = 10_000
"""Codes held at once; the oldest is forgotten first (its image then answers 404)."""


class CodeBook:
    """Issued codes by id. The id is a capability: random, 128 bits, never derived from the code."""

    def __init__(self, max_codes: int = MAX_CODES) -> None:
        self._codes: OrderedDict[str, tuple[str, datetime]] = OrderedDict()
        self._max = max_codes

    def add(self, code: str, expires_at: datetime, now: datetime) -> str:
        self._forget_expired(now)
        code_id = secrets.token_urlsafe(16)
        self._codes[code_id] = (code, expires_at)
        while len(self._codes) > self._max:
            self._codes.popitem(last=False)
        return code_id

    def get(self, code_id: str, now: datetime) -> str | None:
        """The code ``code_id`` names, or None once it expired or was forgotten."""
        found = self._codes.get(code_id)
        if found is None or found[1] <= now:
            return None
        return found[0]

    def __len__(self) -> int:
        return len(self._codes)

    def _forget_expired(self, now: datetime) -> None:
        for code_id in [k for k, (_, expires) in self._codes.items() if expires <= now]:
            del self._codes[code_id]
