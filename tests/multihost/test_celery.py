"""Many hosts on a real CeleryExecutor deployment: one token request per token lifetime for all of them.

The session's ``CeleryAirflow`` (PostgreSQL, Redis, three Celery workers, each its own host) runs the
DAGs of ``tests/dags/multihost_tokens.py``. Each scenario is a module fixture that runs once and keeps
what happened; the audit fixture runs after all of them, then stops the deployment, so the tests do
not depend on their order:

1. 24 parallel tasks, two runs, on a cold cache: one token request in all.
2. 12 tasks spread over the hosts call ``get_token()`` for 30 s on 8 s tokens: at most one request per
   usable token lifetime, plus one; the same run with the lease turned off (``lease_seconds`` 0) runs
   beside it, and both counts are printed.
3. The task holding the lease is killed mid-request (the emulator holds its token request): the others
   get a token within the lease time.
4. Nothing in the PostgreSQL cluster (``pg_dumpall``), the REST API's XCom and Variable answers, the
   task logs or any process's output holds a client secret or a token; stopping leaves no process, no
   database cluster and no Redis data behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_tokens.testing import Fault
from tests.audit import (
    XCOM_RENDERINGS,
    api_answers,
    leaks,
    leaks_by_line,
    needles,
    peak_concurrency,
    task_spans,
)
from tests.multihost.scenarios import (
    KILL_LEASE,
    SHORT_LIFETIME,
    USABLE_LIFETIME,
    Deployment,
    Run,
    sender_pid,
)
from tests.multihost.soak import Soak, run_soak

pytestmark = [pytest.mark.celery, pytest.mark.timeout(600)]

COLD_TASKS, REFRESH_TASKS, KILL_TASKS, CHAOS_TASKS = 24, 12, 12, 12
#: At least this many of the 24 cold-start tasks must run at the same moment.
MIN_PARALLEL = 12
#: Generous room for a busy 2-core machine on top of the lease time (task start, Variable reads).
KILL_SLACK = 10.0
#: How long the emulator holds the first token request of the killed-holder scenario.
HANG_SECONDS = 120


# ------------------------------------------------------------------------------- scenarios


@pytest.fixture(scope="module")
def cold(multihost: Deployment) -> list[Run]:
    """Run the 24-task DAG twice, the second run after the first finished, on an empty cache."""
    return [multihost.finish(multihost.trigger("multihost_cold")) for _ in range(2)]


@pytest.fixture(scope="module")
def refresh(multihost: Deployment) -> dict[str, Run]:
    """Run the 30 s refresh loop with the lease and, at the same time, without it."""
    with_lease = multihost.trigger("multihost_refresh", {"conn_id": "sirv_lease"})
    without = multihost.trigger("multihost_refresh", {"conn_id": "sirv_nolease"})
    return {"sirv_lease": multihost.finish(with_lease), "sirv_nolease": multihost.finish(without)}


@dataclass
class Killing:
    """The killed-holder run, and what was killed when."""

    run: Run
    killed_pid: int
    killed_after: float
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def kill(multihost: Deployment) -> Killing:
    """Hold the first token request of the run, SIGKILL the task process that sent it, let the run end."""
    multihost.emulator.client.inject("sirv", Fault.delay(HANG_SECONDS))
    triggered = multihost.trigger("multihost_kill")
    deadline = time.monotonic() + 180
    while not (records := multihost.token_requests("sirv_kill")):
        assert time.monotonic() < deadline, "no token request arrived"
        time.sleep(0.1)
    pid = sender_pid(records[0]["client"], multihost.emulator.port)
    assert pid is not None, f"no process holds the connection {records[0]['client']}"
    os.kill(pid, signal.SIGKILL)
    killed_after = time.time() - records[0]["time"]
    print(
        f"[celery] killed the lease holder (pid {pid}) {killed_after:.1f} s into its token request",
        flush=True,
    )
    run = multihost.finish(triggered)
    return Killing(run, pid, killed_after, multihost.token_requests("sirv_kill"))


@pytest.fixture(scope="module")
def chaos(multihost: Deployment, kill: Killing) -> Soak:
    """Run the chaos soak for 60 s: random 503s and 429s, an 8 s outage at 20 s, a holder killed at 40 s."""
    soak = run_soak(multihost, seconds=60, outage_at=20, outage_seconds=8, kill_at=40)
    print(f"[celery] chaos soak, 60 s: {soak.figures()}", flush=True)
    return soak


def test_chaos_no_call_failed_while_a_valid_token_existed(chaos: Soak) -> None:
    assert chaos.calls
    assert chaos.failed_while_valid() == []


def test_chaos_no_expired_token_was_handed_out(chaos: Soak) -> None:
    assert chaos.calls
    assert chaos.expired_served() == []


def test_chaos_faults_were_drawn_and_the_outage_failed_calls(chaos: Soak) -> None:
    # The soak is not vacuous: the vendor did fail, and in the outage some calls had no token to get.
    assert chaos.drawn.get("outage", 0) > 0
    assert chaos.drawn.get("503", 0) + chaos.drawn.get("429", 0) > 0


@dataclass
class Audit:
    """Everything a user or an operator could read, gathered before and after the stop."""

    needles: dict[str, str]
    db_dump: str
    api_answers: dict[str, str]
    task_logs: dict[str, str]
    files: dict[str, str]
    leftover: list[int]
    cluster_dir: Path | None
    redis_dir: Path
    postgres_port_open: bool


@pytest.fixture(scope="module")
def audit(
    multihost: Deployment, cold: list[Run], refresh: dict[str, Run], kill: Killing, chaos: Soak
) -> Audit:
    """After every scenario: dump the cluster, read the API and the logs, stop, read the files."""
    began = time.monotonic()
    airflow = multihost.airflow
    db_dump = airflow.dump_database()
    runs: dict[str, list[str]] = {}
    for run in multihost.runs:
        runs.setdefault(run.dag_id, []).append(run.run_id)
    # Each entry as the UI shows it; the deserialised values were read when each run finished.
    answers = api_answers(airflow, runs, {"plain": XCOM_RENDERINGS["plain"]})
    answers.update(
        (f"xcom {run.run_id} {task_id} return_value deserialize", json.dumps(value))
        for run in multihost.runs
        for task_id, value in run.results.items()
    )
    task_logs = {
        f"{run.dag_id} {run.run_id} {task_id}": text
        for run in multihost.runs
        for task_id, text in airflow.task_logs(run.dag_id, run.run_id).items()
    }
    issued = multihost.emulator.client.issued_tokens()
    multihost.lap("audit reads (pg_dumpall, REST API, task logs)", began)
    leftover = multihost.stop()
    mark = time.monotonic()
    files = {
        str(path.relative_to(airflow.home)): path.read_text(errors="replace")
        for path in [*airflow.logs_folder.rglob("*"), *airflow.output_paths, airflow.home / "migrate.log"]
        if path.is_file()
    }
    with socket.socket() as probe:
        postgres_port_open = probe.connect_ex(("127.0.0.1", airflow.database_port)) == 0
    multihost.lap("audit reads after stop", mark)
    return Audit(
        needles=needles([client.client_secret for client in multihost.clients.values()], issued),
        db_dump=db_dump,
        api_answers=answers,
        task_logs=task_logs,
        files=files,
        leftover=leftover,
        cluster_dir=airflow.cluster_dir,
        redis_dir=airflow.redis_dir,
        postgres_port_open=postgres_port_open,
    )


def _failures(*runs: Run) -> str:
    return "; ".join(run.describe_failures() for run in runs)


def test_harness_import_is_cheap() -> None:
    # Every task process on a worker imports it to learn its host name ([core] hostname_callable).
    code = (
        "import sys, tests.harness.celery_deployment\n"
        "print(sorted(m for m in ('airflow', 'requests', 'psutil', 'psycopg2') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------- 1. cold start


def test_cold_runs_succeed(cold: list[Run]) -> None:
    assert [run.state for run in cold] == ["success", "success"], _failures(*cold)
    for run in cold:
        assert len(run.results) == COLD_TASKS


def test_cold_start_tasks_ran_at_once_on_several_hosts(cold: list[Run]) -> None:
    first = cold[0]
    assert peak_concurrency(task_spans(first.instances.values()).values()) >= MIN_PARALLEL
    for run in cold:
        assert len(set(run.hosts.values())) >= 2, run.hosts


def test_each_host_keeps_its_lock_in_its_own_temporary_folder(multihost: Deployment, cold: list[Run]) -> None:
    for run in cold:
        for task_id, result in run.results.items():
            assert result["host"] == run.hosts[task_id]  # what the task saw is what Airflow recorded
            assert Path(result["lock_dir"]) == multihost.airflow.host_tmpdir(result["host"])


def test_one_token_request_for_two_cold_runs_on_every_host(multihost: Deployment, cold: list[Run]) -> None:
    requests = len(multihost.token_requests("sirv_cold"))
    hosts = sorted({host for run in cold for host in run.hosts.values()})
    print(f"[celery] cold start, 2 runs x {COLD_TASKS} tasks on {hosts}: {requests} token request(s)")
    assert requests == 1, f"{requests} token requests for 2 runs x {COLD_TASKS} tasks on {len(hosts)} hosts"


# ------------------------------------------------------------------------- 2. refresh


def test_refresh_runs_succeed_on_several_hosts(refresh: dict[str, Run]) -> None:
    assert {run.state for run in refresh.values()} == {"success"}, _failures(*refresh.values())
    for run in refresh.values():
        assert len(run.results) == REFRESH_TASKS
        assert len(set(run.hosts.values())) >= 2, run.hosts


def test_every_call_got_an_unexpired_token(refresh: dict[str, Run]) -> None:
    for conn_id, run in refresh.items():
        stale = run.stale_calls()
        assert not stale, f"{conn_id}: {len(stale)} of {len(run.calls)} calls got an expired token"


def test_one_token_request_per_token_lifetime_with_the_lease(
    multihost: Deployment, refresh: dict[str, Run]
) -> None:
    counts = {conn_id: len(multihost.token_requests(conn_id)) for conn_id in refresh}
    lease = refresh["sirv_lease"]
    window, target = lease.request_target()
    summary = (
        f"{REFRESH_TASKS} tasks on {len(set(lease.hosts.values()))} hosts, {window:.0f} s of calls on "
        f"{SHORT_LIFETIME} s tokens (replaced after {USABLE_LIFETIME:.0f} s): {counts['sirv_lease']} token "
        f"requests with the lease, {counts['sirv_nolease']} without it; at most {target} wanted"
    )
    print(f"[celery] {summary}")
    assert counts["sirv_lease"] <= target, summary


# -------------------------------------------------------------------- 3. killed holder


def test_the_killed_holder_failed_and_every_other_task_succeeded(kill: Killing) -> None:
    failed = [task_id for task_id, state in kill.run.states.items() if state != "success"]
    assert len(failed) == 1, kill.run.states
    assert kill.run.instances[failed[0]]["state"] == "failed"
    assert len(kill.run.results) == KILL_TASKS - 1
    assert kill.killed_after < HANG_SECONDS  # it was killed while its request hung


def test_the_others_got_a_token_within_the_lease_time(kill: Killing) -> None:
    waits = sorted(seconds for result in kill.run.results.values() for _, seconds, *_ in result["calls"])
    hosts = sorted({result["host"] for result in kill.run.results.values()})
    print(
        f"[celery] killed holder: the other {len(waits)} tasks on {hosts} waited {waits[0]:.1f}-"
        f"{waits[-1]:.1f} s for a token (lease {KILL_LEASE} s); {len(kill.requests)} token requests"
    )
    assert waits[-1] <= KILL_LEASE + KILL_SLACK, waits


# --------------------------------------------------------------------------- 4. audit


def test_no_secret_or_token_in_the_database_cluster(audit: Audit, multihost: Deployment) -> None:
    assert "COPY public.dag_run " in audit.db_dump
    assert "COPY public.variable " in audit.db_dump
    assert len(audit.needles) > len(multihost.clients)  # the client secrets and the tokens issued
    # Name the rows (table and first columns) that hold a secret, without printing the secret.
    assert not leaks_by_line(audit.db_dump, audit.needles)


def test_no_secret_or_token_in_rest_api_answers(audit: Audit, multihost: Deployment) -> None:
    cache_variables = [name for name in audit.api_answers if name.startswith("variable airflow_tokens.")]
    assert len(cache_variables) >= len(multihost.clients)
    # Every task that returned something: its value as the UI shows it.
    read = {
        run.run_id: sum(
            name.endswith(" return_value plain") for name in audit.api_answers if run.run_id in name
        )
        for run in multihost.runs
    }
    assert read == {run.run_id: len(run.results) for run in multihost.runs}
    found = {name: what for name, text in audit.api_answers.items() if (what := leaks(text, audit.needles))}
    assert not found


def test_no_secret_or_token_in_task_logs(audit: Audit) -> None:
    assert len(audit.task_logs) == 2 * COLD_TASKS + 2 * REFRESH_TASKS + KILL_TASKS + CHAOS_TASKS
    found = {name: what for name, text in audit.task_logs.items() if (what := leaks(text, audit.needles))}
    assert not found


def test_no_secret_or_token_in_any_log_file_or_process_output(audit: Audit) -> None:
    assert {"postgres.log", "redis.log", "api-server.log", "scheduler.log", "worker-host1.log"} <= set(
        audit.files
    )
    found = {name: what for name, text in audit.files.items() if (what := leaks(text, audit.needles))}
    assert not found


def test_stop_leaves_no_process_cluster_or_data_behind(audit: Audit) -> None:
    assert audit.leftover == []
    assert audit.cluster_dir is not None
    assert not audit.cluster_dir.exists()
    assert not audit.redis_dir.exists()
    assert not audit.postgres_port_open
