"""The metrics of airflow-tokens, sent through Airflow's own metrics (StatsD, Datadog or OpenTelemetry).

Every name starts with :data:`PREFIX` and carries the vendor (the connection type) and the outcome in
the name itself, since plain StatsD drops tags; the vendor and the connection id also go as tags to the
backends that keep them. Airflow's ``[metrics]`` configuration decides whether and where they go, and
its ``statsd_prefix`` comes in front. With metrics off (Airflow's default) each function returns after
one test of :data:`on`. A metric that cannot be sent is logged once and metrics are then off in that process:
a token is never refused because of a metric.

=====================================================  =======  ==========================================
name                                                   kind     counts
=====================================================  =======  ==========================================
``airflow_tokens.token_request.<vendor>.<outcome>``    counter  HTTP token requests sent; ``<outcome>`` is
                                                                ``success``, ``http_<status>``,
                                                                ``transport_error`` or ``bad_response``
``airflow_tokens.token_retry.<vendor>``                counter  token requests sent again after a failure
``airflow_tokens.fetch_time.<vendor>``                 timer    ms to obtain a new token, retries included
``airflow_tokens.cache_hit.<vendor>.<layer>``          counter  tokens handed out from ``memory``, or from
                                                                the shared store, ``variable`` or ``xcom``
``airflow_tokens.cache_miss.<vendor>``                 counter  cache lookups that fetched a new token
``airflow_tokens.lease.<vendor>.<event>``              counter  refresh leases ``taken``, ``waited`` for
                                                                (another host refreshes), ``lapsed``
``airflow_tokens.token_request.<vendor>.served_stale`` counter  failed refreshes ridden out: the token
                                                                held, still valid, was handed out
``airflow_tokens.refresh.<vendor>.background``         counter  refreshes started off the caller's path
=====================================================  =======  ==========================================
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: The first part of every metric name.
PREFIX = "airflow_tokens"
#: Airflow's ``[metrics]`` options that turn a metrics backend on.
_BACKEND_OPTIONS = ("statsd_on", "statsd_datadog_enabled", "otel_on")

#: False once Airflow's metrics are known to be off in this process (or a metric failed): then every
#: function here returns at once, and a hot path may test it before calling one.
on = True
#: The task SDK's ``Stats``, once metrics are known to be on.
_stats: Any = None


def enabled() -> bool:
    """Say whether Airflow's metrics are on (read once per process from its configuration)."""
    global on, _stats
    if on and _stats is None:
        from airflow.sdk.configuration import conf

        if any(conf.getboolean("metrics", option, fallback=False) for option in _BACKEND_OPTIONS):
            # The Stats class (not 3.3's module functions): Airflow 3.2 has only the class.
            from airflow.sdk.observability.stats import Stats

            _stats = Stats
        else:
            on = False
    return on


def reset() -> None:
    """Read Airflow's metrics configuration again at the next metric (after it changed in this process)."""
    global on, _stats
    on, _stats = True, None


def _send(kind: str, name: str, vendor: str, conn_id: str, *value: float) -> None:
    """Send one metric through the task SDK's stats, or turn metrics off if that fails."""
    global on
    if not enabled():
        return
    try:
        getattr(_stats, kind)(f"{PREFIX}.{name}", *value, tags={"vendor": vendor, "conn_id": conn_id})
    except Exception as exc:
        on = False
        log.warning("Cannot send airflow-tokens metrics (%s: %s); sending no more", type(exc).__name__, exc)


def outcome(error: BaseException | None) -> str:
    """Name the outcome of one token request: success, http_<status>, transport_error or bad_response."""
    from airflow_tokens.exceptions import TokenRequestError, TokenResponseError

    if error is None:
        return "success"
    if isinstance(error, TokenRequestError):
        return f"http_{error.status}" if error.status is not None else "transport_error"
    if isinstance(error, TokenResponseError):
        return "bad_response"
    return "error"


def token_request(vendor: str, conn_id: str, error: BaseException | None) -> None:
    """Count one token request sent for ``vendor``; ``error`` is why it failed, None if it succeeded."""
    if on:
        _send("incr", f"token_request.{vendor}.{outcome(error)}", vendor, conn_id)


def token_retry(vendor: str, conn_id: str) -> None:
    """Count one token request about to be sent again."""
    if on:
        _send("incr", f"token_retry.{vendor}", vendor, conn_id)


def fetch_time(vendor: str, conn_id: str, seconds: float) -> None:
    """Time one fetch that obtained a token, retries and their waits included."""
    if on:
        _send("timing", f"fetch_time.{vendor}", vendor, conn_id, seconds * 1000.0)


def cache_hit(key: str, layer: str) -> None:
    """Count a token handed out from ``layer`` (memory, variable or xcom) for key ``<vendor>.<conn_id>``."""
    if on:
        vendor, _, conn_id = key.partition(".")
        _send("incr", f"cache_hit.{vendor}.{layer}", vendor, conn_id)


def _count(key: str, name: str) -> None:
    """Count one event of cache key ``<vendor>.<conn_id>``; ``{vendor}`` in ``name`` is the vendor."""
    if on:
        vendor, _, conn_id = key.partition(".")
        _send("incr", name.format(vendor=vendor), vendor, conn_id)


def cache_miss(key: str) -> None:
    """Count a cache lookup that fetched a new token."""
    _count(key, "cache_miss.{vendor}")


def lease(key: str, event: str) -> None:
    """Count a refresh lease ``taken``, ``waited`` for or ``lapsed``."""
    _count(key, "lease.{vendor}." + event)


def served_stale(key: str) -> None:
    """Count a failed refresh ridden out on the token held, which was still valid."""
    _count(key, "token_request.{vendor}.served_stale")


def background_refresh(key: str) -> None:
    """Count a refresh started in the background while the caller got the token held."""
    _count(key, "refresh.{vendor}.background")
