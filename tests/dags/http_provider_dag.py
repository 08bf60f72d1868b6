"""Test DAG: the HTTP provider on a Sirv connection alone, with its token (``airflow_tokens.http``).

Two ``TokenHttpOperator`` calls read the account, the provider's own ``HttpOperator`` reads it through an
``http`` connection with ``token_auth``, a ``TokenHttpOperator`` starts a job, and a ``TokenHttpSensor``
pokes the job until it succeeded. Used by ``tests/integration/test_http_provider.py``.
"""

from __future__ import annotations

import json

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import dag

from airflow_tokens.http import TokenHttpOperator, TokenHttpSensor, token_auth


@dag(schedule=None, catchup=False, tags=["airflow-tokens", "test"])
def http_provider_calls() -> None:
    """Call the vendor API five times, four on its connection alone, with one token."""
    first = TokenHttpOperator(
        task_id="account", http_conn_id="sirv_default", endpoint="/v2/account", method="GET"
    )
    again = TokenHttpOperator(
        task_id="account_again", http_conn_id="sirv_default", endpoint="/v2/account", method="GET"
    )
    provider = HttpOperator(
        task_id="account_through_http_connection",
        http_conn_id="sirv_api",  # an http connection: its own login and password are never sent
        endpoint="/v2/account",
        method="GET",
        auth_type=token_auth("sirv_default"),
    )
    start = TokenHttpOperator(
        task_id="start_job",
        http_conn_id="sirv_default",
        endpoint="/jobs",
        method="POST",
        data=json.dumps({"report": "orders", "polls": 2}),
        headers={"Content-Type": "application/json"},
        response_filter=lambda response: response.json()["id"],
    )
    wait = TokenHttpSensor(
        task_id="wait_for_job",
        http_conn_id="sirv_default",
        endpoint="/jobs/{{ ti.xcom_pull(task_ids='start_job') }}",
        response_check=lambda response: response.json()["status"] == "succeeded",
        poke_interval=0.1,
        timeout=60,
    )
    first >> again >> provider >> start >> wait


http_provider_calls()
