"""Any token endpoint, configured not coded: several tasks get the token (one request), one calls the API.

The connection ``token_endpoint_default`` describes the endpoint; for the emulator's custom endpoint
(HTTP Basic and a form, a nested answer with an ISO 8601 expiry)::

    {"conn_type": "token_endpoint", "host": "https://api.example.com/api/v3/auth/sessions",
     "login": "...", "password": "...",
     "extra": {"credentials_in": "basic", "body": {"grant": "session"},
               "headers": {"Content-Type": "application/x-www-form-urlencoded"},
               "token_field": "data.session.value", "token_type_field": "data.session.type",
               "expires_at_field": "data.session.expiresAt", "scope_field": "data.session.scopes"}}
"""

from __future__ import annotations

import logging

from airflow.sdk import dag, task

log = logging.getLogger(__name__)


@task
def get_endpoint_token() -> int:
    """Get the token (cached in a Variable, so only the first task requests one)."""
    from airflow_tokens.hooks.token_endpoint import TokenEndpointHook

    token = TokenEndpointHook().get_token()
    log.info("Got token %s", token)  # the task log shows ***: the hook masked it
    return len(token)


@task
def call_protected_api() -> dict[str, object]:
    """Call a protected endpoint with a session that sends (and renews) the token."""
    from airflow_tokens.hooks.token_endpoint import TokenEndpointHook

    hook = TokenEndpointHook()  # or TokenEndpointHook(token_endpoint_conn_id="my_endpoint")
    # The connection's host is the token URL, not an API root; here the API is on the same host.
    api_root = hook.base_url.removesuffix("/api/v3/auth/sessions")
    response = hook.get_conn().get(f"{api_root}/protected", timeout=30)
    response.raise_for_status()
    return response.json()


@dag(schedule=None, catchup=False, tags=["airflow-tokens", "token_endpoint"])
def token_endpoint_example() -> None:
    """Share one token of a custom endpoint between tasks and use it against an API."""
    tokens = [get_endpoint_token.override(task_id=f"get_token_{n}")() for n in range(1, 4)]
    tokens >> call_protected_api()


token_endpoint_example()
