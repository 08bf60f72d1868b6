"""Any OAuth2 client-credentials server: several tasks get the token (one request), one calls an API."""

from __future__ import annotations

import logging

from airflow.sdk import dag, task

log = logging.getLogger(__name__)


@task
def get_oauth2_token() -> int:
    """Get the OAuth2 token (cached in a Variable, so only the first task requests one)."""
    from airflow_tokens.hooks.oauth2 import OAuth2ClientCredentialsHook

    token = OAuth2ClientCredentialsHook().get_token()
    log.info("Got OAuth2 token %s", token)  # the task log shows ***: the hook masked it
    return len(token)


@task
def call_protected_api() -> dict[str, object]:
    """Call a protected endpoint with a session that sends (and renews) the token."""
    from airflow_tokens.hooks.oauth2 import OAuth2ClientCredentialsHook

    hook = OAuth2ClientCredentialsHook()  # or OAuth2ClientCredentialsHook(oauth2_conn_id="my_idp")
    # The connection's host is the token endpoint (https://auth.example.com/oauth2/token), not an
    # API root; here the API is served by the same host, so strip the token path off.
    api_root = hook.base_url.removesuffix("/oauth2/token")
    response = hook.get_conn().get(f"{api_root}/protected", timeout=30)
    response.raise_for_status()
    return response.json()


@dag(schedule=None, catchup=False, tags=["airflow-tokens", "oauth2"])
def oauth2_token_example() -> None:
    """Share one OAuth2 token between tasks and use it against an API."""
    tokens = [get_oauth2_token.override(task_id=f"get_token_{n}")() for n in range(1, 4)]
    tokens >> call_protected_api()


oauth2_token_example()
