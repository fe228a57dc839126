"""A bounded memory of a pure check's results, by the exact input that passed it.

An issuer's header is the same text or bytes on every code it signs, so the codecs check it
once and remember the result. Only results are stored, never refusals (a refused input is
checked again every time); the memory is emptied when full, so a flood of distinct inputs costs
what the checks cost and no more memory than ``limit`` entries.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Remembered(Generic[K, V]):
    __slots__ = ("_items", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: dict[K, V] = {}

    def get(self, key: K, check: Callable[[K], V]) -> V:
        """``check(key)``'s result, computed only the first time ``key`` passes."""
        value = self._items.get(key)
        if value is None:
            value = check(key)  # raises for a refused input: nothing is remembered
            if len(self._items) >= self.limit:
                self._items.clear()
            self._items[key] = value
        return value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
