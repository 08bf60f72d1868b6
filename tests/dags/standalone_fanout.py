"""Test DAG for a real deployment: 16 parallel tasks and a FetchTokenOperator share one Sirv token.

On an empty cache every task starts at once in its own process, so the Variable cache and its
file lock must turn 17 cold starts into one token request. Each task logs the token it got (the
task log must show ``***``) and whether the token is registered with the secrets masker; the
consumer reads the token from the operator's encrypted XCom envelope and calls the emulator's
protected ``/v2/account``. Used by ``tests/standalone/test_deployment.py``.
"""

from __future__ import annotations

import logging

from airflow.sdk import dag, task

from airflow_tokens.operators.token import FetchTokenOperator

log = logging.getLogger(__name__)
PARALLEL_TASKS = 16


@task
def get_token() -> int:
    """Get the Sirv token (Variable cache) and log it: the task log must show ***."""
    from airflow.sdk._shared.secrets_masker import redact

    from airflow_tokens.hooks.sirv import SirvTokenHook

    token = SirvTokenHook().get_token()
    log.info("token %s", token)
    # Airflow's log processors hide anything that looks like a JWT (as Sirv tokens do) before the
    # secrets masker sees it, so the *** above does not prove the hook masked the token: this does.
    log.info("token registered with the secrets masker: %s", redact(token) == "***")
    return len(token)


@task
def call_account() -> int:
    """Call the protected /v2/account with the token from the encrypted XCom envelope."""
    from airflow_tokens.hooks.sirv import SirvTokenHook

    hook = SirvTokenHook(cache="xcom", xcom_task_id="sirv_token")
    response = hook.get_conn().get(f"{hook.base_url}/v2/account", timeout=30)
    log.info("GET /v2/account answered %s", response.status_code)
    return response.status_code


@dag(schedule=None, catchup=False, max_active_tasks=32, tags=["airflow-tokens", "test"])
def token_fanout() -> None:
    """Fan out 16 token getters next to a FetchTokenOperator and its XCom consumer."""
    for number in range(1, PARALLEL_TASKS + 1):
        get_token.override(task_id=f"get_token_{number}")()
    fetch = FetchTokenOperator(task_id="sirv_token", conn_id="sirv_default")
    fetch >> call_account.override(task_id="consumer")()


token_fanout()
