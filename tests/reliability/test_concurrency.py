"""Many threads and processes at once: single flight, expiry under load, shared Retry-After waits."""

from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_tokens.cache import TokenCache
from airflow_tokens.hooks.oauth2 import OAuth2ClientCredentialsHook
from airflow_tokens.sealing import EntrySeal
from airflow_tokens.testing import EmulatorServer, Fault
from airflow_tokens.token import AccessToken
from tests.reliability._hosts import FileStore
from tests.reliability._workers import ask_for_token, hold_lock_forever
from tests.vendors import OAUTH2, SIRV

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import pytest


def _run_threads(count: int, target: Any) -> None:
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait()
        target()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_expiry_under_load(token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """32 threads until four tokens were handed out, tokens living 3 s: none past its hand-out limit.

    From its refresh point a token is still handed out while it is refreshed beside the callers, until
    a quarter of its margin is left: no call that began after that limit was answered with it.
    """
    token_emulator.client.configure("oauth2", lifetime=3)
    OAUTH2.configure(monkeypatch, token_emulator.url)
    margin = 60.0  # capped at a quarter of the 3 s lifetime: tokens are replaced 0.75 s before expiry
    give_up = time.monotonic() + 120  # a guard only: the threads stop after the fourth token
    late: list[float] = []
    received: dict[str, AccessToken] = {}

    def caller() -> None:
        hook = OAuth2ClientCredentialsHook(cache="memory", refresh_margin=margin)
        while len(received) < 4 and time.monotonic() < give_up:
            asked = time.time()  # before the call: a slow hand-out cannot make a fresh token look late
            token = hook.get_access_token()
            limit = token.expires_at.timestamp() - token.effective_margin(margin) / 4
            if asked >= limit:
                late.append(asked - limit)
            received[token.token] = token
            time.sleep(0.005)

    _run_threads(32, caller)
    requests_made = token_emulator.client.token_requests("oauth2")
    assert len(received) >= 4
    assert late == []  # no call that began after a token's hand-out limit was answered with it
    # Every fetched token was handed out and is one the emulator issued; none was fetched twice.
    assert sorted(received) == sorted(token_emulator.client.issued_tokens())
    assert len(received) == requests_made
    # A token is replaced only once its refresh point has passed: 3 s - 0.75 s after it was obtained.
    obtained = sorted(token.obtained_at for token in received.values())
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(obtained)]
    assert min(gaps) >= 2.25 - 0.05


def test_429_retry_after_makes_concurrent_callers_wait_together(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    OAUTH2.configure(monkeypatch, token_emulator.url)
    token_emulator.client.inject("oauth2", Fault.status(429, retry_after="1"))
    tokens: list[str] = []
    started = time.monotonic()
    _run_threads(16, lambda: tokens.append(OAuth2ClientCredentialsHook(cache="memory").get_token()))
    assert time.monotonic() - started >= 0.9  # a lower bound: a slow machine only adds to it
    assert tokens == token_emulator.client.issued_tokens() * 16
    assert token_emulator.client.token_requests("oauth2") == 2  # the 429, then one success


def sirv_connection(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    """Define a Sirv connection of its own (so its cache key and lock are new) for spawned workers."""
    conn_id = f"sirv_{name}_{os.getpid()}_{time.time_ns()}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(SIRV.conn(emulator.url)))
    return conn_id


def run_workers(conn_id: str, store: Path, count: int, lock_timeout: float) -> list[tuple[str, float]]:
    """Spawn ``count`` processes that ask ``SirvTokenHook`` for a token at once; return what each got."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start = ctx.Barrier(count + 1)  # released once every worker has imported and read its connection
    procs = [
        ctx.Process(target=ask_for_token, args=(conn_id, str(store), lock_timeout, start, out))
        for _ in range(count)
    ]
    for proc in procs:
        proc.start()
    try:
        start.wait(timeout=300)
        return [out.get(timeout=300) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()


def test_processes_with_a_cold_cache_make_one_request(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn_id = sirv_connection(token_emulator, monkeypatch, "cold")
    results = run_workers(conn_id, tmp_path, 8, lock_timeout=300)
    assert [token for token, _ in results] == token_emulator.client.issued_tokens() * 8
    assert token_emulator.client.token_requests("sirv") == 1


@contextlib.contextmanager
def lock_holder(key: str) -> Iterator[Any]:
    """Run a process that takes the cross-process lock of cache key ``key`` and holds it; kill it after."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=hold_lock_forever, args=(key, ready))
    holder.start()
    try:
        assert ready.wait(30)
        yield holder
    finally:
        holder.kill()
        holder.join()


def _fresh(value: str) -> AccessToken:
    now = datetime.now(UTC)
    return AccessToken(value, "Bearer", now + timedelta(hours=1), now)


def test_a_killed_lock_holder_does_not_block_others(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn_id = sirv_connection(token_emulator, monkeypatch, "killed")
    with lock_holder(f"sirv.{conn_id}") as holder:  # the hook's cache key
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
        [(token, took)] = run_workers(conn_id, tmp_path, 1, lock_timeout=300)
    assert took < 60  # well under the 300 s lock timeout: the dead holder's lock was not waited for
    assert [token] == token_emulator.client.issued_tokens()
    assert token_emulator.client.token_requests("sirv") == 1


def _key(name: str) -> str:
    return f"test.{name}-{os.getpid()}-{time.time_ns()}"


def _seal(key: str) -> EntrySeal:
    return EntrySeal(b"client-id:client-secret", key)


def test_a_stuck_lock_holder_delays_others_only_up_to_the_lock_timeout(tmp_path: Path) -> None:
    calls: list[str] = []
    key = _key("stuck-holder")
    with lock_holder(key):
        started = time.monotonic()
        token = TokenCache(FileStore(str(tmp_path)), lock_timeout=1).get(
            key, "fp", 60, lambda: calls.append("fetch") or _fresh("fresh-token"), seal=_seal(key)
        )
        waited = time.monotonic() - started
    assert token.token == "fresh-token"
    assert 1 <= waited < 60  # the lock timeout, far from the holder's 600 s
    assert calls == ["fetch"]


def test_without_the_cross_process_lock_a_held_lock_is_not_waited_for(tmp_path: Path) -> None:
    key = _key("lock-off")
    with lock_holder(key):
        cache = TokenCache(FileStore(str(tmp_path)), lock_timeout=300, cross_process_lock=False)
        started = time.monotonic()
        token = cache.get(key, "fp", 60, lambda: _fresh("unlocked"), seal=_seal(key))
        waited = time.monotonic() - started
    assert token.token == "unlocked"
    assert waited < 60  # well under the 300 s lock timeout
