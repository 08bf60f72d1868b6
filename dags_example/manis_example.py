"""Manis: several tasks get the token (one request in all), one calls the API through get_conn()."""

from __future__ import annotations

import logging

from airflow.sdk import dag, task

log = logging.getLogger(__name__)


@task
def get_manis_token() -> int:
    """Get the Manis token (cached in a Variable, so only the first task requests one)."""
    from airflow_tokens.hooks.manis import ManisTokenHook

    token = ManisTokenHook().get_token()
    log.info("Got Manis token %s", token)  # the task log shows ***: the hook masked it
    return len(token)


@task
def call_manis_api() -> dict[str, object]:
    """Call a protected endpoint with a session that sends (and renews) the token."""
    from airflow_tokens.hooks.manis import ManisTokenHook

    hook = ManisTokenHook()  # or ManisTokenHook(manis_conn_id="manis_shop_b")
    response = hook.get_conn().get(f"{hook.base_url}/protected", timeout=30)  # the connection's host
    response.raise_for_status()
    return response.json()


@dag(schedule=None, catchup=False, tags=["airflow-tokens", "manis"])
def manis_token_example() -> None:
    """Share one Manis token between tasks and use it against the API."""
    tokens = [get_manis_token.override(task_id=f"get_token_{n}")() for n in range(1, 4)]
    tokens >> call_manis_api()


manis_token_example()
