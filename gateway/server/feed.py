"""The hub's published trust list, and the watchers waiting for the next one.

The hub publishes a signed trust list whenever its content changes or a heartbeat renews its
``fresh_until`` (see :class:`gateway.trustlist.TrustListSigner`); each ``WatchTrustList`` call
waits here for the next one. Publishing is one reference swap and one event, on the event loop.
"""

from __future__ import annotations

import asyncio

from gateway.registry.views import TrustListView


class TrustListFeed:
    """The latest published list; :meth:`next` waits for one other than the caller's last."""

    def __init__(self) -> None:
        self._latest: TrustListView | None = None
        self._published = asyncio.Event()

    @property
    def latest(self) -> TrustListView | None:
        return self._latest

    def publish(self, view: TrustListView) -> None:
        """Make ``view`` the latest and wake every watcher (nothing if it is the latest)."""
        if self._latest is not None and self._latest.jws == view.jws:
            return
        self._latest = view
        woken, self._published = self._published, asyncio.Event()
        woken.set()

    async def next(self, sent: str | None) -> TrustListView:
        """The latest list, once it is not the one whose text is ``sent``."""
        while True:
            published = self._published
            latest = self._latest
            if latest is not None and latest.jws != sent:
                return latest
            await published.wait()
