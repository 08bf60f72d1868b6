"""Code run in spawned processes: each drives the real Sirv hook, as a task on another worker would."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import filelock

from airflow_tokens.cache import Lease, TokenCache, _lock_path


class FileStore:
    """A shared store in a JSON file, standing in for the Variable outside a task (one host: no lease)."""

    name = "file"
    leases = False

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def available(self) -> bool:
        return True

    def load(self, key: str) -> Any:
        return json.loads(self.path.read_text()) if self.path.exists() else None

    def save(self, key: str, value: dict[str, Any]) -> None:
        self.path.write_text(json.dumps(value))

    def load_lease(self, key: str) -> Lease | None:
        return None

    def save_lease(self, key: str, lease: Lease) -> None:
        """Keep no lease: the processes share one host, whose file lock is under test."""

    def clear_lease(self, key: str) -> None:
        """Keep no lease."""


def ask_for_token(conn_id: str, store: str, lock_timeout: float, start: Any, out: Any) -> None:
    """
    Get a token through ``SirvTokenHook`` in a fresh process: memory empty, the file store shared.

    The connection comes from the ``AIRFLOW_CONN_*`` variable the process inherited. The hook reads it
    before ``start`` (a barrier) lets every worker ask at once; ``out`` receives the token and the
    seconds ``get_token()`` took.
    """
    from airflow_tokens.hooks.sirv import SirvTokenHook

    hook = SirvTokenHook(sirv_conn_id=conn_id, cache=TokenCache(FileStore(store), lock_timeout=lock_timeout))
    assert hook.token_request.url  # the connection is read and checked before the start
    start.wait()
    started = time.monotonic()
    token = hook.get_token()
    out.put((token, time.monotonic() - started))


def hold_lock_forever(key: str, ready: Any) -> None:
    lock = filelock.FileLock(_lock_path(key))
    lock.acquire()
    ready.set()
    time.sleep(600)
