"""A real deployment: ``airflow standalone`` (LocalExecutor, SQLite) runs the fan-out DAG twice.

The deployment is shared with the folder's other scenarios (see ``conftest.py``), which run first;
this module stops it and audits everything left behind, theirs included. One emulator in this process
(the task processes reach it over loopback), the connection given by ``AIRFLOW_CONN_SIRV_DEFAULT`` in
the deployment's environment, and ``[core] fernet_key`` empty, as Airflow's docker-compose quick
start sets it: Variables are then stored in clear, so only the package's own sealing keeps the token
out of the database.
The DAG ``token_fanout`` runs twice, the second run triggered after the first succeeded: 16
parallel tasks and a FetchTokenOperator start on an empty cache in their own processes, then a
second run is served by the Variable. The fixture gathers everything (states, emulator counts,
logs, REST API answers, a dump of the metadata database, leftover processes) and stops every
process before the tests look at it, so the tests do not depend on their order.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens.stores import VariableStore
from tests.audit import api_answers, leaks, leaks_by_line, needles, peak_concurrency, task_spans
from tests.harness.deployment import LocalAirflow

if TYPE_CHECKING:
    from tests.standalone.conftest import Deployments

pytestmark = [pytest.mark.standalone, pytest.mark.timeout(420)]

DAG_ID = "token_fanout"
GETTERS = [f"get_token_{n}" for n in range(1, 17)]
TASKS = [*GETTERS, "sirv_token", "consumer"]
#: At least this many of the 17 cold-start tasks of the first run must overlap in time.
MIN_PARALLEL = 8
VARIABLE_KEY = VariableStore.variable_key("sirv.sirv_default")
# `log.info("token %s", token)` once hidden: *** (secrets masker) or eyJ*** (Airflow's JWT log filter).
MASKED_TOKEN_LINE = re.compile(r'"event":"token (?:eyJ)?\*\*\*')


@dataclass
class Outcome:
    """What the deployment did, gathered while it ran and after it stopped."""

    client_secret: str
    run_ids: list[str] = field(default_factory=list)
    run_states: dict[str, str] = field(default_factory=dict)
    task_states: dict[str, dict[str, str | None]] = field(default_factory=dict)
    task_intervals: dict[str, dict[str, tuple[datetime, datetime]]] = field(default_factory=dict)
    token_requests: int = -1
    issued: list[str] = field(default_factory=list)
    task_logs: dict[str, dict[str, str]] = field(default_factory=dict)
    log_files: dict[str, str] = field(default_factory=dict)
    api_answers: dict[str, str] = field(default_factory=dict)
    consumer_results: list[Any] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)
    variable_answer: dict[str, Any] = field(default_factory=dict)
    variable_row: tuple[Any, ...] | None = None
    db_dump: str = ""
    connection: dict[str, Any] = field(default_factory=dict)
    pgid: int = 0
    leftover: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: The secrets of the other scenarios run on the same deployment, audited here too.
    other_secrets: list[str] = field(default_factory=list)
    other_issued: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        """Keep pytest's failure reports short (and free of the credentials)."""
        return f"Outcome(runs={self.run_states}, token_requests={self.token_requests})"

    def peak_concurrency(self, run_id: str) -> int:
        """Return how many of the 17 token-getting tasks of a run were running at the same moment."""
        intervals = [self.task_intervals.get(run_id, {}).get(task) for task in [*GETTERS, "sirv_token"]]
        return peak_concurrency(span for span in intervals if span is not None)

    def needles(self) -> dict[str, str]:
        """Return what must never appear in clear: the client secret, every token, every JWT signature."""
        return needles([self.client_secret, *self.other_secrets], [*self.issued, *self.other_issued])


def _collect_api(airflow: LocalAirflow, outcome: Outcome) -> None:
    """Read every task's XCom entries and the Variables through the REST API, as a user could."""
    outcome.api_answers = api_answers(airflow, {DAG_ID: outcome.run_ids})
    for run_id in outcome.run_ids:
        for task_id, values in (("consumer", outcome.consumer_results), ("sirv_token", outcome.envelopes)):
            answer = outcome.api_answers[f"xcom {run_id} {task_id} return_value plain"]
            values.append(json.loads(answer)["value"])
    outcome.variable_answer = json.loads(outcome.api_answers[f"variable {VARIABLE_KEY}"])


@pytest.fixture(scope="module")
def outcome(deployments: Deployments) -> Outcome:
    """Run the DAG twice on the shared deployment, gather the evidence, stop every process."""
    began = time.monotonic()
    shared = deployments.running()
    airflow, emulator = shared.airflow, shared.emulator
    home = airflow.home
    result = Outcome(client_secret=shared.credentials.client_secret, connection=shared.connection)
    timings = result.timings
    timings["start (db migrate, scheduler, dag processor, triggerer, API)"] = shared.start_seconds

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = now - since
        print(f"[standalone] {name}: {timings[name]:.1f} s", flush=True)
        return now

    result.pgid = airflow.pid or 0
    mark = time.monotonic()
    try:
        airflow.wait_for_dag(DAG_ID)
        mark = lap("DAG parsed", mark)
        for number in (1, 2):
            run_id = airflow.trigger(DAG_ID)
            result.run_ids.append(run_id)
            result.run_states[run_id] = airflow.wait_for_run(DAG_ID, run_id, timeout=150)
            instances = airflow.task_instances(DAG_ID, run_id)
            result.task_states[run_id] = {ti["task_id"]: ti["state"] for ti in instances}
            result.task_intervals[run_id] = task_spans(instances)
            mark = lap(f"run {number} ({result.run_states[run_id]})", mark)
            peak = result.peak_concurrency(run_id)
            print(f"[standalone] run {number}: up to {peak} of the 17 token-getting tasks at once")
            if result.run_states[run_id] != "success":
                break
        for run_id in result.run_ids:
            result.task_logs[run_id] = airflow.task_logs(DAG_ID, run_id)
        _collect_api(airflow, result)
        mark = lap("REST API reads", mark)
    finally:
        airflow.stop()  # the other scenarios of the shared deployment ran before this module
        mark = lap("stop", mark)
    result.token_requests = emulator.client.token_requests("sirv")
    result.issued = emulator.client.issued_tokens()
    # The deferrable scenario's secrets, too: its logs, XComs and Variables are audited below.
    result.other_secrets = [shared.jobs_credentials.client_secret]
    result.other_issued = shared.jobs_emulator.client.issued_tokens()
    result.leftover = [proc.pid for proc in airflow.processes()]
    result.log_files = {
        str(path.relative_to(home)): path.read_text(errors="replace")
        for path in [*airflow.logs_folder.rglob("*"), airflow.output_path]
        if path.is_file()
    }
    result.db_dump = airflow.dump_database()
    with contextlib.closing(sqlite3.connect(f"file:{airflow.db_path}?mode=ro", uri=True)) as db:
        result.variable_row = db.execute(
            "SELECT val, is_encrypted FROM variable WHERE key = ?", (VARIABLE_KEY,)
        ).fetchone()
    lap("audit reads after stop", mark)
    timings["total"] = time.monotonic() - began
    print(f"[standalone] module fixture total: {timings['total']:.1f} s", flush=True)
    return result


def _failures(outcome: Outcome) -> str:
    """Describe the runs that did not succeed, with the logs of their failed tasks."""
    lines = []
    for run_id, state in outcome.run_states.items():
        if state == "success":
            continue
        lines.append(f"run {run_id}: {state}, tasks {outcome.task_states.get(run_id)}")
        for task_id, task_state in outcome.task_states.get(run_id, {}).items():
            if task_state != "success":
                text = outcome.task_logs.get(run_id, {}).get(task_id, "")
                lines.append(f"--- {task_id} ---\n{text[-3000:]}")
    return "\n".join(lines)


def test_harness_import_is_cheap() -> None:
    code = (
        "import sys, tests.harness.deployment\n"
        "print(sorted(m for m in ('airflow', 'requests', 'psutil') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_leak_detector_sees_plain_and_hex_encoded_values() -> None:
    needles = {"secret": "s3cr3t-value"}
    assert leaks("a s3cr3t-value b", needles) == ["secret"]
    assert leaks(f"X'{b'..s3cr3t-value..'.hex().upper()}'", needles) == ["secret"]
    assert leaks("s3cr3t-valu", needles) == []


def test_both_runs_succeed(outcome: Outcome) -> None:
    assert len(outcome.run_ids) == 2, _failures(outcome)
    assert set(outcome.run_states.values()) == {"success"}, _failures(outcome)
    for states in outcome.task_states.values():
        assert states == dict.fromkeys(TASKS, "success")


def test_one_token_request_for_both_runs(outcome: Outcome) -> None:
    # 17 cold starts at once in as many processes, then 17 more processes in the second run: one request.
    assert outcome.token_requests == 1
    assert len(outcome.issued) == 1


def test_cold_start_tasks_really_ran_in_parallel(outcome: Outcome) -> None:
    # Otherwise one token request would prove nothing about processes racing on an empty cache.
    assert outcome.peak_concurrency(outcome.run_ids[0]) >= MIN_PARALLEL


def test_consumer_got_200_from_the_protected_resource(outcome: Outcome) -> None:
    assert outcome.consumer_results == [200, 200]


def test_every_task_logged_the_token_masked(outcome: Outcome) -> None:
    assert outcome.task_logs, "no task logs were read"
    for run_id, logs in outcome.task_logs.items():
        assert set(logs) == set(TASKS), run_id
        for task_id in GETTERS:
            assert MASKED_TOKEN_LINE.search(logs[task_id]), f"{run_id} {task_id}: no masked token line"
            # The *** may come from Airflow's JWT filter; this proves the hook registered the token.
            assert "token registered with the secrets masker: True" in logs[task_id], f"{run_id} {task_id}"


def test_no_secret_or_token_in_task_logs(outcome: Outcome) -> None:
    needles = outcome.needles()
    found = {
        f"{run_id} {task_id}": what
        for run_id, logs in outcome.task_logs.items()
        for task_id, text in logs.items()
        if (what := leaks(text, needles))
    }
    assert not found


def test_no_secret_or_token_in_any_log_file(outcome: Outcome) -> None:
    needles = outcome.needles()
    assert any("task_id=get_token_1" in name for name in outcome.log_files)
    found = {name: what for name, text in outcome.log_files.items() if (what := leaks(text, needles))}
    assert not found


def test_no_secret_or_token_in_rest_api_answers(outcome: Outcome) -> None:
    needles = outcome.needles()
    assert {f"xcom list {run_id} 1" for run_id in outcome.run_ids} < set(outcome.api_answers)
    values = [name for name in outcome.api_answers if name.endswith(" return_value plain")]
    assert len(values) == 2 * len(TASKS)
    found = {name: what for name, text in outcome.api_answers.items() if (what := leaks(text, needles))}
    assert not found


def test_no_secret_or_token_in_the_metadata_database(outcome: Outcome) -> None:
    assert "CREATE TABLE" in outcome.db_dump
    assert 'INSERT INTO "dag_run"' in outcome.db_dump
    # Name the rows (table and first columns) that hold a secret, without printing the secret.
    assert not leaks_by_line(outcome.db_dump, outcome.needles())


def test_token_is_stored_only_sealed_without_a_fernet_key(outcome: Outcome) -> None:
    from airflow.sdk import Connection

    from airflow_tokens.hooks.sirv import SirvTokenHook

    # Whoever holds the connection derives the key; nobody else can read the token.
    seal = SirvTokenHook()._resolve(Connection(conn_id="sirv_default", **outcome.connection)).seal
    (token,) = outcome.issued
    # The cache Variable: stored in clear by Airflow (no Fernet key), the token sealed inside it.
    assert outcome.variable_row is not None
    stored, is_encrypted = outcome.variable_row
    assert not is_encrypted
    entry = json.loads(stored)
    assert entry["format"] == "airflow-tokens/3"
    assert entry["token_type"] == "Bearer"
    assert seal.open(stored).token.token == token
    assert outcome.variable_answer["key"] == VARIABLE_KEY
    # The XCom envelope of each run: metadata in clear, the token only inside the sealed part.
    assert len(outcome.envelopes) == 2
    for envelope in outcome.envelopes:
        assert envelope["format"] == "airflow-tokens/3"
        assert envelope["conn_id"] == "sirv_default"
        assert seal.open(envelope).token.token == token


def test_every_process_stopped(outcome: Outcome) -> None:
    assert outcome.pgid
    assert outcome.leftover == []
    with pytest.raises(ProcessLookupError):
        os.killpg(outcome.pgid, 0)  # the process group of airflow standalone is gone
