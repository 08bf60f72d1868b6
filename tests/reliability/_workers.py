"""Code run in spawned processes: each drives the real Sirv hook, as a task on another worker would."""

from __future__ import annotations

import time
from typing import Any

import filelock

from airflow_tokens.cache import TokenCache
from airflow_tokens.hostlock import lock_path as _lock_path
from tests.reliability._hosts import FileStore


def ask_for_token(conn_id: str, store: str, lock_timeout: float, start: Any, out: Any) -> None:
    """
    Get a token through ``SirvTokenHook`` in a fresh process: memory empty, the file store shared.

    The connection comes from the ``AIRFLOW_CONN_*`` variable the process inherited. The hook reads it
    before ``start`` (a barrier) lets every worker ask at once; ``out`` receives the token and the
    seconds ``get_token()`` took.
    """
    from airflow_tokens.hooks.sirv import SirvTokenHook

    # One host: the lease is off, the host's file lock is under test.
    cache = TokenCache(FileStore(store), lock_timeout=lock_timeout, lease_seconds=0)
    hook = SirvTokenHook(sirv_conn_id=conn_id, cache=cache)
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
