"""The deferrable job operator and its trigger against the emulator's job API (real HTTP, real Airflow)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from airflow_tokens.operators.job import RunJobOperator
from airflow_tokens.testing import EmulatorServer
from airflow_tokens.triggers.job import JobStatusTrigger
from tests.vendors import SIRV, delete_variable

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def sirv_jobs(token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """Point ``sirv_default`` at the emulator, whose job API the operator drives."""
    SIRV.configure(monkeypatch, token_emulator.url)
    return token_emulator


@pytest.fixture
def sirv_jobs_in_dag(airflow_db: Any, sirv_jobs: EmulatorServer) -> Iterator[EmulatorServer]:
    """As ``sirv_jobs``, and delete the cache Variable the tasks write."""
    yield sirv_jobs
    delete_variable(SIRV.variable_key)


def _start(payload: dict[str, Any], **options: Any) -> tuple[RunJobOperator, JobStatusTrigger]:
    """Run the operator's execute (it starts the job) and return the trigger it defers to."""
    operator = RunJobOperator(
        task_id="run_job", conn_id="sirv_default", endpoint="/jobs", payload=payload, **options
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})  # type: ignore[arg-type]
    assert deferred.value.method_name == "execute_complete"
    trigger = deferred.value.trigger
    assert isinstance(trigger, JobStatusTrigger)
    return operator, trigger


def _fire(trigger: JobStatusTrigger) -> dict[str, Any]:
    """Run the trigger (rebuilt from its serialized form, as the triggerer does) to its event."""
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_tokens.triggers.job.JobStatusTrigger"
    rebuilt = JobStatusTrigger(**kwargs)

    async def first_event() -> dict[str, Any]:
        event = await anext(rebuilt.run())
        payload: dict[str, Any] = event.payload
        return payload

    return asyncio.run(first_event())


def test_operator_starts_the_job_and_the_trigger_waits_for_it(sirv_jobs: EmulatorServer) -> None:
    operator, trigger = _start({"report": "orders"}, poll_interval=0.05, timeout=timedelta(minutes=5))
    assert trigger.status_url == f"{sirv_jobs.url}/jobs/job-1"
    event = _fire(trigger)
    assert event["status"] == "success"
    job = operator.execute_complete({}, event)  # type: ignore[arg-type]
    assert job == {
        "id": "job-1",
        "status": "succeeded",
        "polls": 3,
        "result": {"payload": {"report": "orders"}},
    }
    assert sirv_jobs.client.job_requests() == {"start": 1, "status": 3}
    assert sirv_jobs.client.token_requests("sirv") == 1  # the worker's token served the trigger too


def test_a_failed_job_fails_the_task(sirv_jobs: EmulatorServer) -> None:
    operator, trigger = _start({"fail": True, "polls": 1}, poll_interval=0.05)
    event = _fire(trigger)
    assert event["status"] == "failed"
    with pytest.raises(AirflowException, match=r"jobs/job-1: the job's status is 'failed'"):
        operator.execute_complete({}, event)  # type: ignore[arg-type]


def test_the_trigger_renews_a_refused_token_once(sirv_jobs: EmulatorServer) -> None:
    _, trigger = _start({"polls": 1})
    sirv_jobs.client.revoke()  # the cached token is refused from now on
    assert _fire(trigger)["status"] == "success"
    assert sirv_jobs.client.token_requests("sirv") == 2
    assert sirv_jobs.client.job_requests() == {"start": 1, "status": 2}  # 401, then the renewed read


@pytest.mark.parametrize(
    ("status_url", "conn_type", "message"),
    [
        ("/jobs/job-404", "sirv", "HTTP 404 from"),
        ("/jobs/job-1", "ftp", "'sirv_default': conn_type: 'ftp' is not an airflow-tokens connection type"),
    ],
)
def test_trigger_errors_are_events_with_a_message(
    sirv_jobs: EmulatorServer, status_url: str, conn_type: str, message: str
) -> None:
    _start({})
    trigger = JobStatusTrigger(
        conn_id="sirv_default", conn_type=conn_type, status_url=sirv_jobs.url + status_url, poll_interval=0.05
    )
    event = _fire(trigger)
    assert event["status"] == "error"
    assert message in event["message"]


def test_a_start_refused_by_the_api_is_a_clear_error(sirv_jobs: EmulatorServer) -> None:
    operator = RunJobOperator(
        task_id="run_job", conn_id="sirv_default", endpoint="/jobs", payload={"polls": 0}
    )
    with pytest.raises(AirflowException, match=r"Starting a job at .*/jobs answered HTTP 400"):
        operator.execute({})  # type: ignore[arg-type]


def test_eight_triggers_on_one_loop_share_one_token(sirv_jobs: EmulatorServer) -> None:
    triggers = [_start({"report": str(n)}, poll_interval=0.05)[1] for n in range(8)]
    sirv_jobs.client.revoke()  # the triggers must renew the token: once for all of them

    async def run_all() -> list[Any]:
        return await asyncio.gather(*(anext(trigger.run()) for trigger in triggers))

    events = asyncio.run(run_all())
    assert [event.payload["status"] for event in events] == ["success"] * 8
    assert sirv_jobs.client.token_requests("sirv") == 2  # the workers' one, and one renewal


@pytest.mark.airflow_db
def test_the_example_dag_runs_its_eight_jobs_with_one_token(
    dagbag: Any, sirv_jobs_in_dag: EmulatorServer
) -> None:
    sirv_jobs = sirv_jobs_in_dag
    sirv_jobs.client.configure_jobs(polls=1)  # dag.test() runs the triggers one after another
    run = dagbag.dags["deferrable_job_example"].test()
    assert run.state == "success"
    assert sirv_jobs.client.token_requests("sirv") == 1
    assert sirv_jobs.client.job_requests() == {"start": 8, "status": 8}
    assert sorted(job["payload"]["report"] for job in sirv_jobs.client.jobs()) == sorted(
        ["orders", "customers", "invoices", "refunds", "stock", "shipments", "returns", "payouts"]
    )
