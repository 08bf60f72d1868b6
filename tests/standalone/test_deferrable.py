"""The deferrable example in a real ``airflow standalone``: eight jobs wait in the triggerer at once.

``deferrable_job_example`` (dags_example) runs on the folder's shared deployment with the connection
``sirv_jobs``. Its emulator holds every job as running, so the run goes through three phases:

1. The eight workers start their jobs (``get_conn()``) and defer; the eight triggers poll from the
   triggerer's one event loop with ``aget_conn()``. Workers and triggers share one token request.
2. The emulator revokes that token and makes its token endpoint answer after ``RENEWAL_DELAY``: every
   trigger is refused (401) and renews the token from the triggerer. The eight make one request, and
   had it been sent from the loop's thread, the loop would have stopped for the whole delay.
3. The jobs are released and every task succeeds.

The triggerer's watchdog (``blocked_main_thread_warning_threshold``, 0.2 s) reports every stall of its
loop. On a busy machine it also fires with no trigger running, for a few tenths of a second of CPU
starvation; a token request in the loop's thread would stall it for at least ``RENEWAL_DELAY``.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_tokens.testing import Fault
from tests.harness.deployment import FINISHED_STATES, DeploymentError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from airflow_tokens.testing import EmulatorServer
    from tests.harness.deployment import LocalAirflow
    from tests.standalone.conftest import Deployments

pytestmark = [pytest.mark.standalone, pytest.mark.timeout(420)]

DAG_ID = "deferrable_job_example"
JOBS = 8
REPORTS = ["orders", "customers", "invoices", "refunds", "stock", "shipments", "returns", "payouts"]
RENEWAL_DELAY = 2.0
#: Generous: above the CPU-starvation stalls of a busy machine (up to 0.9 s seen with no trigger
#: running), below the stall a renewal sent from the loop's thread would cause.
MAX_STALL = 0.75 * RENEWAL_DELAY
BLOCKED = re.compile(r"\| (\S+) .*Triggerer's async thread was blocked for ([\d.]+) seconds")


@dataclass
class Jobs:
    """What the deferrable run did."""

    run_state: str = ""
    task_states: dict[str, str | None] = field(default_factory=dict)
    #: Most tasks seen deferred at the same moment; jobs read by the triggers while all were held.
    peak_deferred: int = 0
    polled_while_held: int = 0
    #: Token requests once eight triggers polled, and once every trigger polled again after the revocation.
    requests_when_deferred: int = -1
    requests_after_renewal: int = -1
    renewed_triggers: int = 0
    job_requests: dict[str, int] = field(default_factory=dict)
    results: list[Any] = field(default_factory=list)
    triggerer_output: str = ""
    trigger_logs: dict[str, str] = field(default_factory=dict)
    #: From the first trigger's start to the last one's end, as the trigger logs tell.
    triggers_ran: tuple[datetime, datetime] | None = None
    needles: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Keep pytest's failure reports short (and free of the credentials)."""
        return f"Jobs(run={self.run_state}, tasks={self.task_states})"

    def stalls(self) -> list[tuple[datetime, float, bool]]:
        """Return each stall the watchdog reported: when, how long, and whether triggers were running."""
        found = []
        for match in BLOCKED.finditer(self.triggerer_output):
            moment, seconds = datetime.fromisoformat(match.group(1)), float(match.group(2))
            # A stall is reported once over: one in the triggers' time is logged by its end.
            during = self.triggers_ran is not None and (
                self.triggers_ran[0] - timedelta(seconds=2)
                <= moment
                <= self.triggers_ran[1] + timedelta(seconds=2)
            )
            found.append((moment, seconds, during))
        return found


def _wait(airflow: LocalAirflow, run_id: str, done: Callable[[dict[str, str | None]], bool]) -> None:
    """Look at the run every second until ``done(task states)``, a task ends, or 150 s pass."""
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            states = airflow.task_states(DAG_ID, run_id)
        except (requests.RequestException, DeploymentError):
            continue  # a busy API server: look again
        if done(states) or any(state in FINISHED_STATES for state in states.values()):
            return  # (a task that ended while every job was held failed)


def _reads(emulator: EmulatorServer) -> dict[str, int]:
    return {job["id"]: job["polls"] for job in emulator.client.jobs()}


@pytest.fixture(scope="module")
def jobs(deployments: Deployments) -> Jobs:
    """Run the example through the three phases and gather the evidence."""
    shared = deployments.running()
    airflow, emulator = shared.airflow, shared.jobs_emulator
    result = Jobs()
    began = time.monotonic()
    emulator.client.configure_jobs(hold=True)
    airflow.wait_for_dag(DAG_ID)
    run_id = airflow.trigger(DAG_ID, conf={"conn_id": "sirv_jobs"})

    def all_deferred_and_polling(states: dict[str, str | None]) -> bool:
        deferred = sum(state == "deferred" for state in states.values())
        result.peak_deferred = max(result.peak_deferred, deferred)
        result.polled_while_held = sum(reads > 0 for reads in _reads(emulator).values())
        return deferred == JOBS and result.polled_while_held == JOBS

    _wait(airflow, run_id, all_deferred_and_polling)
    result.requests_when_deferred = emulator.client.token_requests("sirv")
    result.timings["eight triggers polling"] = time.monotonic() - began

    before = _reads(emulator)
    emulator.client.inject("sirv", Fault.delay(RENEWAL_DELAY))
    emulator.client.revoke()

    def all_renewed(states: dict[str, str | None]) -> bool:
        result.renewed_triggers = sum(reads > before.get(job, 0) for job, reads in _reads(emulator).items())
        return result.renewed_triggers == JOBS

    _wait(airflow, run_id, all_renewed)
    result.requests_after_renewal = emulator.client.token_requests("sirv")
    result.timings["renewal"] = time.monotonic() - began - result.timings["eight triggers polling"]

    emulator.client.configure_jobs(hold=False)
    result.run_state = airflow.wait_for_run(DAG_ID, run_id, timeout=120)
    result.timings["run"] = time.monotonic() - began
    result.task_states = airflow.task_states(DAG_ID, run_id)
    result.job_requests = emulator.client.job_requests()
    for index in range(JOBS):
        answer = airflow.api.get(
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/run_report/xcomEntries/return_value",
            params={"map_index": index, "deserialize": "true"},
            timeout=30,
        )
        if answer.ok:
            result.results.append(answer.json()["value"])
    result.triggerer_output = "\n".join(
        line for line in airflow.output_path.read_text(errors="replace").splitlines() if "triggerer" in line
    )
    run_folder = airflow.logs_folder / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    result.trigger_logs = {
        str(path.relative_to(run_folder)): path.read_text(errors="replace")
        for path in run_folder.rglob("*.log")
        if ".trigger." in path.name
    }
    result.triggers_ran = _span(result.trigger_logs.values())
    result.needles = {"client secret": shared.jobs_credentials.client_secret}
    for number, token in enumerate(emulator.client.issued_tokens(), 1):
        result.needles[f"token {number}"] = token
    stalls = ", ".join(
        f"{seconds:.2f} s{'' if during else ' (no trigger)'}" for _, seconds, during in result.stalls()
    )
    print(
        f"[standalone] deferrable: {result.peak_deferred} tasks deferred at once, "
        f"{result.requests_when_deferred} token request for workers and triggers, "
        f"{result.requests_after_renewal - result.requests_when_deferred} for the eight triggers' renewal; "
        f"watchdog stalls: {stalls or 'none'}; {result.timings['run']:.1f} s",
        flush=True,
    )
    return result


def _span(logs: Iterable[str]) -> tuple[datetime, datetime] | None:
    """Return when the first trigger started and the last one completed, from their JSON log lines."""
    moments = []
    for text in logs:
        for line in text.splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                record = json.loads(line)
                if record["event"].endswith("starting") or record["event"] == "trigger completed":
                    moments.append(datetime.fromisoformat(record["timestamp"]))
    return (min(moments), max(moments)) if moments else None


def test_every_task_succeeds(jobs: Jobs) -> None:
    assert jobs.run_state == "success", jobs.task_states
    assert jobs.task_states == {f"run_report[{index}]": "success" for index in range(JOBS)}
    assert sorted(result["result"]["payload"]["report"] for result in jobs.results) == sorted(REPORTS)


def test_eight_tasks_were_deferred_at_once_and_their_triggers_polled(jobs: Jobs) -> None:
    assert jobs.peak_deferred == JOBS
    assert jobs.polled_while_held == JOBS
    assert jobs.job_requests["start"] == JOBS


def test_eight_deferred_tasks_share_one_token_request(jobs: Jobs) -> None:
    # Eight workers started their jobs and eight triggers polled them: one token in all.
    assert jobs.requests_when_deferred == 1


def test_eight_refused_triggers_renew_the_token_with_one_request(jobs: Jobs) -> None:
    assert jobs.renewed_triggers == JOBS
    assert jobs.requests_after_renewal == 2


def test_the_triggerer_loop_was_never_stalled_by_the_triggers(jobs: Jobs) -> None:
    assert len(jobs.trigger_logs) == JOBS
    assert jobs.triggers_ran is not None
    assert "Starting the triggerer" in jobs.triggerer_output  # the watchdog's output is read here
    during = [seconds for _, seconds, running in jobs.stalls() if running]
    assert not [seconds for seconds in during if seconds >= MAX_STALL], during
    for text in jobs.trigger_logs.values():
        assert "was blocked" not in text


def test_no_secret_or_token_in_the_trigger_logs(jobs: Jobs) -> None:
    assert len(jobs.needles) == 3  # the client secret and two tokens
    for name, text in [("triggerer", jobs.triggerer_output), *jobs.trigger_logs.items()]:
        assert not [what for what, value in jobs.needles.items() if value in text], name
