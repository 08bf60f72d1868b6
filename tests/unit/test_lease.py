"""The deployment-wide lease, seen from one process: other hosts are played by planted leases and entries."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from airflow_tokens.cache import TokenCache, _Ask
from airflow_tokens.memory import MEMORY
from airflow_tokens.memory import Held as _Held
from airflow_tokens.sealing import CacheEntry
from airflow_tokens.stores import Lease
from airflow_tokens.token import AccessToken
from tests.unit.test_cache import SEAL, RawStore, Vendor


def _other_host(store: RawStore, seconds: float = 30.0) -> Lease:
    lease = Lease("other-host:1:abcd", time.time() + seconds)
    store.lease["k"] = lease
    return lease


def _store_token(store: RawStore, value: str, lifetime: float = 1200) -> None:
    now = datetime.now(UTC)
    token = AccessToken(value, "Bearer", now + timedelta(seconds=lifetime), now)
    store.save("k", SEAL.seal(CacheEntry(token, "fp", "other-host")))


def test_cold_start_waits_for_the_lease_holders_token() -> None:
    store, vendor = RawStore(), Vendor()
    _other_host(store)
    timer = threading.Timer(0.6, _store_token, (store, "from-other-host"))
    timer.start()
    token = TokenCache(store, poll=0.05).get("k", "fp", 60, vendor, seal=SEAL)
    timer.join()
    assert token.token == "from-other-host"
    assert vendor.calls == 0
    assert store.lease_writes == 0


def test_a_lapsed_lease_is_taken_over(caplog: pytest.LogCaptureFixture) -> None:
    store, vendor = RawStore(), Vendor()
    _other_host(store, seconds=0.5)  # a holder that died: it never stores a token
    token = TokenCache(store, poll=0.05, settle=0.01).get("k", "fp", 60, vendor, seal=SEAL)
    assert token.token == "token-1"
    assert vendor.calls == 1
    assert (
        "The refresh lease of other-host:1:abcd on k lapsed without a new token; taking over" in caplog.text
    )
    assert store.lease == {}  # given up after the fetch


def test_during_anothers_refresh_the_current_token_is_handed_out_without_waiting() -> None:
    store, vendor = RawStore(), Vendor(lifetime=8)  # margin 60 s is capped at a quarter: 2 s
    cache = TokenCache(store, poll=0.05, settle=0.01)
    with time_machine.travel(time.time(), tick=False) as clock:
        assert cache.get("k", "fp", 60, vendor, seal=SEAL).token == "token-1"
        clock.shift(7.1)  # past every refresh point (8 - 2 + 1 at the latest), 0.9 s of life left
        _other_host(store)
        started = time.monotonic()
        assert cache.get("k", "fp", 60, vendor, seal=SEAL).token == "token-1"
        assert time.monotonic() - started < 5  # served at once: no wait for the other host
        writes = store.lease_writes
        assert cache.get("k", "fp", 60, vendor, seal=SEAL).token == "token-1"  # from memory for a while
        assert store.lease_writes == writes
        clock.shift(0.5)  # under a quarter of the margin left: no longer handed out; the other host's is
        _store_token(store, "from-other-host", lifetime=8)
        assert cache.get("k", "fp", 60, vendor, seal=SEAL).token == "from-other-host"
    assert vendor.calls == 1


def test_a_lost_lease_confirmation_waits_for_the_winner() -> None:
    class Racing(RawStore):
        def save_lease(self, key: str, lease: Lease) -> None:
            super().save_lease(key, lease)
            # another host wrote its lease just after ours: it wins the read-back
            self.lease[key] = Lease("winner:2:ffff", time.time() + 30)
            threading.Timer(0.3, _store_token, (self, "from-winner")).start()

    store, vendor = Racing(), Vendor()
    token = TokenCache(store, poll=0.05, settle=0.01).get("k", "fp", 60, vendor, seal=SEAL)
    assert token.token == "from-winner"
    assert vendor.calls == 0


def test_a_lease_that_cannot_be_written_means_one_fetch(caplog: pytest.LogCaptureFixture) -> None:
    class ReadOnly(RawStore):
        def save_lease(self, key: str, lease: Lease) -> None:
            raise PermissionError("variables are read-only here")

    store, vendor = ReadOnly(), Vendor()
    assert TokenCache(store).get("k", "fp", 60, vendor, seal=SEAL).token == "token-1"
    assert vendor.calls == 1
    assert "Could not write the refresh lease for k (PermissionError); fetching" in caplog.text


def test_a_failed_fetch_gives_the_lease_up() -> None:
    store = RawStore()

    def refused() -> AccessToken:
        raise RuntimeError("vendor down")

    with pytest.raises(RuntimeError, match="vendor down"):
        TokenCache(store, settle=0.01).get("k", "fp", 60, refused, seal=SEAL)
    assert store.lease_writes == 1
    assert store.lease == {}


def test_lease_seconds_zero_turns_the_lease_off() -> None:
    store, vendor = RawStore(), Vendor()
    _other_host(store)
    assert TokenCache(store, lease_seconds=0).get("k", "fp", 60, vendor, seal=SEAL).token == "token-1"
    assert vendor.calls == 1
    assert store.lease_writes == 0


def test_refresh_points_spread_over_the_first_half_of_the_margin() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    token = AccessToken("t", "Bearer", now + timedelta(seconds=1200), now)
    early, late = _Held(CacheEntry(token, "fp"), jitter=0.0), _Held(CacheEntry(token, "fp"), jitter=1.0)
    ask = _Ask("k", "fp", 60, False, None)
    with time_machine.travel(now + timedelta(seconds=1139), tick=False):
        assert ask.accepts(early)
        assert ask.accepts(late)
    with time_machine.travel(now + timedelta(seconds=1141), tick=False):
        assert not ask.accepts(early)  # 1200 - 60
        assert ask.accepts(late)
    with time_machine.travel(now + timedelta(seconds=1171), tick=False):
        assert not ask.accepts(late)  # 1200 - 30
        assert ask.tolerates(late)
    with time_machine.travel(now + timedelta(seconds=1186), tick=False):
        assert not ask.tolerates(late)  # a quarter of the margin left: never handed out
    MEMORY.clear()


@pytest.mark.parametrize("until", ["clock-ahead", "forever"])
def test_a_lease_is_waited_for_no_longer_than_lease_seconds_by_this_processs_clock(until: str) -> None:
    store, vendor = RawStore(), Vendor()
    # A host whose clock runs 10 minutes ahead writes until = its now + 30 s; another writes infinity.
    lease = _other_host(store, seconds=630) if until == "clock-ahead" else None
    if lease is None:
        store.lease["k"] = Lease("other-host:1:abcd", float("inf"))
    started = time.monotonic()
    token = TokenCache(store, poll=0.05, settle=0.01, lease_seconds=1.0).get("k", "fp", 60, vendor, seal=SEAL)
    waited = time.monotonic() - started
    assert token.token == "token-1"
    assert vendor.calls == 1  # the holder stored nothing: this process took over, once
    assert store.lease == {}  # its own lease, given up after the fetch
    assert 1.0 <= waited < 10  # at least its own lease time, never the lease's own (10 min or forever)
