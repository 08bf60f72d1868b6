"""Deferrable: start eight report jobs on a vendor API and wait for them in the triggerer.

Each task starts its job from a worker, then defers: the triggerer polls the job's status with a
token from ``await hook.aget_token()``, so the waiting costs no worker slot and never blocks the
triggerer's event loop. The workers and the triggerer share one token (Variable cache).
"""

from __future__ import annotations

from airflow.sdk import dag

from airflow_tokens.operators.job import RunJobOperator

REPORTS = ["orders", "customers", "invoices", "refunds", "stock", "shipments", "returns", "payouts"]


@dag(schedule=None, catchup=False, tags=["airflow-tokens", "deferrable"])
def deferrable_job_example(conn_id: str = "sirv_default") -> None:
    """Run one job per report on the API behind ``conn_id`` (a DAG parameter)."""
    RunJobOperator.partial(task_id="run_report", conn_id=conn_id, endpoint="/jobs", poll_interval=1).expand(
        payload=[{"report": report} for report in REPORTS]
    )


deferrable_job_example()
