"""Token caches: process memory in front, an optional shared store (Variable, XCom) behind it."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import filelock

from airflow_tokens.token import AccessToken

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

#: Version tag of every cache entry this package writes; entries of any other shape are ignored.
ENTRY_FORMAT = "airflow-tokens/1"


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """
    Pair a token with the fingerprint of the credentials and request that produced it.

    :param token: the cached token.
    :param fingerprint: digest of the request that obtained it (see ``TokenRequest.fingerprint``).
    """

    token: AccessToken
    fingerprint: str

    def to_json(self) -> str:
        """Serialise for a shared store (the result contains the token)."""
        return json.dumps({"format": ENTRY_FORMAT, "fingerprint": self.fingerprint, **self.token.to_dict()})

    @classmethod
    def from_json(cls, raw: Any) -> CacheEntry:
        """Parse :meth:`to_json` output; raise ValueError on anything else."""
        data = json.loads(raw) if isinstance(raw, str | bytes) else raw
        if not isinstance(data, dict) or data.get("format") != ENTRY_FORMAT:
            raise ValueError("not an airflow-tokens cache entry")
        fingerprint = data.get("fingerprint")
        if not isinstance(fingerprint, str):
            raise ValueError("fingerprint missing")
        return cls(AccessToken.from_dict(data), fingerprint)


class SharedStore(Protocol):
    """A store that several processes share; every method may fail and must not be trusted blindly."""

    name: str

    def available(self) -> bool:
        """Say whether the store can be used in this process."""

    def load(self, key: str) -> CacheEntry | None:
        """Return the stored entry, or None when there is none or it is unusable."""

    def save(self, key: str, entry: CacheEntry) -> None:
        """Store the entry, replacing any other."""


def in_task() -> bool:
    """Say whether this process is running an Airflow task (Variables and XCom reachable)."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


class VariableStore:
    """Keep the token in an Airflow Variable, Fernet-encrypted at rest and masked in the UI and API."""

    name = "variable"

    def available(self) -> bool:
        """Say whether Variables can be read and written (only inside a task)."""
        return in_task()

    @staticmethod
    def variable_key(key: str) -> str:
        """Return the Variable key for a cache key; it contains ``token`` so Airflow masks its value."""
        return f"airflow_tokens.access_token.{key}"

    def load(self, key: str) -> CacheEntry | None:
        """Return the entry in the Variable, or None when absent or unusable."""
        from airflow.sdk import Variable

        raw = Variable.get(self.variable_key(key), default=None)
        if raw is None:
            return None
        try:
            return CacheEntry.from_json(raw)
        except ValueError as exc:
            log.warning("Ignoring unusable token cache Variable %s (%s)", self.variable_key(key), exc)
            return None

    def save(self, key: str, entry: CacheEntry) -> None:
        """Write the entry to the Variable."""
        from airflow.sdk import Variable

        Variable.set(
            self.variable_key(key),
            entry.to_json(),
            description="Access token cached by airflow-tokens (replaced automatically before expiry).",
        )


_masked: set[str] = set()


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
        self.entries: dict[str, CacheEntry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        self.entries.clear()


MEMORY = _Memory()


def clear_memory_cache() -> None:
    """Forget every token cached in this process (shared stores are untouched)."""
    MEMORY.clear()


def _lock_path(key: str) -> Path:
    folder = Path(tempfile.gettempdir()) / "airflow-tokens-locks"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.lock"


class TokenCache:
    """
    Hand out a fresh token from memory, then the shared store, else fetch one (once, under locks).

    :param store: the shared store behind process memory, or None for memory only.
    :param lock_timeout: seconds to wait for another process's fetch before fetching anyway.
    """

    def __init__(self, store: SharedStore | None = None, lock_timeout: float = 120.0) -> None:
        self.store = store
        self.lock_timeout = lock_timeout

    def _shared(self) -> SharedStore | None:
        if self.store is not None and self.store.available():
            return self.store
        return None

    def get(
        self,
        key: str,
        fingerprint: str,
        margin: float,
        fetch: Callable[[], AccessToken],
        *,
        force_refresh: bool = False,
        rejected: str | None = None,
    ) -> AccessToken:
        """
        Return a token fresh for ``margin`` seconds; ``fetch`` is called only when none is cached.

        ``force_refresh`` ignores every cached token; ``rejected`` ignores only that token value (one the
        vendor refused), so a token another caller already renewed is reused.
        """

        def usable(entry: CacheEntry | None) -> AccessToken | None:
            if (
                entry is None
                or force_refresh
                or entry.fingerprint != fingerprint
                or entry.token.token == rejected
                or not entry.token.is_fresh(margin)
            ):
                return None
            return entry.token

        if token := usable(MEMORY.entries.get(key)):
            return token
        with MEMORY.lock(key):
            if token := usable(MEMORY.entries.get(key)):
                return token
            store = self._shared()
            if store is None:
                return self._fetch_and_keep(key, fingerprint, fetch, None)
            if token := usable(self._load(store, key)):
                return token
            try:
                with filelock.FileLock(_lock_path(key), timeout=self.lock_timeout):
                    if token := usable(self._load(store, key)):
                        return token
                    return self._fetch_and_keep(key, fingerprint, fetch, store)
            except filelock.Timeout:
                log.warning("Waited %.0f s for another process's token fetch; fetching", self.lock_timeout)
                return self._fetch_and_keep(key, fingerprint, fetch, store)

    @staticmethod
    def _load(store: SharedStore, key: str) -> CacheEntry | None:
        """Read the shared entry and keep it in memory; a failing store is logged and treated as empty."""
        try:
            entry = store.load(key)
        except Exception as exc:
            log.warning("Could not read the %s token cache for %s: %s", store.name, key, type(exc).__name__)
            return None
        if entry is not None:
            MEMORY.entries[key] = entry
        return entry

    def _fetch_and_keep(
        self, key: str, fingerprint: str, fetch: Callable[[], AccessToken], store: SharedStore | None
    ) -> AccessToken:
        entry = CacheEntry(fetch(), fingerprint)
        MEMORY.entries[key] = entry
        if store is not None:
            try:
                store.save(key, entry)
            except Exception as exc:
                log.warning(
                    "Could not write the %s token cache for %s (%s); caching the token in this process only",
                    store.name,
                    key,
                    type(exc).__name__,
                )
        return entry.token
