"""Benchmark DAGs for a real deployment (``bench/run.py``, sections ``workload`` and ``variable_task``).

Five DAGs of 16 parallel tasks, each task getting one access token from the emulator in its own way:

- ``bench_airflow_tokens``: ``SirvTokenHook().get_token()`` (Variable cache, cross-process lock);
- ``bench_requests_post``: the connection read with ``BaseHook.get_connection`` and a bare
  ``requests.post`` to Sirv's token endpoint, as DAGs are written without this package;
- ``bench_requests_auth``: requests-auth's ``OAuth2ClientCredentials`` against the emulator's generic
  OAuth2 endpoint (connection ``oauth2_client_credentials_default``);
- ``bench_cold_lock``: as ``bench_airflow_tokens``, run on an empty cache (cold-start race);
- ``bench_cold_no_lock``: the same race with a bench-only Variable cache that skips the file lock;
- ``bench_cold_lock_barrier`` and ``bench_cold_no_lock_barrier``: both races again, the 16 token calls
  released together by a file barrier once every task has started (the worst case).

Each task writes what it did (pid, wall-clock start and end of the token call, its duration) to
``$BENCH_RESULTS_DIR/<dag_id>/<run_id>/<task_id>.json``. ``bench_variable_hit`` runs the in-task
measurements of the Variable cache and writes them to the same folder.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import dag, get_current_context, task

if TYPE_CHECKING:
    from collections.abc import Callable


PARALLEL_TASKS = 16


def _record(name: str, result: dict[str, Any]) -> None:
    """Write a task's result to ``$BENCH_RESULTS_DIR/<dag_id>/<run_id>/<name>.json``."""
    context = get_current_context()
    folder = Path(os.environ["BENCH_RESULTS_DIR"]) / context["dag"].dag_id / context["run_id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(result))


def _barrier(timeout: float = 90.0) -> float:
    """
    Wait until all ``PARALLEL_TASKS`` tasks of this run arrived here; return the seconds waited.

    A file per task in ``$BENCH_RESULTS_DIR/barrier/<dag_id>/<run_id>``; every task polls the folder
    every 2 ms, so all of them leave within a few milliseconds of the last arrival.
    """
    context = get_current_context()
    folder = Path(os.environ["BENCH_RESULTS_DIR"]) / "barrier" / context["dag"].dag_id / context["run_id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / context["ti"].task_id).touch()
    began = time.monotonic()
    while len(os.listdir(folder)) < PARALLEL_TASKS and time.monotonic() - began < timeout:
        time.sleep(0.002)
    return time.monotonic() - began


def _timed(get: Callable[[], str], barrier: bool) -> None:
    """Call ``get`` once (it returns a token), after the barrier if asked, and record when and how long."""
    context = get_current_context()
    waited = _barrier() if barrier else 0.0
    started = time.time()
    began = time.perf_counter()
    token = get()
    seconds = time.perf_counter() - began
    _record(
        context["ti"].task_id,
        {
            "pid": os.getpid(),
            "start": started,
            "end": time.time(),
            "seconds": seconds,
            "barrier_wait": waited,
            "ok": bool(token),
        },
    )


@task
def airflow_tokens_variable(barrier: bool = False) -> None:
    """Get the Sirv token with airflow-tokens (Variable cache, the default)."""
    from airflow_tokens.hooks.sirv import SirvTokenHook

    _timed(lambda: SirvTokenHook().get_token(), barrier)


@task
def requests_post() -> None:
    """Get the Sirv token as DAGs do without this package: the connection, then requests.post."""
    import requests
    from airflow.sdk import BaseHook

    def get() -> str:
        conn = BaseHook.get_connection("sirv_default")
        response = requests.post(
            f"{conn.host}/v2/token",
            json={"clientId": conn.login, "clientSecret": conn.password},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["token"])

    _timed(get, False)


@task
def requests_auth_client_credentials() -> None:
    """Get an OAuth2 token with requests-auth's OAuth2ClientCredentials (its cache is per process)."""
    import requests
    from airflow.sdk import BaseHook
    from requests_auth import OAuth2ClientCredentials

    def get() -> str:
        conn = BaseHook.get_connection("oauth2_client_credentials_default")
        auth = OAuth2ClientCredentials(str(conn.host), str(conn.login), str(conn.password))
        prepared = auth(requests.Request("GET", str(conn.host)).prepare())
        return str(prepared.headers["Authorization"]).removeprefix("Bearer ")

    _timed(get, False)


@task
def airflow_tokens_no_lock(barrier: bool = False) -> None:
    """Get the Sirv token through the Variable cache with its file lock and its lease turned off."""
    from airflow_tokens.cache import TokenCache
    from airflow_tokens.hooks.sirv import SirvTokenHook
    from airflow_tokens.stores import VariableStore

    cache = TokenCache(VariableStore(), cross_process_lock=False, lease_seconds=0)
    _timed(lambda: SirvTokenHook(cache=cache).get_token(), barrier)


@task
def measure_variable_cache() -> None:
    """
    Time the Variable cache inside a task against a bare ``Variable.get`` of the same key.

    Interleaved, ``reps`` times each (from the run's conf): a bare ``Variable.get``; the Variable load
    path (token memory cleared, connection kept); the first ``get_token`` of a process (memory and
    connection cleared); what a hand-written task needs at least (``get_connection`` and
    ``Variable.get``). Then batches of repeated calls, served from memory, and a count of Variable
    reads during repeated calls.
    """
    from airflow.sdk import BaseHook, Variable

    from airflow_tokens.hooks.sirv import SirvTokenHook
    from airflow_tokens.memory import MEMORY, clear_memory_cache
    from airflow_tokens.stores import VariableStore

    conf = get_current_context()["dag_run"].conf or {}
    reps, batches, batch = int(conf.get("reps", 200)), int(conf.get("batches", 50)), 1000
    clock = time.perf_counter_ns

    began = clock()
    hook = SirvTokenHook()
    hook.get_token()
    very_first = clock() - began  # connection, Variable (or a fetch), mask_secret: once per process
    key = VariableStore.variable_key(hook.cache_key)
    if Variable.get(key, default=None) is None:
        raise RuntimeError(f"the cache Variable {key} is missing")

    def bare_variable_get() -> None:
        Variable.get(key)

    def variable_load_path() -> None:
        hook.get_token()

    def first_get_token_in_process() -> None:
        SirvTokenHook().get_token()

    def connection_and_variable_get() -> None:
        BaseHook.get_connection(hook.conn_id)
        Variable.get(key)

    def connection_only() -> None:
        BaseHook.get_connection(hook.conn_id)

    def resolve_only() -> None:
        SirvTokenHook().token_request  # noqa: B018  # resolves the connection, nothing else

    resets: dict[str, Callable[[], None]] = {
        "variable_load_path": MEMORY.entries.clear,
        "first_get_token_in_process": clear_memory_cache,
        "resolve_only": clear_memory_cache,
    }
    calls: dict[str, Callable[[], None]] = {
        "bare_variable_get": bare_variable_get,
        "variable_load_path": variable_load_path,
        "first_get_token_in_process": first_get_token_in_process,
        "connection_and_variable_get": connection_and_variable_get,
        "connection_only": connection_only,
        "resolve_only": resolve_only,
    }
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for number in range(reps + 5):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            resets.get(name, lambda: None)()
            start = clock()
            calls[name]()
            if number >= 5:  # the first rounds warm up
                samples[name].append(float(clock() - start))

    hook.get_token()  # cached in memory again
    get = hook.get_token
    repeated: dict[str, list[float]] = {"repeated_reused_hook": [], "repeated_new_hook": []}
    for _ in range(batches):
        start = clock()
        for _ in range(batch):
            get()
        repeated["repeated_reused_hook"].append((clock() - start) / batch)
        start = clock()
        for _ in range(batch):
            SirvTokenHook().get_token()
        repeated["repeated_new_hook"].append((clock() - start) / batch)

    loads = 0
    original = VariableStore.load

    def counting_load(self: VariableStore, cache_key: str) -> Any:
        nonlocal loads
        loads += 1
        return original(self, cache_key)

    VariableStore.load = counting_load  # type: ignore[method-assign, assignment]
    try:
        for _ in range(1000):
            hook.get_token()
            SirvTokenHook().get_token()
    finally:
        VariableStore.load = original  # type: ignore[method-assign]

    _record(
        "measure",
        {
            "very_first_ns": very_first,
            "samples": {**samples, **repeated},
            "variable_reads_in_2000_repeated_calls": loads,
            "reps": reps,
            "pid": os.getpid(),
        },
    )


def _fanout(dag_id: str, getter: Any, doc: str, **arguments: Any) -> None:
    """Declare a DAG of ``PARALLEL_TASKS`` parallel tasks running ``getter``."""

    @dag(
        dag_id=dag_id,
        schedule=None,
        catchup=False,
        max_active_tasks=32,
        tags=["airflow-tokens", "bench"],
        doc_md=doc,
    )
    def fanout() -> None:
        for number in range(1, PARALLEL_TASKS + 1):
            getter.override(task_id=f"get_token_{number}")(**arguments)

    fanout()


_fanout("bench_airflow_tokens", airflow_tokens_variable, "airflow-tokens, Variable cache")
_fanout("bench_requests_post", requests_post, "BaseHook.get_connection + requests.post in each task")
_fanout("bench_requests_auth", requests_auth_client_credentials, "requests-auth OAuth2ClientCredentials")
_fanout("bench_cold_lock", airflow_tokens_variable, "cold start on an empty cache, with the file lock")
_fanout("bench_cold_no_lock", airflow_tokens_no_lock, "cold start on an empty cache, without the lock")
_fanout(
    "bench_cold_lock_barrier",
    airflow_tokens_variable,
    "cold start, the 16 token calls released together by a barrier, with the file lock",
    barrier=True,
)
_fanout(
    "bench_cold_no_lock_barrier",
    airflow_tokens_no_lock,
    "cold start, the 16 token calls released together by a barrier, without the lock",
    barrier=True,
)


@dag(dag_id="bench_variable_hit", schedule=None, catchup=False, tags=["airflow-tokens", "bench"])
def bench_variable_hit() -> None:
    """Measure the Variable cache inside one task."""
    measure_variable_cache()


bench_variable_hit()
