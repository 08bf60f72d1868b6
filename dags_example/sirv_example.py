"""Sirv: several tasks get the token (one request in all), one calls the API through get_conn()."""

from __future__ import annotations

import logging

from airflow.sdk import dag, task

log = logging.getLogger(__name__)


@task
def get_sirv_token() -> int:
    """Get the Sirv token (cached in a Variable, so only the first task requests one)."""
    from airflow_tokens.hooks.sirv import SirvTokenHook

    token = SirvTokenHook().get_token()
    log.info("Got Sirv token %s", token)  # the task log shows ***: the hook masked it
    return len(token)


@task
def call_sirv_api() -> dict[str, object]:
    """Call a protected Sirv endpoint with a session that sends (and renews) the token."""
    from airflow_tokens.hooks.sirv import SirvTokenHook

    hook = SirvTokenHook()
    response = hook.get_conn().get(f"{hook.base_url}/v2/account", timeout=30)
    response.raise_for_status()
    return response.json()


@dag(schedule=None, catchup=False, tags=["airflow-tokens", "sirv"])
def sirv_token_example() -> None:
    """Share one Sirv token between tasks and use it against the API."""
    tokens = [get_sirv_token.override(task_id=f"get_token_{n}")() for n in range(1, 4)]
    tokens >> call_sirv_api()


sirv_token_example()
