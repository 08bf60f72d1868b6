"""Code run in spawned processes; it imports no more than the cache itself needs."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import filelock
import requests

from airflow_tokens.cache import CacheEntry, TokenCache, _lock_path
from airflow_tokens.token import AccessToken


class FileStore:
    """A shared store in a JSON file, standing in for the Variable outside a task."""

    name = "file"

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def available(self) -> bool:
        return True

    def load(self, key: str) -> CacheEntry | None:
        return CacheEntry.from_json(self.path.read_text()) if self.path.exists() else None

    def save(self, key: str, entry: CacheEntry) -> None:
        self.path.write_text(entry.to_json())


def ask_for_token(url: str, store: str, key: str, start_at: float, out: Any) -> None:
    """Ask for a token in a fresh process: memory empty, the shared store maybe filled by another."""

    def fetch() -> AccessToken:
        payload = requests.post(
            f"{url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=("emulator-client-id", "emulator-client-secret"),
            timeout=10,
        ).json()
        now = datetime.now(UTC)
        return AccessToken(payload["access_token"], "Bearer", now + timedelta(seconds=3600), now)

    time.sleep(max(0.0, start_at - time.time()))
    token = TokenCache(FileStore(store), lock_timeout=30).get(key, "fp", 60, fetch)
    out.put(token.token)


def hold_lock_forever(key: str, ready: Any) -> None:
    lock = filelock.FileLock(_lock_path(key))
    lock.acquire()
    ready.set()
    time.sleep(600)
