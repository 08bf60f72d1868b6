"""When a token held answers a caller: fresh, due (handed out while refreshed beside), or past use."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_tokens import metrics

if TYPE_CHECKING:
    from airflow_tokens.memory import Held
    from airflow_tokens.token import AccessToken


@dataclass(frozen=True, slots=True)
class Ask:
    """
    What a caller asks of the cache, and when a token held answers it.

    A token is *fresh* before this process's refresh point for it (:meth:`accepts`), *due* after it but
    still handed out while a refresh runs beside the caller (:meth:`early`), until a quarter of its
    margin is left (:meth:`serve_limit`); never after.

    :param key: the cache key.
    :param fingerprint: the digest of the request that obtains the token.
    :param margin: the refresh margin in seconds.
    :param force_refresh: whether every cached token is ignored.
    :param rejected: a token value the vendor refused, ignored too.
    """

    key: str
    fingerprint: str
    margin: float
    force_refresh: bool
    rejected: str | None

    def _matches(self, held: Held | None) -> bool:
        return (
            held is not None
            and not self.force_refresh
            and held.entry.fingerprint == self.fingerprint
            and held.entry.token.token != self.rejected
        )

    def accepts(self, held: Held | None) -> bool:
        """Say whether ``held`` is fresh: before this process's refresh point for it."""
        if not self._matches(held):
            return False
        assert held is not None
        token = held.entry.token
        # Between the margin and half of it before expiry, as this process drew: hosts do not align.
        # A refresh time the server suggested (``refresh_in``) comes first.
        start = token.refresh_at(self.margin)
        if token.refresh_after is not None:
            start = min(start, token.refresh_after.timestamp())
        return time.time() < start + held.jitter * token.effective_margin(self.margin) / 2

    def tolerates(self, held: Held | None) -> bool:
        """Say whether ``held`` may be handed out while another refreshes: a quarter of its margin left."""
        if not self._matches(held):
            return False
        assert held is not None
        return time.time() < self.serve_limit(held)

    def early(self, held: Held | None) -> bool:
        """Say whether ``held`` is due for a refresh that the caller need not wait for: still tolerated."""
        return self.rejected is None and self.tolerates(held)

    def serve_limit(self, held: Held) -> float:
        """Return the epoch second until which ``held`` may be handed out: a quarter of its margin left."""
        token = held.entry.token
        return token.expires_at.timestamp() - token.effective_margin(self.margin) / 4

    def hit(self, held: Held | None) -> bool:
        """Say whether memory alone answers: fresh, or tolerated while a refresh elsewhere is awaited."""
        return self.accepts(held) or (
            held is not None and time.time() < held.defer_until and self.tolerates(held)
        )

    def served(self, held: Held | None, layer: str) -> AccessToken:
        """Return the token of ``held``, counted as a cache hit in ``layer`` (memory or the store's name)."""
        assert held is not None
        if metrics.on:  # on the hottest path (a memory hit): not even a call when metrics are off
            metrics.cache_hit(self.key, layer)
        return held.entry.token
