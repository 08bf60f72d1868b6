"""Measurements that run in a fresh interpreter: ``python -m bench.workers NAME JSON_ARGS``.

Each worker prints one line ``BENCH-RESULT <json>``. Only the standard library is imported at module
scope, so import and memory figures measure what the worker imports, nothing else.
"""

from __future__ import annotations

import gc
import json
import re
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

RESULT_PREFIX = "BENCH-RESULT "


def _rounds(loops: dict[str, Callable[[int], None]], rounds: int, batch: int) -> dict[str, list[float]]:
    """
    Time every loop ``rounds`` times, ``batch`` calls each, in a rotating order; return ns per call.

    Rotating the order each round spreads the noise of a shared machine evenly over the variants.
    """
    names = list(loops)
    for loop in loops.values():  # warm up
        loop(batch)
    samples: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    for number in range(rounds):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            loop = loops[name]
            began = clock()
            loop(batch)
            samples[name].append((clock() - began) / batch)
        if number % 20 == 19:
            gc.collect()
    return samples


def cache_hit(args: dict[str, Any]) -> dict[str, Any]:
    """
    Cost of a cached token: airflow-tokens' memory cache vs requests-auth's cached path vs authlib's check.

    args: ``emulator`` (URL), ``rounds``, ``batch``.
    """
    import requests
    from authlib.oauth2.rfc6749 import OAuth2Token  # type: ignore[import-untyped, unused-ignore]
    from requests_auth import OAuth2ClientCredentials

    from airflow_tokens.hooks.sirv import SirvTokenHook
    from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorClient

    url: str = args["emulator"]
    emulator = EmulatorClient(url)
    hook = SirvTokenHook(cache="memory")
    token = hook.get_token()  # the one fetch; every call below is a cache hit
    auth = OAuth2ClientCredentials(f"{url}/oauth2/token", EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET)
    prepared = requests.Request("GET", f"{url}/protected").prepare()
    auth(prepared)  # the one fetch of requests-auth
    authlib_token = OAuth2Token({"access_token": token, "token_type": "Bearer", "expires_in": 1200})
    if authlib_token.is_expired() is not False:
        raise RuntimeError("authlib token should not be expired")
    before = emulator.stats()["token_requests"]

    def airflow_tokens_new_hook(n: int) -> None:
        for _ in range(n):
            SirvTokenHook(cache="memory").get_token()

    def airflow_tokens_reused_hook(n: int) -> None:
        get = hook.get_token
        for _ in range(n):
            get()

    def requests_auth_cached(n: int) -> None:
        for _ in range(n):
            auth(prepared)

    def authlib_is_expired(n: int) -> None:
        check = authlib_token.is_expired
        for _ in range(n):
            check()

    def empty_loop(n: int) -> None:
        for _ in range(n):
            pass

    def new_hook_only(n: int) -> None:
        for _ in range(n):
            SirvTokenHook(cache="memory")

    def new_hook_profile(n: int) -> None:
        for _ in range(n):
            SirvTokenHook(cache="memory")._profile  # noqa: B018

    def token_is_fresh(n: int) -> None:
        fresh = hook.get_access_token().is_fresh
        for _ in range(n):
            fresh(60.0)

    samples = _rounds(
        {
            "airflow_tokens_new_hook": airflow_tokens_new_hook,
            "airflow_tokens_reused_hook": airflow_tokens_reused_hook,
            "requests_auth_cached": requests_auth_cached,
            "authlib_is_expired": authlib_is_expired,
            "empty_loop": empty_loop,
            "new_hook_only": new_hook_only,
            "new_hook_profile": new_hook_profile,
            "token_is_fresh": token_is_fresh,
        },
        int(args["rounds"]),
        int(args["batch"]),
    )
    after = emulator.stats()["token_requests"]
    return {
        "samples": samples,
        "token_requests_during_timing": {
            "sirv": after["sirv"] - before["sirv"],
            "oauth2": after["oauth2"] - before["oauth2"],
        },
        "header": prepared.headers["Authorization"].startswith("Bearer "),
    }


def metrics_cost(args: dict[str, Any]) -> dict[str, Any]:
    """
    Cost of the metrics on a cache hit: off (Airflow's default) and on (StatsD to a loopback socket).

    args: ``rounds``, ``batch``. Airflow's StatsD metrics are configured on before Airflow is imported;
    the "off" variants then turn airflow-tokens' metrics off the way a process without metrics has them
    (its one flag), interleaved with the "on" variants in the same process.
    """
    import os
    import socket

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # receives and drops: nobody reads it
    sink.bind(("127.0.0.1", 0))
    os.environ.update(
        {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(sink.getsockname()[1]),
        }
    )
    from airflow_tokens import metrics
    from airflow_tokens.hooks.sirv import SirvTokenHook

    hook = SirvTokenHook(cache="memory")
    hook.get_token()  # the one fetch; every call below is a cache hit
    if not metrics.enabled():
        raise RuntimeError("Airflow's StatsD metrics did not come on")
    get, hit, key = hook.get_token, metrics.cache_hit, hook.cache_key

    def switch(on: bool) -> None:
        metrics.on = on

    def hit_metrics_off(n: int) -> None:
        switch(False)
        for _ in range(n):
            get()

    def hit_metrics_on(n: int) -> None:
        switch(True)
        for _ in range(n):
            get()

    def guard_off(n: int) -> None:
        switch(False)
        for _ in range(n):
            if metrics.on:  # what a memory hit runs for its metric
                hit(key, "memory")

    def metric_call_on(n: int) -> None:
        switch(True)
        for _ in range(n):
            hit(key, "memory")

    def empty_loop(n: int) -> None:
        for _ in range(n):
            pass

    samples = _rounds(
        {
            "hit_metrics_off": hit_metrics_off,
            "hit_metrics_on": hit_metrics_on,
            "guard_off": guard_off,
            "metric_call_on": metric_call_on,
            "empty_loop": empty_loop,
        },
        int(args["rounds"]),
        int(args["batch"]),
    )
    sink.close()
    return {"samples": samples}


def cold_fetch(args: dict[str, Any]) -> dict[str, Any]:
    """
    Cost of one token request: the hook's fetch path vs a bare ``requests`` POST to the same endpoint.

    args: ``rounds``. The connection ``sirv_default`` points at the emulator.
    """
    import requests

    from airflow_tokens.hooks.sirv import SirvTokenHook

    hook = SirvTokenHook(cache="none")
    request = hook.token_request
    url, body, headers = request.url, request.json, request.headers
    session = requests.Session()

    def bare_reused_session() -> None:
        response = session.post(url, json=body, timeout=(10.0, 30.0))
        response.raise_for_status()
        if not response.json()["token"]:
            raise RuntimeError("no token")

    def hook_fetch_access_token() -> None:
        hook._fetch()

    def hook_get_token_force_refresh() -> None:
        hook.get_token(force_refresh=True)

    def bare_new_session() -> None:
        with requests.Session() as fresh:
            response = fresh.post(url, json=body, timeout=(10.0, 30.0))
            response.raise_for_status()
            if not response.json()["token"]:
                raise RuntimeError("no token")

    def hook_new_hook_new_session() -> None:
        with requests.Session() as fresh:
            SirvTokenHook(cache="none", session=fresh)._fetch()

    calls: dict[str, Callable[[], None]] = {
        "bare_reused_session": bare_reused_session,
        "hook_fetch_access_token": hook_fetch_access_token,
        "bare_new_session": bare_new_session,
        "hook_new_hook_new_session": hook_new_hook_new_session,
    }
    for call in calls.values():  # warm up (connections, first-call imports)
        for _ in range(5):
            call()
    mask_before = _mask_cost()
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    for number in range(int(args["rounds"])):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            began = clock()
            calls[name]()
            samples[name].append(float(clock() - began))
    # Every forced refresh masks a new token; Airflow's masker slows down with each value it holds,
    # so this runs last, a fixed number of times, in order.
    forced: list[float] = []
    for _ in range(int(args.get("forced", 30))):
        began = clock()
        hook_get_token_force_refresh()
        forced.append(float(clock() - began))
    samples["hook_get_token_force_refresh"] = forced
    return {
        "samples": samples,
        "content_type": headers.get("Content-Type", ""),
        "breakdown": _fetch_breakdown(hook, int(args["rounds"])),
        "mask_secret_at_start": mask_before,
        "mask_secret_at_end": _mask_cost(),
        "tokens_masked": _masked_count(),
    }


def _mask_cost() -> float:
    """Return the median ns of ``mask_secret`` on a new value (3 tries; it grows with values masked)."""
    import secrets
    import statistics

    from airflow.sdk.log import mask_secret

    costs = []
    for _ in range(3):
        began = time.perf_counter_ns()
        mask_secret(secrets.token_urlsafe(300))
        costs.append(float(time.perf_counter_ns() - began))
    return float(statistics.median(costs))


def _masked_count() -> int:
    from airflow_tokens import cache

    return len(cache._masked)


def _fetch_breakdown(hook: Any, rounds: int) -> dict[str, float]:
    """Time the parts of the hook's fetch path that a bare POST does not have (median ns each)."""
    import logging
    import statistics
    from datetime import UTC, datetime

    from airflow_tokens.response import read_token_fields

    clock = time.perf_counter_ns
    fetch_logger = logging.getLogger("airflow_tokens.fetch")
    retrying = hook.retrying
    payload = {"token": "x" * 450, "expiresIn": 1200, "scope": ["rest:read"]}
    parts: dict[str, list[float]] = {
        "fetch_with_log": [],
        "fetch_without_log": [],
        "retry_loop": [],
        "read_token_fields": [],
        "whitespace_generator": [],
        "whitespace_regex": [],
    }
    token = str(payload["token"])
    whitespace = re.compile(r"\s")

    def retry_loop() -> None:
        for attempt in retrying.copy():
            with attempt:
                pass

    for _ in range(rounds):
        began = clock()
        hook._fetch()
        parts["fetch_with_log"].append(float(clock() - began))
        fetch_logger.disabled = True
        try:
            began = clock()
            hook._fetch()
            parts["fetch_without_log"].append(float(clock() - began))
        finally:
            fetch_logger.disabled = False
        began = clock()
        for _ in range(100):
            retry_loop()
        parts["retry_loop"].append((clock() - began) / 100)
        began = clock()
        for _ in range(100):
            read_token_fields(payload, hook.response_fields, datetime.now(UTC))
        parts["read_token_fields"].append((clock() - began) / 100)
        began = clock()
        for _ in range(100):
            any(ch.isspace() for ch in token)
        parts["whitespace_generator"].append((clock() - began) / 100)
        began = clock()
        for _ in range(100):
            whitespace.search(token)
        parts["whitespace_regex"].append((clock() - began) / 100)
    return {name: float(statistics.median(values)) for name, values in parts.items()}


def import_cost(args: dict[str, Any]) -> dict[str, Any]:
    """
    Wall time of ``import airflow_tokens.hooks.sirv`` after ``import airflow.sdk`` (or after its names).

    args: ``mode``: ``sdk`` (after ``import airflow.sdk``) or ``names`` (after also importing
    ``BaseHook``, ``Variable``, ``dag`` and ``task`` from it, as a DAG file using a hook does).
    """
    clock = time.perf_counter
    began = clock()
    import airflow.sdk

    if args["mode"] == "names":
        from airflow.sdk import BaseHook, Variable, dag, task

        del BaseHook, Variable, dag, task
    sdk_done, cpu_began = clock(), time.process_time()
    import airflow_tokens.hooks.sirv

    done, cpu_done = clock(), time.process_time()
    del airflow, airflow_tokens
    return {
        "sdk_seconds": sdk_done - began,
        "hook_seconds": done - sdk_done,
        "hook_cpu": cpu_done - cpu_began,
    }


def dag_parse(args: dict[str, Any]) -> dict[str, Any]:
    """
    Wall time of a DagBag parse of one DAG file in this fresh process, then of more files after it.

    args: ``file``, parsed first (the first parse in the process); ``warm`` (optional): more files
    parsed after it, each timed (every file must hold exactly one DAG).
    """
    from airflow.dag_processing.dagbag import DagBag

    clock = time.perf_counter

    def parse(path: str) -> float:
        began = clock()
        bag = DagBag(dag_folder=path)
        seconds = clock() - began
        if bag.import_errors or len(bag.dags) != 1:
            raise RuntimeError(f"{path}: {len(bag.dags)} DAGs, errors {bag.import_errors}")
        return seconds

    first = parse(args["file"])
    return {"seconds": first, "warm": {path: parse(path) for path in args.get("warm", [])}}


def memory(args: dict[str, Any]) -> dict[str, Any]:
    """
    RSS after ``import airflow.sdk``, after importing the Sirv hook, after fetching one token.

    args: none (the connection ``sirv_default`` points at the emulator).
    """
    import resource

    import psutil  # type: ignore[import-untyped, unused-ignore]  # an Airflow dependency

    process = psutil.Process()

    def rss() -> int:
        gc.collect()
        return int(process.memory_info().rss)

    import airflow.sdk

    after_sdk = rss()
    modules_sdk = set(sys.modules)
    from airflow_tokens.hooks.sirv import SirvTokenHook

    after_import = rss()
    token = SirvTokenHook().get_token()
    after_fetch = rss()
    new_modules = sorted(set(sys.modules) - modules_sdk)
    del airflow
    return {
        "rss_after_sdk": after_sdk,
        "rss_after_import": after_import,
        "rss_after_fetch": after_fetch,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "token_length": len(token),
        "new_modules": len(new_modules),
        "new_top_packages": sorted({name.split(".")[0] for name in new_modules}),
    }


def memory_steps(args: dict[str, Any]) -> dict[str, Any]:
    """
    RSS added by each step after ``import airflow.sdk``: what the hook's dependencies and Airflow cost.

    args: none (the connection ``sirv_default`` points at the emulator).
    """
    import psutil  # type: ignore[import-untyped, unused-ignore]  # an Airflow dependency

    process = psutil.Process()

    def rss() -> int:
        gc.collect()
        return int(process.memory_info().rss)

    import airflow.sdk

    steps: list[tuple[str, int]] = [("import airflow.sdk", rss())]
    from airflow_tokens.hooks.sirv import SirvTokenHook

    steps.append(("`from airflow_tokens.hooks.sirv import SirvTokenHook`", rss()))
    airflow.sdk.BaseHook.get_connection("sirv_default")
    steps.append(("`BaseHook.get_connection()`: Airflow's connection lookup, any hook's first step", rss()))
    import requests

    steps.append(("`import requests`: what the first token request imports", rss()))
    SirvTokenHook().get_token()
    steps.append(("`SirvTokenHook().get_token()`: the rest of one fetch", rss()))
    del requests
    return {
        "steps": [
            [name, value - previous] for (name, value), (_, previous) in zip(steps[1:], steps, strict=False)
        ]
    }


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "cache_hit": cache_hit,
    "metrics_cost": metrics_cost,
    "cold_fetch": cold_fetch,
    "import_cost": import_cost,
    "dag_parse": dag_parse,
    "memory": memory,
    "memory_steps": memory_steps,
}


def main() -> None:
    """Run the worker named on the command line and print its result."""
    name, raw = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "{}"
    result = WORKERS[name](json.loads(raw))
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
