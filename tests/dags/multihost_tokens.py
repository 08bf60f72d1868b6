"""Test DAGs for many hosts: parallel tasks get Sirv tokens, each recording every call it made.

Every task runs :func:`get_tokens`: it gets a token through ``SirvTokenHook(sirv_conn_id=...)`` (the
Variable cache) once, or again and again for ``seconds``, and returns what each call did, so the
tests and the benchmark can tell who fetched and how long the others waited. Each call is recorded
as ``[wall-clock start, seconds taken, token requests this process sent during the call, expiry of
the token returned (epoch seconds)]``; the token itself is never recorded. The requests are counted
by a response hook on the ``requests.Session`` the hook sends its token requests with.

The result also names the host the task ran on (a Celery worker of ``CeleryAirflow`` plays one host
each) and the folder its file lock lives in. With the ``own_tempdir`` parameter, each task first
points ``tempfile.tempdir`` at a fresh folder, as one pod per task would have: processes of one
host no longer share the file lock. The connection, duration and pause between calls come from the
DAG run's ``conf`` (``params``). Used by ``tests/multihost`` and ``bench/multihost.py``.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

#: Parallel tasks of each DAG.
TASKS = {
    "multihost_cold": 24,
    "multihost_refresh": 12,
    "multihost_kill": 12,
    "multihost_pods": 8,
    "multihost_chaos": 12,
}


@task(multiple_outputs=False)  # one XCom entry per task, not one per key of the result
def get_tokens() -> dict[str, Any]:
    """Get the token once, or in a loop for ``params.seconds``; return each call's record."""
    import os
    import tempfile

    import requests

    from airflow_tokens.exceptions import TokenError
    from airflow_tokens.hooks.sirv import SirvTokenHook
    from tests.harness.celery_deployment import host_name

    params = get_current_context()["params"]
    if params["own_tempdir"]:
        tempfile.tempdir = tempfile.mkdtemp(prefix="pod-")
    sent = [0]

    def count(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        sent[0] += 1

    session = requests.Session()
    session.hooks["response"].append(count)
    hook = SirvTokenHook(sirv_conn_id=params["conn_id"], session=session)
    calls: list[list[float]] = []
    end = time.monotonic() + float(params["seconds"])
    while True:
        before, started, began = sent[0], time.time(), time.perf_counter()
        try:
            expiry = hook.get_access_token().expires_at.timestamp()
        except TokenError:
            if not params["record_errors"]:
                raise
            expiry = 0.0  # a failed call: recorded, not raised (the chaos soak counts them)
        calls.append([started, time.perf_counter() - began, sent[0] - before, expiry])
        if time.monotonic() >= end:
            break
        time.sleep(float(params["pause"]))
    return {"host": host_name(), "pid": os.getpid(), "lock_dir": tempfile.gettempdir(), "calls": calls}


def _fanout(dag_id: str, doc: str, record_errors: bool = False, **params: Any) -> None:
    """Declare DAG ``dag_id``: ``TASKS[dag_id]`` parallel :func:`get_tokens` tasks."""

    @dag(
        dag_id=dag_id,
        schedule=None,
        catchup=False,
        max_active_runs=4,
        max_active_tasks=64,
        params={name: Param(value) for name, value in {**params, "record_errors": record_errors}.items()},
        tags=["airflow-tokens", "test"],
        doc_md=doc,
    )
    def fanout() -> None:
        for number in range(1, TASKS[dag_id] + 1):
            get_tokens.override(task_id=f"get_tokens_{number}", retries=0)()

    fanout()


_fanout(
    "multihost_cold",
    "24 tasks on every host get the token once, from a cold cache.",
    conn_id="sirv_cold",
    seconds=0,
    pause=0,
    own_tempdir=False,
)
_fanout(
    "multihost_refresh",
    "12 tasks spread over the hosts call get_token() for 30 s, through several refreshes.",
    conn_id="sirv_lease",
    seconds=30,
    pause=0.05,
    own_tempdir=False,
)
_fanout(
    "multihost_kill",
    "12 tasks get the token once; the one that fetches is killed mid-request by the test.",
    conn_id="sirv_kill",
    seconds=0,
    pause=0,
    own_tempdir=False,
)
_fanout(
    "multihost_pods",
    "8 tasks, each with its own temporary folder (one pod per task), call get_token() for 20 s.",
    conn_id="sirv_pods",
    seconds=20,
    pause=0.05,
    own_tempdir=True,
)
_fanout(
    "multihost_chaos",
    "12 tasks call get_token() for params.seconds while the vendor fails at random; failures recorded.",
    record_errors=True,
    conn_id="sirv_chaos",
    seconds=60,
    pause=0.05,
    own_tempdir=False,
)
