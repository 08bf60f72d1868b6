"""360Learning: several tasks get the token (one request in all), one calls the API through get_conn()."""

from __future__ import annotations

import logging

from airflow.sdk import dag, task

log = logging.getLogger(__name__)


@task
def get_360learning_token() -> int:
    """Get the 360Learning token (cached in a Variable, so only the first task requests one)."""
    from airflow_tokens.hooks.learning360 import Learning360TokenHook

    token = Learning360TokenHook().get_token()
    log.info("Got 360Learning token %s", token)  # the task log shows ***: the hook masked it
    return len(token)


@task
def call_360learning_api() -> dict[str, object]:
    """Call a protected endpoint with a session that sends (and renews) the token."""
    from airflow_tokens.hooks.learning360 import Learning360TokenHook

    hook = Learning360TokenHook()  # or Learning360TokenHook(learning360_conn_id="learning360_us")
    response = hook.get_conn().get(f"{hook.base_url}/protected", timeout=30)  # e.g. /api/v2/users
    response.raise_for_status()
    return response.json()


@dag(schedule=None, catchup=False, tags=["airflow-tokens", "learning360"])
def learning360_token_example() -> None:
    """Share one 360Learning token between tasks and use it against the API."""
    tokens = [get_360learning_token.override(task_id=f"get_token_{n}")() for n in range(1, 4)]
    tokens >> call_360learning_api()


learning360_token_example()
