"""Metrics in one process: Airflow's own StatsD logger, configured as a deployment does, to a listener."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import pytest
import tenacity

from airflow_tokens import metrics
from airflow_tokens.cache import TokenCache
from airflow_tokens.exceptions import TokenRequestError, TokenResponseError
from airflow_tokens.hooks.sirv import SirvTokenHook
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.testing import Fault
from tests.statsd import StatsdListener
from tests.unit.test_cache import SEAL, RawStore, Vendor
from tests.unit.test_lease import _other_host, _store_token
from tests.vendors import SIRV

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_tokens.testing import EmulatorServer

NO_WAIT = RetryPolicy(max_attempts=3).retrying(wait=tenacity.wait_none())


def _initialize_airflow_stats() -> None:
    """Let the task SDK's stats pick its backend from the configuration, as a task process does at start."""
    from airflow.sdk.observability.metrics import stats_utils
    from airflow.sdk.observability.stats import Stats

    if inspect.signature(stats_utils.get_stats_factory).parameters:  # Airflow 3.2: the factory takes Stats
        Stats.initialize(factory=stats_utils.get_stats_factory(Stats))
    else:
        Stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    metrics.reset()


@pytest.fixture
def statsd() -> Iterator[StatsdListener]:
    """Turn Airflow's StatsD metrics on, sent to a listener on loopback; off again afterwards."""
    with StatsdListener(prefix="airflow.") as listener, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
        patch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
        patch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(listener.port))
        patch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
        _initialize_airflow_stats()
        try:
            yield listener
        finally:
            patch.undo()
            _initialize_airflow_stats()


def _ours(listener: StatsdListener) -> dict[str, int]:
    listener.drain()
    return {name: count for name, count in listener.counters().items() if name.startswith("airflow_tokens.")}


@pytest.fixture
def sirv_conn(token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    SIRV.configure(monkeypatch, token_emulator.url)
    return token_emulator


def _hook(**options: object) -> SirvTokenHook:
    return SirvTokenHook(retry=NO_WAIT, **options)  # type: ignore[arg-type]


def test_each_token_request_is_counted_by_vendor_and_outcome(
    statsd: StatsdListener, sirv_conn: EmulatorServer
) -> None:
    sirv_conn.client.inject("sirv", Fault.status(503))
    _hook().fetch_access_token()
    sirv_conn.client.inject("sirv", Fault.html())
    with pytest.raises(TokenResponseError):
        _hook().fetch_access_token()
    sirv_conn.client.inject("sirv", Fault.status(401))
    with pytest.raises(TokenRequestError):
        _hook().fetch_access_token()
    assert _ours(statsd) == {
        "airflow_tokens.token_request.sirv.http_503": 1,
        "airflow_tokens.token_retry.sirv": 1,
        "airflow_tokens.token_request.sirv.success": 1,
        "airflow_tokens.token_request.sirv.bad_response": 1,
        "airflow_tokens.token_request.sirv.http_401": 1,
    }
    assert sirv_conn.client.token_requests("sirv") == 4
    [fetch_ms] = statsd.timers()["airflow_tokens.fetch_time.sirv"]  # only the fetch that got a token
    assert fetch_ms > 0


def test_a_request_that_gets_no_answer_is_a_transport_error(
    statsd: StatsdListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_cli import free_port

    SIRV.configure(monkeypatch, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(TokenRequestError):
        _hook().fetch_access_token()
    assert _ours(statsd) == {
        "airflow_tokens.token_request.sirv.transport_error": 3,
        "airflow_tokens.token_retry.sirv": 2,
    }


def test_cache_lookups_count_the_layer_that_answered(
    statsd: StatsdListener, sirv_conn: EmulatorServer
) -> None:
    hook = _hook(cache="memory")
    for _ in range(3):
        hook.get_token()
    _hook(cache="memory").get_token(force_refresh=True)
    store = RawStore()
    _store_token(store, "from-the-store")
    store.raw["sirv.stored"] = store.raw.pop("k")
    assert TokenCache(store).get("sirv.stored", "fp", 60, Vendor(), seal=SEAL).token == "from-the-store"
    assert _ours(statsd) == {
        "airflow_tokens.cache_miss.sirv": 2,
        "airflow_tokens.cache_hit.sirv.memory": 2,
        "airflow_tokens.cache_hit.sirv.raw": 1,  # the store's name: variable or xcom in Airflow
        "airflow_tokens.token_request.sirv.success": 2,
    }


def test_lease_events_are_counted(statsd: StatsdListener) -> None:
    store = RawStore()
    _other_host(store, seconds=0.5)  # a holder that died: waited for, lapses, taken over
    store.lease["sirv.k"] = store.lease.pop("k")
    TokenCache(store, poll=0.05, settle=0.01).get("sirv.k", "fp", 60, Vendor(), seal=SEAL)
    assert _ours(statsd) == {
        "airflow_tokens.lease.sirv.waited": 1,
        "airflow_tokens.lease.sirv.lapsed": 1,
        "airflow_tokens.lease.sirv.taken": 1,
        "airflow_tokens.cache_miss.sirv": 1,
    }


def test_with_metrics_off_nothing_is_sent(sirv_conn: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with StatsdListener(prefix="airflow.") as listener:
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(listener.port))
        metrics.reset()
        hook = _hook(cache="memory")
        hook.get_token()
        hook.get_token()
        assert metrics.enabled() is False
        assert _ours(listener) == {}
    assert sirv_conn.client.token_requests("sirv") == 1


def test_a_failing_metrics_backend_never_fails_a_token(
    statsd: StatsdListener, sirv_conn: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def incr(self, *args: object, **kwargs: object) -> None:
            raise OSError("no route to the metrics backend")

    metrics.enabled()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "_stats", Broken())
        hook = _hook(cache="memory")
        assert hook.get_token() == hook.get_token()
    assert "Cannot send airflow-tokens metrics (OSError: no route to the metrics backend)" in caplog.text
    assert caplog.text.count("Cannot send airflow-tokens metrics") == 1  # then off in this process
    assert metrics.enabled() is False
