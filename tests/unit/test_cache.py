from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from airflow_tokens.cache import TokenCache
from airflow_tokens.memory import MEMORY
from airflow_tokens.sealing import EntrySeal
from airflow_tokens.stores import Lease
from airflow_tokens.token import AccessToken

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SEAL = EntrySeal(b"client-id:client-secret", "k")


class RawStore:
    """A shared store kept as raw text, as Variables keep it, so corrupt entries can be planted."""

    name = "raw"
    leases = True

    def __init__(self) -> None:
        self.raw: dict[str, str] = {}
        self.lease: dict[str, Lease] = {}
        self.saves = 0
        self.lease_writes = 0

    def available(self) -> bool:
        return True

    def load(self, key: str) -> str | None:
        return self.raw.get(key)

    def save(self, key: str, value: dict[str, object]) -> None:
        self.saves += 1
        self.raw[key] = json.dumps(value)

    def load_lease(self, key: str) -> Lease | None:
        return self.lease.get(key)

    def save_lease(self, key: str, lease: Lease) -> None:
        self.lease_writes += 1
        self.lease[key] = lease

    def clear_lease(self, key: str) -> None:
        self.lease.pop(key, None)


class Vendor:
    """Issue numbered tokens that live ``lifetime`` seconds and count the requests."""

    def __init__(self, lifetime: float = 1200, delay: float = 0.0) -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.calls = 0

    def __call__(self) -> AccessToken:
        self.calls += 1
        time.sleep(self.delay)
        now = datetime.now(UTC)
        return AccessToken(f"token-{self.calls}", "Bearer", now + timedelta(seconds=self.lifetime), now)


def wait_for_background_refreshes(timeout: float = 10.0) -> None:
    """Wait until no background refresh runs in this process."""
    deadline = time.monotonic() + timeout
    while MEMORY.refreshing and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not MEMORY.refreshing


def test_memory_reuses_until_margin_then_refreshes() -> None:
    vendor, cache = Vendor(1200), TokenCache()
    with time_machine.travel(T0, tick=False) as clock:
        assert cache.get("k", "fp", 60, vendor).token == "token-1"
        clock.shift(1139)
        assert cache.get("k", "fp", 60, vendor).token == "token-1"
        clock.shift(1)
        # Past the refresh point the caller gets the token held at once; the refresh runs beside it.
        assert cache.get("k", "fp", 60, vendor).token == "token-1"
        wait_for_background_refreshes()
        assert cache.get("k", "fp", 60, vendor).token == "token-2"
    assert vendor.calls == 2


def test_changed_fingerprint_never_gets_the_old_token() -> None:
    vendor, cache = Vendor(), TokenCache()
    assert cache.get("k", "old-secret", 60, vendor).token == "token-1"
    assert cache.get("k", "new-secret", 60, vendor).token == "token-2"


def test_force_refresh_and_rejected_token() -> None:
    vendor, cache = Vendor(), TokenCache()
    cache.get("k", "fp", 60, vendor)
    assert cache.get("k", "fp", 60, vendor, force_refresh=True).token == "token-2"
    # a token rejected earlier but already replaced is not replaced again
    assert cache.get("k", "fp", 60, vendor, rejected="token-1").token == "token-2"
    assert cache.get("k", "fp", 60, vendor, rejected="token-2").token == "token-3"
    assert vendor.calls == 3


def test_32_threads_cause_one_fetch() -> None:
    vendor, cache = Vendor(delay=0.2), TokenCache()
    barrier = threading.Barrier(32)
    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.get("k", "fp", 60, vendor).token)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert vendor.calls == 1
    assert results == ["token-1"] * 32


def test_shared_store_serves_a_new_process() -> None:
    store, vendor = RawStore(), Vendor()
    TokenCache(store, settle=0).get("k", "fp", 60, vendor, seal=SEAL)
    MEMORY.clear()  # as if another worker process
    assert TokenCache(store).get("k", "fp", 60, vendor, seal=SEAL).token == "token-1"
    assert vendor.calls == 1
    assert store.saves == 1
    assert store.lease_writes == 1  # the first process leased the refresh, and gave the lease up
    assert store.lease == {}


@pytest.mark.parametrize(
    "raw",
    [
        "garbage",
        "{}",
        "[1, 2]",
        '{"format": "airflow-tokens/0", "token": "old"}',
        # what 0.1.0 wrote: the token in clear
        '{"format": "airflow-tokens/1", "fingerprint": "fp", "token": "tok", "token_type": "Bearer",'
        ' "expires_at": 4102444800, "obtained_at": 0}',
        '{"format": "airflow-tokens/2", "token_type": "Bearer", "expires_at": 4102444800, '
        '"obtained_at": 0, "scope": null, "obtained_by": "h", "sealed": "bm90IGNpcGhlcnRleHQ="}',
    ],
)
def test_corrupt_foreign_or_old_entry_is_replaced(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    store, vendor = RawStore(), Vendor()
    store.raw["k"] = raw
    assert TokenCache(store, settle=0).get("k", "fp", 60, vendor, seal=SEAL).token == "token-1"
    assert SEAL.open(store.raw["k"]).token.token == "token-1"
    assert "Ignoring the raw token cache entry for k" in caplog.text


def test_store_failure_is_logged_and_memory_still_serves(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(RawStore):
        def load(self, key: str) -> str | None:
            raise ConnectionError("api server down")

        def save(self, key: str, value: dict[str, object]) -> None:
            raise ConnectionError("api server down")

        def load_lease(self, key: str) -> Lease | None:
            raise ConnectionError("api server down")

    vendor = Vendor()
    cache = TokenCache(Broken())
    assert cache.get("k", "fp", 60, vendor, seal=SEAL).token == "token-1"
    assert cache.get("k", "fp", 60, vendor, seal=SEAL).token == "token-1"
    assert vendor.calls == 1
    assert "Could not read the raw token cache" in caplog.text
    assert "Could not read the refresh lease for k (ConnectionError); fetching" in caplog.text
    assert "Could not write the raw token cache" in caplog.text


def test_unusable_lock_file_falls_back_to_fetching(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import filelock

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
    vendor, store = Vendor(), RawStore()
    assert TokenCache(store, settle=0).get("k", "fp", 60, vendor, seal=SEAL).token == "token-1"
    assert store.saves == 1
    assert "Cannot use the cross-process token lock" in caplog.text
