"""What this process remembers: the tokens it holds, one lock per key, the connections it resolved.

The table is process-wide: every hook object and every cache of the process share it, so N threads
or coroutines asking for one token cause one fetch. :func:`mask_once` registers each token handed
out with Airflow's secrets masker, once per process.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_tokens.sealing import CacheEntry
    from airflow_tokens.token import AccessToken


@dataclass(slots=True)
class Held:
    """A token this process holds, with its own spread of the refresh point and any deferral."""

    entry: CacheEntry
    #: 0..1: how late, within the first half of the margin, this process starts refreshing.
    jitter: float = 0.0
    #: While another process or host refreshes, or while backing off after a failed refresh, hand the
    #: token out from memory until then.
    defer_until: float = 0.0


_masked: set[str] = set()


def masked(token: AccessToken) -> bool:
    """Say whether ``token`` is registered with the secrets masker in this process."""
    return token.token in _masked


def mask_once(token: AccessToken) -> None:
    """Register the token with Airflow's secrets masker, once per process."""
    if token.token in _masked:
        return
    from airflow.sdk.log import mask_secret

    mask_secret(token.token)
    _masked.add(token.token)


class _Memory:
    """The process-wide table of cached tokens, with one lock per key for single-flight fetches."""

    def __init__(self) -> None:
        self.entries: dict[str, Held] = {}
        #: What hooks resolved from their connection, reused by new hook objects for a short while.
        self.profiles: dict[Any, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        #: Per key, how many refreshes failed in a row (the back-off grows with them).
        self.failures: dict[str, int] = {}
        #: Keys refreshed in the background right now (one refresh per key and process at a time).
        self.refreshing: set[str] = set()
        #: The background refreshes running on event loops (a reference keeps each task alive).
        self.tasks: set[asyncio.Task[Any]] = set()
        self._alocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )
        self._guard = threading.Lock()

    def lock(self, key: str) -> threading.Lock:
        """Return the thread lock of ``key``."""
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def alock(self, key: str) -> asyncio.Lock:
        """Return the asyncio lock of ``key`` on the running loop (it never blocks the loop)."""
        loop = asyncio.get_running_loop()
        with self._guard:
            return self._alocks.setdefault(loop, {}).setdefault(key, asyncio.Lock())

    def claim_refresh(self, key: str) -> bool:
        """Say whether a background refresh of ``key`` may start (none runs): it is then this caller's."""
        with self._guard:
            if key in self.refreshing:
                return False
            self.refreshing.add(key)
            return True

    def release_refresh(self, key: str) -> None:
        """Mark the background refresh of ``key`` ended."""
        with self._guard:
            self.refreshing.discard(key)

    def clear(self) -> None:
        """Forget every token and profile."""
        self.entries.clear()
        self.profiles.clear()
        self.failures.clear()


MEMORY = _Memory()


def clear_memory_cache() -> None:
    """Forget every token and connection cached in this process (shared stores are untouched)."""
    MEMORY.clear()


def forget_connections() -> None:
    """Make new hooks re-read their connection now rather than within ``CONNECTION_TTL`` seconds."""
    MEMORY.profiles.clear()
