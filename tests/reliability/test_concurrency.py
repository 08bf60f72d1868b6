"""Many threads and processes at once: single flight, expiry under load, shared Retry-After waits."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_tokens.cache import MEMORY, TokenCache
from airflow_tokens.hooks.oauth2 import OAuth2ClientCredentialsHook
from airflow_tokens.testing import EmulatorServer, Fault
from airflow_tokens.token import AccessToken
from tests.reliability._workers import FileStore, ask_for_token, hold_lock_forever
from tests.vendors import OAUTH2

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
    """32 threads for 10 s, tokens living 3 s: nobody gets a token past its refresh point."""
    token_emulator.client.configure("oauth2", lifetime=3)
    OAUTH2.configure(monkeypatch, token_emulator.url)
    margin = 60.0  # capped at a quarter of the 3 s lifetime: tokens are replaced 0.75 s before expiry
    stop_at = time.monotonic() + 10
    late: list[float] = []
    received: dict[str, AccessToken] = {}

    def caller() -> None:
        hook = OAuth2ClientCredentialsHook(cache="memory", refresh_margin=margin)
        while time.monotonic() < stop_at:
            token = hook.get_access_token()
            now = time.time()
            if now >= token.refresh_at(margin):
                late.append(now - token.refresh_at(margin))
            received[token.token] = token
            time.sleep(0.005)

    _run_threads(32, caller)
    requests_made = token_emulator.client.token_requests("oauth2")
    assert late == []
    assert len(received) == requests_made  # every fetched token was handed out, none fetched twice
    # one refresh per usable lifetime (3 s - 0.75 s): about 10 / 2.25 + the first one
    assert 4 <= requests_made <= 6
    obtained = sorted(token.obtained_at for token in received.values())
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(obtained)]
    assert min(gaps) >= 2.25 - 0.1


def test_429_retry_after_makes_concurrent_callers_wait_together(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    OAUTH2.configure(monkeypatch, token_emulator.url)
    token_emulator.client.inject("oauth2", Fault.status(429, retry_after="1"))
    tokens: list[str] = []
    started = time.monotonic()
    _run_threads(16, lambda: tokens.append(OAuth2ClientCredentialsHook(cache="memory").get_token()))
    assert time.monotonic() - started >= 0.9
    assert len(tokens) == 16
    assert len(set(tokens)) == 1
    assert token_emulator.client.token_requests("oauth2") == 2  # the 429, then one success


def test_processes_with_a_cold_cache_make_one_request(token_emulator: EmulatorServer, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    key = f"test.cold-start-{os.getpid()}-{time.time()}"
    start_at = time.time() + 3  # spawned interpreters need a moment to import
    procs = [
        ctx.Process(
            target=ask_for_token, args=(token_emulator.url, str(tmp_path / "store.json"), key, start_at, out)
        )
        for _ in range(8)
    ]
    for proc in procs:
        proc.start()
    tokens = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert len(set(tokens)) == 1
    assert token_emulator.client.token_requests("oauth2") == 1


@contextlib.contextmanager
def lock_holder(name: str) -> Iterator[tuple[str, Any]]:
    """Run a process that takes the cross-process lock of a new cache key and holds it; kill it after."""
    ctx = multiprocessing.get_context("spawn")
    key = f"test.{name}-{os.getpid()}-{time.time()}"
    ready = ctx.Event()
    holder = ctx.Process(target=hold_lock_forever, args=(key, ready))
    holder.start()
    try:
        assert ready.wait(30)
        yield key, holder
    finally:
        holder.kill()
        holder.join()


def _fresh(value: str) -> AccessToken:
    now = datetime.now(UTC)
    return AccessToken(value, "Bearer", now + timedelta(hours=1), now)


def test_a_killed_lock_holder_does_not_block_others(token_emulator: EmulatorServer, tmp_path: Path) -> None:
    with lock_holder("killed-holder") as (key, holder):
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()

        MEMORY.clear()
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        started = time.monotonic()
        worker = ctx.Process(
            target=ask_for_token, args=(token_emulator.url, str(tmp_path / "s.json"), key, time.time(), out)
        )
        worker.start()
        assert out.get(timeout=30)
        worker.join(timeout=30)
    assert time.monotonic() - started < 15  # process start-up plus one request, no lock wait
    assert token_emulator.client.token_requests("oauth2") == 1


def test_a_stuck_lock_holder_delays_others_only_up_to_the_lock_timeout(tmp_path: Path) -> None:
    calls: list[str] = []
    with lock_holder("stuck-holder") as (key, _):
        started = time.monotonic()
        token = TokenCache(FileStore(str(tmp_path / "s.json")), lock_timeout=1).get(
            key, "fp", 60, lambda: calls.append("fetch") or _fresh("fresh-token")
        )
        waited = time.monotonic() - started
    assert token.token == "fresh-token"
    assert 1 <= waited < 5
    assert calls == ["fetch"]


def test_without_the_cross_process_lock_a_held_lock_is_not_waited_for(tmp_path: Path) -> None:
    with lock_holder("lock-off") as (key, _):
        cache = TokenCache(FileStore(str(tmp_path / "s.json")), lock_timeout=30, cross_process_lock=False)
        started = time.monotonic()
        token = cache.get(key, "fp", 60, lambda: _fresh("unlocked"))
        waited = time.monotonic() - started
    assert token.token == "unlocked"
    assert waited < 1
