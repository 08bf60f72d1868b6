"""Test DAG: one FetchTokenOperator, two consumers reading its encrypted token from XCom."""

from __future__ import annotations

import time

from airflow.sdk import dag, get_current_context, task

from airflow_tokens.operators.token import FetchTokenOperator


@task
def use_token() -> int:
    """Read the token from XCom (as a task on another worker would) and call the protected API."""
    from airflow_tokens.hooks.sirv import SirvTokenHook
    from airflow_tokens.memory import clear_memory_cache

    context = get_current_context()
    conf = context["dag_run"].conf or {}
    time.sleep(conf.get("wait", {}).get(context["ti"].task_id, 0))
    if conf.get("fresh_process", True):
        clear_memory_cache()  # as if this task ran in its own worker process
    hook = SirvTokenHook(cache="xcom", xcom_task_id="sirv_token")
    response = hook.get_conn().get(f"{hook.base_url}/v2/account", timeout=30)
    return response.status_code


@dag(schedule=None, catchup=False)
def xcom_token_cache() -> None:
    """Share a Sirv token through an encrypted XCom envelope."""
    fetch = FetchTokenOperator(task_id="sirv_token", conn_id="sirv_default", cache="none")
    fetch >> use_token.override(task_id="consumer_1")() >> use_token.override(task_id="consumer_2")()


xcom_token_cache()
