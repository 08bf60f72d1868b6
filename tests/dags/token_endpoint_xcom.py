"""Test DAG: a FetchTokenOperator on a token_endpoint connection, two consumers reading its sealed token."""

from __future__ import annotations

from airflow.sdk import dag, task

from airflow_tokens.operators.token import FetchTokenOperator


@task
def use_token() -> int:
    """Read the token from XCom (as a task on another worker would) and call the protected API."""
    from airflow_tokens.hooks.token_endpoint import TokenEndpointHook
    from airflow_tokens.memory import clear_memory_cache

    clear_memory_cache()  # as if this task ran in its own worker process
    hook = TokenEndpointHook(cache="xcom", xcom_task_id="endpoint_token")
    api_root = hook.base_url.removesuffix("/api/v3/auth/sessions")
    response = hook.get_conn().get(f"{api_root}/protected", timeout=30)
    response.raise_for_status()
    return response.status_code


@dag(schedule=None, catchup=False)
def token_endpoint_xcom() -> None:
    """Share a custom endpoint's token through an encrypted XCom envelope."""
    fetch = FetchTokenOperator(task_id="endpoint_token", conn_id="token_endpoint_default", cache="none")
    fetch >> use_token.override(task_id="consumer_1")() >> use_token.override(task_id="consumer_2")()


token_endpoint_xcom()
