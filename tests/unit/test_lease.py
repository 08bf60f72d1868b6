"""The deployment-wide lease, seen from one process: other hosts are played by planted leases and entries."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from airflow_tokens.cache import TokenCache
from airflow_tokens.freshness import Ask as _Ask
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


class FailingVendor:
    """Answer every token request with a 503 (after its retries), counting them."""

    def __init__(self, retry_after: float | None = None) -> None:
        self.calls = 0
        self.retry_after = retry_after

    def __call__(self) -> AccessToken:
        from airflow_tokens.exceptions import TokenRequestError

        self.calls += 1
        raise TokenRequestError(
            "c", "https://vendor.example/token", attempts=5, status=503, retry_after=self.retry_after
        )


def test_a_failed_refresh_makes_the_whole_deployment_back_off_on_the_token_it_holds() -> None:
    from airflow_tokens.memory import clear_memory_cache

    store, failing = RawStore(), FailingVendor(retry_after=30)
    _store_token(store, "held-by-all", lifetime=120)  # margin 60 capped at 30: refreshed from 30 s left
    # 14 s left: past every refresh point a process draws (30 to 15 s left), handed out for 6.5 s more.
    with time_machine.travel(time.time() + 106, tick=True):
        cache = TokenCache(store, poll=0.05, settle=0.01)
        # Host A's caller gets the token held at once; its refresh runs beside it, and fails.
        assert cache.get("k", "fp", 60, failing, seal=SEAL).token == "held-by-all"
        deadline = time.monotonic() + 10
        while MEMORY.refreshing and time.monotonic() < deadline:
            time.sleep(0.01)
        assert failing.calls == 1
        note = store.lease["k"]
        assert note.failure == "HTTP 503"
        assert note.failures == 1
        # Retry-After (30 s) is cut to when the held token stops being handed out (6.5 s from now).
        assert time.time() + 4 < note.until < time.time() + 7
        # Host B, and C, D...: a fresh process each, the same token held; they honour the note.
        for _ in range(3):
            clear_memory_cache()
            assert cache.get("k", "fp", 60, failing, seal=SEAL).token == "held-by-all"
            assert cache.get("k", "fp", 60, failing, seal=SEAL).token == "held-by-all"
            while MEMORY.refreshing and time.monotonic() < deadline:
                time.sleep(0.01)
        assert failing.calls == 1  # one attempt for the deployment in the back-off period


def test_a_back_off_note_never_holds_a_cold_start_longer_than_the_back_off() -> None:
    store, vendor = RawStore(), Vendor()
    store.lease["k"] = Lease("other-host:1:abcd", time.time() + 1.0, "HTTP 503", 3)  # no token stored
    started = time.monotonic()
    token = TokenCache(store, poll=0.05, settle=0.01).get("k", "fp", 60, vendor, seal=SEAL)
    assert token.token == "token-1"
    assert vendor.calls == 1
    assert time.monotonic() - started < 5  # about the back-off's 1 s, never lease_seconds (30) or more
    assert store.lease == {}  # the fetch that succeeded took the note away


def test_status_names_a_back_off_note_and_its_failure() -> None:
    from airflow_tokens.inventory import LeaseState

    now = time.time()
    state = LeaseState.of(Lease("host-1:42:abcd", now + 30, "HTTP 503", 2).to_json(), now)
    assert (state.state, state.seconds, state.failure) == ("backing off", 30, "HTTP 503")
    assert state.to_text() == "backing off for 30 s after HTTP 503"
    assert Lease.from_json(Lease("h:1:x", now + 1, "HTTP 429", 3).to_json()) == Lease(
        "h:1:x", now + 1, "HTTP 429", 3
    )
