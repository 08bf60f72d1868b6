"""Token caches: process memory in front, an optional shared store (Variable, XCom) behind it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from airflow_tokens.exceptions import TokenCacheError
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


XCOM_FORMAT = "airflow-tokens/xcom/1"


def require_fernet(conn_id: str) -> Any:
    """Return the deployment's Fernet; refuse when none is configured (never fall back to plain text)."""
    from airflow.sdk.crypto import get_fernet

    fernet = get_fernet()
    if not getattr(fernet, "is_encrypted", False):
        raise TokenCacheError(
            conn_id,
            "XCom token caching needs a Fernet key so the token is never stored in plain text: "
            "set [core] fernet_key (environment variable AIRFLOW__CORE__FERNET_KEY)",
        )
    return fernet


def encode_envelope(conn_id: str, entry: CacheEntry) -> dict[str, Any]:
    """Return the XCom value for a token: metadata in clear, token and fingerprint Fernet-encrypted."""
    secret = json.dumps({"token": entry.token.token, "fingerprint": entry.fingerprint})
    token = entry.token
    return {
        "format": XCOM_FORMAT,
        "conn_id": conn_id,
        "token_type": token.token_type,
        "expires_at": token.expires_at.isoformat(),
        "obtained_at": token.obtained_at.isoformat(),
        "scope": list(token.scope) if token.scope is not None else None,
        "encrypted": require_fernet(conn_id).encrypt(secret.encode()).decode(),
    }


def decode_envelope(conn_id: str, value: Any) -> CacheEntry:
    """Return the entry inside an XCom envelope; raise ValueError when it is foreign or undecryptable."""
    from cryptography.fernet import InvalidToken

    if not isinstance(value, dict) or value.get("format") != XCOM_FORMAT:
        raise ValueError("not an airflow-tokens token envelope")
    try:
        secret = json.loads(require_fernet(conn_id).decrypt(str(value.get("encrypted", "")).encode()))
        expires_at = datetime.fromisoformat(value["expires_at"])
        obtained_at = datetime.fromisoformat(value["obtained_at"])
    except (InvalidToken, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"undecryptable or malformed envelope ({type(exc).__name__})") from None
    data = {**value, **secret, "expires_at": expires_at.timestamp(), "obtained_at": obtained_at.timestamp()}
    return CacheEntry.from_json({**data, "format": ENTRY_FORMAT})


class XComStore:
    """
    Read the token a :class:`~airflow_tokens.operators.token.FetchTokenOperator` pushed, in this DAG run.

    :param task_id: the producing task.
    :param conn_id: the connection (for messages).
    """

    name = "xcom"

    def __init__(self, task_id: str, conn_id: str) -> None:
        self.task_id = task_id
        self.conn_id = conn_id

    def available(self) -> bool:
        """Say whether XCom can be read (only inside a task)."""
        return in_task()

    def load(self, key: str) -> CacheEntry | None:
        """Return the producer's token, or None when absent, foreign or undecryptable."""
        from airflow.sdk import get_current_context

        value = get_current_context()["ti"].xcom_pull(task_ids=self.task_id)
        if value is None:
            log.warning("Task %s pushed no token envelope; fetching a token", self.task_id)
            return None
        try:
            return decode_envelope(self.conn_id, value)
        except ValueError as exc:
            log.warning("Ignoring the token envelope of task %s: %s", self.task_id, exc)
            return None

    def save(self, key: str, entry: CacheEntry) -> None:
        """Keep a token fetched here in this process only: only the producer task pushes to XCom."""


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
        #: What hooks resolved from their connection, reused by new hook objects for a short while.
        self.profiles: dict[Any, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        self.entries.clear()
        self.profiles.clear()


MEMORY = _Memory()


def clear_memory_cache() -> None:
    """Forget every token and connection cached in this process (shared stores are untouched)."""
    MEMORY.clear()


def forget_connections() -> None:
    """Make new hooks re-read their connection now rather than within ``CONNECTION_TTL`` seconds."""
    MEMORY.profiles.clear()


def _lock_path(key: str) -> Path:
    folder = Path(tempfile.gettempdir()) / f"airflow-tokens-locks-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.lock"


class TokenCache:
    """
    Hand out a fresh token from memory, then the shared store, else fetch one (once, under locks).

    :param store: the shared store behind process memory, or None for memory only.
    :param lock_timeout: seconds to wait for another process's fetch before fetching anyway.
    :param cross_process_lock: whether processes on one host fetch one at a time (a file lock); turn it
        off only where file locks do not work.
    """

    def __init__(
        self,
        store: SharedStore | None = None,
        lock_timeout: float = 120.0,
        *,
        cross_process_lock: bool = True,
    ) -> None:
        self.store = store
        self.lock_timeout = lock_timeout
        self.cross_process_lock = cross_process_lock

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
            if not self.cross_process_lock:
                return self._fetch_and_keep(key, fingerprint, fetch, store)
            import filelock  # only a shared-store miss takes the cross-process lock

            try:
                with filelock.FileLock(_lock_path(key), timeout=self.lock_timeout):
                    if token := usable(self._load(store, key)):
                        return token
                    return self._fetch_and_keep(key, fingerprint, fetch, store)
            except filelock.Timeout:
                log.warning("Waited %.0f s for another process's token fetch; fetching", self.lock_timeout)
                return self._fetch_and_keep(key, fingerprint, fetch, store)
            except OSError as exc:
                log.warning("Cannot use the cross-process token lock (%s); fetching without it", exc)
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
