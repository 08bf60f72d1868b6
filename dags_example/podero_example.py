"""Podero: several tasks get the token (one request in all), one calls the API through get_conn()."""

from __future__ import annotations

import logging

from airflow.sdk import dag, task

log = logging.getLogger(__name__)


@task
def get_podero_token() -> int:
    """Get the Podero token (cached in a Variable, so only the first task requests one)."""
    from airflow_tokens.hooks.podero import PoderoTokenHook

    token = PoderoTokenHook().get_token()
    log.info("Got Podero token %s", token)  # the task log shows ***: the hook masked it
    return len(token)


@task
def call_podero_api() -> dict[str, object]:
    """Call a protected endpoint with a session that sends (and renews) the token."""
    from airflow_tokens.hooks.podero import PoderoTokenHook

    hook = PoderoTokenHook()  # or PoderoTokenHook(podero_conn_id="podero_sandbox")
    response = hook.get_conn().get(f"{hook.base_url}/protected", timeout=30)  # e.g. /api/partners/...
    response.raise_for_status()
    return response.json()


@dag(schedule=None, catchup=False, tags=["airflow-tokens", "podero"])
def podero_token_example() -> None:
    """Share one Podero token between tasks and use it against the API."""
    tokens = [get_podero_token.override(task_id=f"get_token_{n}")() for n in range(1, 4)]
    tokens >> call_podero_api()


podero_token_example()
