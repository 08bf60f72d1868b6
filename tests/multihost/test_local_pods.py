"""Many hosts on one machine: ``airflow standalone`` (LocalExecutor) with a temporary folder per task.

As with one pod per task (the Kubernetes executor), each of 8 parallel tasks points
``tempfile.tempdir`` at a fresh folder before using the hook, so no two tasks share the file lock;
they call ``get_token()`` for 20 s on 8 s tokens. Only the shared store can keep them to one token
request per usable token lifetime, plus one. Cheaper than the Celery deployment: it runs every time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from airflow_tokens.testing import EmulatorServer
from tests.harness.deployment import LocalAirflow
from tests.multihost.scenarios import (
    DAG_FILE,
    SHORT_LIFETIME,
    USABLE_LIFETIME,
    Deployment,
    Run,
    sirv_connections,
)

pytestmark = [pytest.mark.standalone, pytest.mark.timeout(420)]

DAG_ID = "multihost_pods"
TASKS = 8


@dataclass
class Pods:
    """The run, the token requests it made and the processes left after the stop."""

    run: Run
    requests: int
    leftover: list[int]


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Pods:
    """Deploy, run the DAG once, stop every process."""
    began = time.monotonic()
    with EmulatorServer() as emulator:
        clients, env = sirv_connections(emulator, {"sirv_pods": {"expires_in": SHORT_LIFETIME}})
        airflow = LocalAirflow(tmp_path_factory.mktemp("pods"), [DAG_FILE], env=env)
        deployment = Deployment(airflow, emulator, clients, "pods")
        try:
            airflow.start(timeout=300)
            mark = deployment.lap("start", began)
            airflow.wait_for_dag(DAG_ID)
            deployment.lap("DAG parsed", mark)
            run = deployment.finish(deployment.trigger(DAG_ID), timeout=240)
        finally:
            leftover = deployment.stop()
        requests = len(deployment.token_requests("sirv_pods"))
    print(f"[pods] module total {time.monotonic() - began:.1f} s", flush=True)
    return Pods(run, requests, leftover)


def test_every_task_succeeded_with_its_own_lock_folder(pods: Pods) -> None:
    assert pods.run.state == "success", pods.run.describe_failures()
    assert len(pods.run.results) == TASKS
    assert len({result["lock_dir"] for result in pods.run.results.values()}) == TASKS


def test_every_call_got_an_unexpired_token(pods: Pods) -> None:
    assert pods.run.calls
    assert not pods.run.stale_calls()


def test_one_token_request_per_token_lifetime_without_a_shared_lock(pods: Pods) -> None:
    window, target = pods.run.request_target()
    summary = (
        f"{TASKS} tasks, each its own lock folder, {window:.0f} s of calls on {SHORT_LIFETIME} s tokens "
        f"(replaced after {USABLE_LIFETIME:.0f} s): {pods.requests} token requests; at most {target} wanted"
    )
    print(f"[pods] {summary}")
    assert pods.requests <= target, summary


def test_every_process_stopped(pods: Pods) -> None:
    assert pods.leftover == []
