"""Any OAuth2 client-credentials endpoint (RFC 6749 section 4.4); the host is the token URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.vendors import AUDIENCE, EXTRA_PARAMS, RESOURCE, SCOPE, VENDORS

if TYPE_CHECKING:
    from airflow_tokens.connection import ConnectionSettings


class OAuth2ClientCredentialsHook(TokenHook):
    """
    Fetch and cache tokens from any OAuth2 client-credentials token endpoint.

    :param oauth2_conn_id: the connection (host = token endpoint URL, login = client ID, password = client
        secret; extras ``client_auth_method``, ``scope``, ``audience``, ``resource``, ``extra_params``).
    """

    vendor = VENDORS["oauth2_client_credentials"]

    def request_body(
        self, settings: ConnectionSettings, static: dict[str, Any], credentials: dict[str, str]
    ) -> dict[str, Any]:
        """Return ``grant_type``, the scope, audience, resource and extra parameters, then any credentials."""
        params = dict(static)
        for extra in (SCOPE, AUDIENCE, RESOURCE):
            if value := settings.value(extra):
                params[extra.name] = value
        extra_params: dict[str, Any] = settings.get(EXTRA_PARAMS) or {}
        for name, value in extra_params.items():
            if not isinstance(value, str):
                raise settings.error("extra_params", f"value of {name!r} must be a string")
            params[name] = value
        return {**params, **credentials}
