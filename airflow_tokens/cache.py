"""The cache policy: process memory in front, an optional shared store (Variable, XCom) behind it.

:class:`TokenCache` holds the one cache policy. It is a sans-IO flow (see :mod:`airflow_tokens.flow`)
that the sync and the async paths both drive: memory, then the shared store, then the host's file
lock, then the deployment-wide lease, then one fetch. Entries in shared stores are sealed by
:mod:`airflow_tokens.sealing`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
import uuid
from typing import TYPE_CHECKING, cast

from airflow_tokens import metrics
from airflow_tokens.backoff import failure_name, next_wait, rides_out
from airflow_tokens.flow import Call, Sleep, arun, run
from airflow_tokens.freshness import Ask
from airflow_tokens.hostlock import file_lock, try_lock
from airflow_tokens.memory import MEMORY, Held
from airflow_tokens.options import LEASE_SECONDS, default
from airflow_tokens.sealing import CacheEntry, UnusableEntry
from airflow_tokens.stores import HOSTNAME, Lease
from airflow_tokens.token import AccessToken

if TYPE_CHECKING:
    from collections.abc import Callable

    import filelock

    from airflow_tokens.flow import Flow
    from airflow_tokens.sealing import EntrySeal
    from airflow_tokens.stores import LeasingStore, SharedStore

    #: What a cache calls for a new token: a flow (the hooks), or a plain function (tests, scripts).
    Fetch = Callable[[], Flow[AccessToken] | AccessToken]

__all__ = ["TokenCache"]

log = logging.getLogger(__name__)


def _background_failed(key: str, exc: Exception) -> None:
    """Log a failed background refresh; one that says the request is wrong is the next caller's error."""
    log.warning("The background refresh of %s failed: %s", key, exc)
    if not rides_out(exc):
        # A revoked secret is not hidden behind the token held: the next call refreshes in the
        # caller's path, and reports it.
        MEMORY.entries.pop(key, None)


def _kind(exc: BaseException) -> str:
    """Name an error for a log line (its message may quote what was stored)."""
    return type(exc).__name__


class TokenCache:
    """
    Hand out a fresh token from memory, then the shared store, else fetch one: once per host, once per
    deployment.

    On a shared-store miss, processes of one host take turns through a file lock, and hosts through a
    lease kept beside the token in the store (written, then confirmed by reading it back after a short
    settle). With a shared store, each process starts refreshing at a point it draws between the
    refresh margin and half of it before expiry, so hosts do not all refresh at once. Whoever holds a
    token with a quarter of its margin left keeps handing it out while another process or host
    refreshes; whoever holds none waits for the new token, at most ``lock_timeout`` for the host's lock
    and the lease's own time for another host. Any failure of the lock or the lease means one extra
    request, never a hang or an error.

    :param store: the shared store behind process memory, or None for memory only.
    :param lock_timeout: seconds to wait for another process's fetch on this host before fetching anyway.
    :param cross_process_lock: whether processes on one host fetch one at a time (a file lock); turn it
        off only where file locks do not work.
    :param lease_seconds: how long a host may take to refresh for the deployment before another takes
        over; 0 turns the lease off (each host then fetches for itself).
    :param settle: seconds between writing a lease and reading it back to confirm it.
    :param poll: seconds between looks at the store while waiting for another's token.
    """

    def __init__(
        self,
        store: SharedStore | None = None,
        lock_timeout: float = 120.0,
        *,
        cross_process_lock: bool = True,
        lease_seconds: float = default(LEASE_SECONDS),
        settle: float = 0.5,
        poll: float = 0.25,
    ) -> None:
        self.store = store
        self.lock_timeout = lock_timeout
        self.cross_process_lock = cross_process_lock
        self.lease_seconds = lease_seconds
        self.settle = settle
        self.poll = poll

    def _shared(self) -> SharedStore | None:
        if self.store is not None and self.store.available():
            return self.store
        return None

    def get(
        self,
        key: str,
        fingerprint: str,
        margin: float,
        fetch: Fetch,
        *,
        seal: EntrySeal | None = None,
        force_refresh: bool = False,
        rejected: str | None = None,
    ) -> AccessToken:
        """
        Return a token fresh for ``margin`` seconds; ``fetch`` is called only when none is cached.

        ``force_refresh`` ignores every cached token; ``rejected`` ignores only that token value (one the
        vendor refused), so a token another caller already renewed is reused. ``seal`` encrypts what the
        shared store keeps (required with a store).
        """
        ask = Ask(key, fingerprint, margin, force_refresh, rejected)
        held = MEMORY.entries.get(key)
        if ask.hit(held):
            return ask.served(held, "memory")
        if ask.early(held):  # refresh beside the caller (unless a refresh already runs), hand out held
            if MEMORY.claim_refresh(key):
                threading.Thread(
                    target=self._background,
                    args=(ask, fetch, seal),
                    name="airflow-tokens-refresh",
                    daemon=True,
                ).start()
            return ask.served(held, "memory")
        with MEMORY.lock(key):
            return run(self.flow(ask, fetch, seal))

    def _background(self, ask: Ask, fetch: Fetch, seal: EntrySeal | None) -> None:
        """Refresh off the caller's path (a thread); a failure is logged, the caller has its token."""
        metrics.background_refresh(ask.key)
        try:
            with MEMORY.lock(ask.key):
                run(self.flow(ask, fetch, seal))
        except Exception as exc:
            _background_failed(ask.key, exc)
        finally:
            MEMORY.release_refresh(ask.key)

    async def _abackground(self, ask: Ask, fetch: Fetch, seal: EntrySeal | None) -> None:
        """Refresh off the caller's path (a task on the loop); a failure is logged."""
        metrics.background_refresh(ask.key)
        try:
            async with MEMORY.alock(ask.key):
                await arun(self.flow(ask, fetch, seal))
        except Exception as exc:
            _background_failed(ask.key, exc)
        finally:
            MEMORY.release_refresh(ask.key)

    async def aget(
        self,
        key: str,
        fingerprint: str,
        margin: float,
        fetch: Fetch,
        *,
        seal: EntrySeal | None = None,
        force_refresh: bool = False,
        rejected: str | None = None,
    ) -> AccessToken:
        """Return a token as :meth:`get` does, without blocking the event loop."""
        ask = Ask(key, fingerprint, margin, force_refresh, rejected)
        held = MEMORY.entries.get(key)
        if ask.hit(held):
            return ask.served(held, "memory")
        if ask.early(held):  # refresh beside the caller (unless a refresh already runs), hand out held
            if MEMORY.claim_refresh(key):
                task = asyncio.get_running_loop().create_task(self._abackground(ask, fetch, seal))
                MEMORY.tasks.add(task)
                task.add_done_callback(MEMORY.tasks.discard)
            return ask.served(held, "memory")
        async with MEMORY.alock(key):
            return await arun(self.flow(ask, fetch, seal))

    def flow(self, ask: Ask, fetch: Fetch, seal: EntrySeal | None) -> Flow[AccessToken]:
        """Return the token for ``ask``: the one cache policy, as a flow that either driver runs."""
        held = MEMORY.entries.get(ask.key)
        if ask.accepts(held):
            return ask.served(held, "memory")
        store = self._shared()
        if store is None:
            return (yield from self._fetch(ask, fetch, None, seal, lease=None))
        if seal is None:
            raise TypeError("a TokenCache with a shared store needs the connection's EntrySeal")
        held = yield from self._load(store, ask, seal)
        if ask.accepts(held):
            return ask.served(held, store.name)
        lock = file_lock(ask.key) if self.cross_process_lock else None
        locked = yield from self._lock(lock, ask, held)
        if isinstance(locked, AccessToken):
            return locked
        try:
            if locked:
                held = yield from self._load(store, ask, seal)
                if ask.accepts(held):
                    return ask.served(held, store.name)
            lease: Lease | None = None
            if store.leases and self.lease_seconds > 0 and not ask.force_refresh:
                outcome = yield from self._lease(cast("LeasingStore", store), ask, seal, held)
                if isinstance(outcome, AccessToken):
                    return outcome
                lease = outcome
            return (yield from self._fetch(ask, fetch, store, seal, lease=lease))
        finally:
            if locked:
                assert lock is not None
                lock.release()

    def _defer(self, ask: Ask, held: Held, wait: float) -> AccessToken:
        """Hand out ``held`` from memory for ``wait`` seconds while someone else refreshes."""
        held.defer_until = time.time() + wait
        return ask.served(held, "memory")

    def _load(self, store: SharedStore, ask: Ask, seal: EntrySeal) -> Flow[Held | None]:
        """Read and open the shared entry and keep it in memory; a failing or foreign one counts as none."""
        try:
            raw = yield Call(store.load, (ask.key,))
        except Exception as exc:
            log.warning("Could not read the %s token cache for %s: %s", store.name, ask.key, _kind(exc))
            return None
        if raw is None:
            return None
        if not seal.ready:
            yield Call(seal.prepare)  # a memory-hard key derivation: off the event loop
        try:
            entry = seal.open(raw)
        except UnusableEntry as exc:
            log.warning("Ignoring the %s token cache entry for %s: %s", store.name, ask.key, exc)
            return None
        current = MEMORY.entries.get(ask.key)
        if current is not None and current.entry == entry:
            return current
        held = Held(entry, random.random())
        MEMORY.entries[ask.key] = held
        return held

    def _lock(self, lock: filelock.FileLock | None, ask: Ask, held: Held | None) -> Flow[bool | AccessToken]:
        """Take the host's lock; True when taken, a token to hand out while another process refreshes."""
        if lock is None:
            return False
        started = time.monotonic()
        while True:
            try:
                if (yield Call(try_lock, (lock,))):
                    return True
            except OSError as exc:
                log.warning("Cannot use the cross-process token lock (%s); fetching without it", exc)
                return False
            if held is not None and ask.tolerates(held):
                return self._defer(ask, held, self.poll)
            if time.monotonic() - started >= self.lock_timeout:
                log.warning("Waited %.0f s for another process's token fetch; fetching", self.lock_timeout)
                return False
            yield Sleep(0.05)

    def _lease(
        self, store: LeasingStore, ask: Ask, seal: EntrySeal, held: Held | None
    ) -> Flow[Lease | AccessToken | None]:
        """
        Return the lease this process now holds, a token another host refreshes or stored, or None.

        None means the lease could not be written or confirmed: fetch anyway.
        """
        me = f"{HOSTNAME}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # When this process first saw each lease, by its own clock: another host's clock (or an absurd
        # ``until``) never makes it wait longer than ``lease_seconds`` for one holder.
        first_seen: dict[Lease, float] = {}
        for attempt in range(4):
            if attempt:
                held = yield from self._load(store, ask, seal)
                if ask.accepts(held):
                    return ask.served(held, store.name)
            try:
                current = yield Call(store.load_lease, (ask.key,))
            except Exception as exc:
                log.warning("Could not read the refresh lease for %s (%s); fetching", ask.key, _kind(exc))
                return None
            give_up_at = (
                first_seen.setdefault(current, time.monotonic()) + self.lease_seconds if current else 0
            )
            if current is not None and current.until > time.time() and time.monotonic() < give_up_at:
                if held is not None and ask.tolerates(held):
                    # A back-off note: no attempt before it ends; another's refresh: look again soon.
                    wait = current.until - time.time() if current.failure else 4 * self.poll
                    return self._defer(ask, held, wait)
                token = yield from self._await_holder(store, ask, seal, current, give_up_at)
                if token is not None:
                    return token
                continue
            failures = current.failures if current is not None and current.failure else 0
            mine = Lease(me, time.time() + self.lease_seconds, failures=failures)
            try:
                yield Call(store.save_lease, (ask.key, mine))
                yield Sleep(self.settle)
                seen = yield Call(store.load_lease, (ask.key,))
            except Exception as exc:
                log.warning("Could not write the refresh lease for %s (%s); fetching", ask.key, _kind(exc))
                return None
            if seen == mine:
                metrics.lease(ask.key, "taken")
                return mine
        log.warning("Could not obtain the refresh lease for %s; fetching", ask.key)
        return None

    def _await_holder(
        self, store: LeasingStore, ask: Ask, seal: EntrySeal, lease: Lease, give_up_at: float
    ) -> Flow[AccessToken | None]:
        """Wait for the token the lease holder stores; None once the lease lapses or changes hands.

        The lease lapses at its ``until`` or, by this process's own clock, at ``give_up_at``.
        """
        metrics.lease(ask.key, "waited")
        while time.time() < lease.until and time.monotonic() < give_up_at:
            yield Sleep(self.poll * (0.8 + 0.4 * random.random()))
            held = yield from self._load(store, ask, seal)
            if ask.accepts(held):
                return ask.served(held, store.name)
            try:
                if (yield Call(store.load_lease, (ask.key,))) != lease:
                    return None
            except Exception:
                return None  # the caller reads it again and reports
        metrics.lease(ask.key, "lapsed")
        log.warning(
            "The refresh lease of %s on %s lapsed without a new token; taking over", lease.holder, ask.key
        )
        return None

    def _fetch(
        self,
        ask: Ask,
        fetch: Fetch,
        store: SharedStore | None,
        seal: EntrySeal | None,
        *,
        lease: Lease | None,
    ) -> Flow[AccessToken]:
        """Fetch, keep the token in memory and the store, give up the lease."""
        metrics.cache_miss(ask.key)
        try:
            started = fetch()
            token = started if isinstance(started, AccessToken) else (yield from started)
        except Exception as exc:
            held = MEMORY.entries.get(ask.key)
            wait = self._back_off(ask, held, lease, exc)
            if lease is not None and store is not None:
                if wait is None:
                    yield from self._release(cast("LeasingStore", store), ask.key)
                else:
                    yield from self._note_failure(cast("LeasingStore", store), ask, lease, exc, wait)
            if wait is not None and held is not None and ask.tolerates(held):
                left = held.entry.token.expires_at.timestamp() - time.time()
                log.warning(
                    "Refreshing the token of %s failed (%s); handing out the token held, valid %.0f s more; "
                    "next attempt in %.1f s",
                    ask.key,
                    exc,
                    left,
                    wait,
                )
                metrics.served_stale(ask.key)
                return held.entry.token
            raise
        MEMORY.failures.pop(ask.key, None)
        entry = CacheEntry(token, ask.fingerprint, HOSTNAME)
        MEMORY.entries[ask.key] = Held(entry, random.random() if store is not None else 0.0)
        if store is not None and seal is not None:
            if not seal.ready:
                yield Call(seal.prepare)
            try:
                yield Call(store.save, (ask.key, seal.seal(entry)))
            except Exception as exc:
                log.warning(
                    "Could not write the %s token cache for %s (%s); caching the token in this process only",
                    store.name,
                    ask.key,
                    _kind(exc),
                )
            if lease is not None:
                yield from self._release(cast("LeasingStore", store), ask.key)
        return token

    def _back_off(self, ask: Ask, held: Held | None, lease: Lease | None, exc: Exception) -> float | None:
        """
        Return how long to wait before the next attempt after ``exc``; None when it is not ridden out
        (see :mod:`airflow_tokens.backoff`). The wait never runs past the point where the token held
        stops being handed out, which it is until then.
        """
        if not rides_out(exc):
            return None
        failures = max(MEMORY.failures.get(ask.key, 0), lease.failures if lease is not None else 0)
        wait = next_wait(exc, failures)
        if held is not None and ask.tolerates(held):
            wait = min(wait, ask.serve_limit(held) - time.time())
            held.defer_until = time.time() + wait
        wait = max(0.0, wait)
        MEMORY.failures[ask.key] = failures + 1
        return wait

    def _note_failure(
        self, store: LeasingStore, ask: Ask, lease: Lease, exc: Exception, wait: float
    ) -> Flow[None]:
        """Replace this process's lease by a back-off note: the whole deployment waits ``wait`` seconds."""
        note = Lease(lease.holder, time.time() + wait, failure_name(exc), lease.failures + 1)
        try:
            yield Call(store.save_lease, (ask.key, note))
        except Exception as failure:
            log.warning(
                "Could not write the back-off of %s (%s); it is kept in this process", ask.key, _kind(failure)
            )

    @staticmethod
    def _release(store: LeasingStore, key: str) -> Flow[None]:
        try:
            yield Call(store.clear_lease, (key,))
        except Exception as exc:
            log.warning("Could not clear the refresh lease for %s (%s); it lapses by itself", key, _kind(exc))
