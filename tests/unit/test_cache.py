from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from airflow_tokens.cache import MEMORY, CacheEntry, TokenCache
from airflow_tokens.token import AccessToken

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class RawStore:
    """A shared store kept as raw text, as Variables keep it, so corrupt entries can be planted."""

    name = "raw"

    def __init__(self) -> None:
        self.raw: dict[str, str] = {}
        self.saves = 0

    def available(self) -> bool:
        return True

    def load(self, key: str) -> CacheEntry | None:
        if key not in self.raw:
            return None
        try:
            return CacheEntry.from_json(self.raw[key])
        except ValueError:
            return None

    def save(self, key: str, entry: CacheEntry) -> None:
        self.saves += 1
        self.raw[key] = entry.to_json()


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


def test_memory_reuses_until_margin_then_refreshes() -> None:
    vendor, cache = Vendor(1200), TokenCache()
    with time_machine.travel(T0, tick=False) as clock:
        assert cache.get("k", "fp", 60, vendor).token == "token-1"
        clock.shift(1139)
        assert cache.get("k", "fp", 60, vendor).token == "token-1"
        clock.shift(1)
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
    TokenCache(store).get("k", "fp", 60, vendor)
    MEMORY.clear()  # as if another worker process
    assert TokenCache(store).get("k", "fp", 60, vendor).token == "token-1"
    assert vendor.calls == 1
    assert store.saves == 1


@pytest.mark.parametrize(
    "raw",
    [
        "garbage",
        "{}",
        "[1, 2]",
        '{"format": "airflow-tokens/0", "token": "old"}',
        '{"format": "airflow-tokens/1", "fingerprint": "fp", "token": "", "token_type": "Bearer"}',
        '{"format": "airflow-tokens/1", "fingerprint": "fp", "token": "x", "token_type": "Bearer",'
        ' "expires_at": "soon", "obtained_at": 0}',
    ],
)
def test_corrupt_or_foreign_entry_is_replaced(raw: str) -> None:
    store, vendor = RawStore(), Vendor()
    store.raw["k"] = raw
    assert TokenCache(store).get("k", "fp", 60, vendor).token == "token-1"
    assert CacheEntry.from_json(store.raw["k"]).token.token == "token-1"


def test_store_failure_is_logged_and_memory_still_serves(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(RawStore):
        def load(self, key: str) -> CacheEntry | None:
            raise ConnectionError("api server down")

        def save(self, key: str, entry: CacheEntry) -> None:
            raise ConnectionError("api server down")

    vendor = Vendor()
    cache = TokenCache(Broken())
    assert cache.get("k", "fp", 60, vendor).token == "token-1"
    assert cache.get("k", "fp", 60, vendor).token == "token-1"
    assert vendor.calls == 1
    assert "Could not read the raw token cache" in caplog.text
    assert "Could not write the raw token cache" in caplog.text


def test_unusable_lock_file_falls_back_to_fetching(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import filelock

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
    vendor, store = Vendor(), RawStore()
    assert TokenCache(store).get("k", "fp", 60, vendor).token == "token-1"
    assert store.saves == 1
    assert "Cannot use the cross-process token lock" in caplog.text
