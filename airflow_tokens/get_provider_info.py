"""Describe the provider to Airflow: package, hooks and connection forms (read without importing hooks)."""

from __future__ import annotations

from typing import Any

from airflow_tokens.extras import form_fields

_EXTRA_PLACEHOLDER = '{"cache": "variable", "refresh_margin": 60}'


def _connection_type(
    conn_type: str,
    module: str,
    hook_class: str,
    hook_name: str,
    *,
    host: str,
    placeholders: dict[str, str],
    login: str = "Client ID",
    password: str = "Client Secret",
) -> dict[str, Any]:
    """Return one connection type entry: hook, relabelled standard fields and the extras' form fields."""
    entry: dict[str, Any] = {
        "connection-type": conn_type,
        "hook-class-name": f"airflow_tokens.hooks.{module}.{hook_class}",
        "hook-name": hook_name,
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"login": login, "password": password, "host": host},
            "placeholders": {**placeholders, "extra": _EXTRA_PLACEHOLDER},
        },
    }
    if fields := form_fields(conn_type):
        entry["conn-fields"] = fields
    return entry


CONNECTION_TYPES = [
    _connection_type(
        "sirv",
        "sirv",
        "SirvTokenHook",
        "Sirv",
        host="API base URL (optional)",
        placeholders={
            "host": "https://api.sirv.com",
            "login": "Sirv API client ID",
            "password": "Sirv API client secret",
        },
    ),
    _connection_type(
        "learning360",
        "learning360",
        "Learning360TokenHook",
        "360Learning",
        host="Base URL (optional, overrides Region)",
        placeholders={
            "host": "https://app.360learning.com",
            "login": "360Learning API client ID",
            "password": "360Learning API client secret",
        },
    ),
    _connection_type(
        "manis",
        "manis",
        "ManisTokenHook",
        "Manis",
        host="API base URL (required)",
        login="Merchant ID",
        password="Secret",
        placeholders={
            "host": "https://your-manis-api-host.example.com",
            "login": "Manis merchant ID (sent as x-merchant-id)",
            "password": "Manis merchant secret (sent as x-secret)",
        },
    ),
    _connection_type(
        "podero",
        "podero",
        "PoderoTokenHook",
        "Podero",
        host="Base URL (optional, overrides Environment)",
        placeholders={
            "host": "https://app.podero.com",
            "login": "Podero partner API client ID",
            "password": "Podero partner API client secret",
        },
    ),
    _connection_type(
        "oauth2_client_credentials",
        "oauth2",
        "OAuth2ClientCredentialsHook",
        "OAuth2 Client Credentials",
        host="Token endpoint URL",
        placeholders={
            "host": "https://auth.example.com/oauth2/token",
            "login": "OAuth2 client ID",
            "password": "OAuth2 client secret",
        },
    ),
    _connection_type(
        "token_endpoint",
        "token_endpoint",
        "TokenEndpointHook",
        "Token endpoint (custom)",
        host="Token endpoint URL",
        login="Login",
        password="Secret",
        placeholders={
            "host": "https://api.example.com/auth/token",
            "login": "Client ID, key ID or user name (sent as the login field)",
            "password": "Client secret, API secret or password (sent as the password field)",
        },
    ),
]

#: Connection types an earlier release registered, and the type each is now: an old connection is
#: named in the error with the type to set.
RENAMED_CONNECTION_TYPES = {"360learning": "learning360"}  # 0.2: a URI scheme cannot start with a digit


def get_provider_info() -> dict[str, Any]:
    """Return the provider description read through the ``apache_airflow_provider`` entry point."""
    modules = sorted({entry["hook-class-name"].rsplit(".", 1)[0] for entry in CONNECTION_TYPES})
    return {
        "package-name": "airflow-tokens",
        "name": "Airflow Tokens",
        "description": "Fetch, cache and refresh vendor API access tokens (Sirv, 360Learning, Manis, "
        "Podero, any OAuth2 client-credentials endpoint, any token endpoint described in its connection).",
        "versions": ["0.2.0", "0.1.0"],
        "integrations": [
            {"integration-name": "Airflow Tokens", "tags": ["service"]},
        ],
        "hooks": [{"integration-name": "Airflow Tokens", "python-modules": modules}],
        "operators": [
            {
                "integration-name": "Airflow Tokens",
                "python-modules": ["airflow_tokens.operators.job", "airflow_tokens.operators.token"],
            },
        ],
        "triggers": [
            {"integration-name": "Airflow Tokens", "python-modules": ["airflow_tokens.triggers.job"]},
        ],
        "connection-types": CONNECTION_TYPES,
    }
