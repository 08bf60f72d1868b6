"""Describe the provider to Airflow: package, hooks and connection forms (read without importing hooks)."""

from __future__ import annotations

from typing import Any

_EXTRA_PLACEHOLDER = '{"cache": "variable", "refresh_margin": 60}'


def _connection_type(
    conn_type: str,
    module: str,
    hook_class: str,
    hook_name: str,
    *,
    host: str,
    placeholders: dict[str, str],
    fields: dict[str, Any] | None = None,
    login: str = "Client ID",
    password: str = "Client Secret",
) -> dict[str, Any]:
    """Return one connection type entry: hook, relabelled standard fields and custom fields."""
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
    if fields:
        entry["conn-fields"] = fields
    return entry


def _enum(label: str, description: str, values: list[str], default: str) -> dict[str, Any]:
    return {
        "label": label,
        "description": description,
        "schema": {"type": "string", "enum": values, "default": default},
    }


def _text(label: str, description: str) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"]}}


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
        fields={
            "expires_in": {
                "label": "Requested lifetime (seconds)",
                "description": "Optional. How long Sirv should keep each access token valid, "
                "5 to 604800 seconds. Sirv's default is 1200 (20 minutes).",
                "schema": {"type": ["integer", "null"], "minimum": 5, "maximum": 604800},
            },
        },
    ),
    _connection_type(
        "360learning",
        "learning360",
        "Learning360TokenHook",
        "360Learning",
        host="Base URL (optional, overrides Region)",
        placeholders={
            "host": "https://app.360learning.com",
            "login": "360Learning API client ID",
            "password": "360Learning API client secret",
        },
        fields={
            "region": _enum(
                "Region",
                "Where your 360Learning platform is hosted: EU (app.360learning.com) or "
                "US (app.us.360learning.com).",
                ["EU", "US"],
                "EU",
            ),
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
        fields={
            "environment": _enum(
                "Environment",
                "Podero production (app.podero.com) or sandbox (sandbox-app.podero.com).",
                ["production", "sandbox"],
                "production",
            ),
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
        fields={
            "client_auth_method": _enum(
                "Client authentication",
                "How the client ID and secret are sent: client_secret_basic (HTTP Basic, the RFC "
                "default), client_secret_post (form fields) or client_secret_json (a JSON body).",
                ["client_secret_basic", "client_secret_post", "client_secret_json"],
                "client_secret_basic",
            ),
            "scope": _text("Scope", "Optional. Space-separated scopes to request, e.g. 'read write'."),
            "audience": _text("Audience", "Optional. The audience parameter some servers require."),
            "extra_params": {
                "label": "Extra request parameters",
                "description": 'Optional. More parameters for the request, as JSON: {"resource": "..."}.',
                "schema": {"type": ["object", "null"]},
            },
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
        # Airflow shows the values of extras whose names contain "token" or "password" as *** (and would
        # show a default as ***, then save it): those fields name their default in the description only.
        fields={
            "credentials_in": _enum(
                "Credentials in",
                "Where the login and secret go: json (a JSON body), form (a form body), headers (two "
                "headers) or basic (HTTP Basic).",
                ["json", "form", "headers", "basic"],
                "json",
            ),
            "login_field": {
                "label": "Login field",
                "description": "The body field or header that carries the login (json, form, headers).",
                "schema": {"type": ["string", "null"], "default": "client_id"},
            },
            "password_field": _text(
                "Secret field",
                "The body field or header that carries the secret (json, form, headers). "
                "Default: client_secret.",
            ),
            "body": {
                "label": "Static body",
                "description": 'Optional. A JSON object sent with every request, e.g. {"grant_type": '
                '"client_credentials"}. With headers or basic it is sent as JSON, or as a form when the '
                "headers set Content-Type: application/x-www-form-urlencoded.",
                "schema": {"type": ["object", "null"]},
            },
            "headers": {
                "label": "Static headers",
                "description": 'Optional. A JSON object of headers sent with every request, e.g. {"Accept": '
                '"application/json"}.',
                "schema": {"type": ["object", "null"]},
            },
            "token_field": _text(
                "Token field",
                "Where the answer holds the token, a dotted path for nested answers (data.session.value). "
                "Default: access_token.",
            ),
            "expires_in_field": {
                "label": "Lifetime field",
                "description": "Where the answer holds the lifetime in seconds (a number or numeric string).",
                "schema": {"type": ["string", "null"], "default": "expires_in"},
            },
            "expires_at_field": _text(
                "Expiry time field",
                "Optional. Where the answer holds the expiry time: epoch seconds or milliseconds, or "
                "ISO 8601 with Z or an offset. Read when the lifetime field is absent.",
            ),
            "token_type_field": _text(
                "Token type field",
                "Where the answer holds the token type. Default: token_type; Bearer when absent.",
            ),
            "scope_field": {
                "label": "Scope field",
                "description": "Where the answer holds the granted scope (a list or space-separated string).",
                "schema": {"type": ["string", "null"], "default": "scope"},
            },
            "default_lifetime": {
                "label": "Default lifetime (seconds)",
                "description": "The lifetime assumed when the answer states no expiry and the token is no "
                "JWT with an exp claim.",
                "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 31622400, "default": 3600},
            },
        },
    ),
]


def get_provider_info() -> dict[str, Any]:
    """Return the provider description read through the ``apache_airflow_provider`` entry point."""
    modules = sorted({entry["hook-class-name"].rsplit(".", 1)[0] for entry in CONNECTION_TYPES})
    return {
        "package-name": "airflow-tokens",
        "name": "Airflow Tokens",
        "description": "Fetch, cache and refresh vendor API access tokens (Sirv, 360Learning, Manis, "
        "Podero, any OAuth2 client-credentials endpoint, any token endpoint described in its connection).",
        "versions": ["0.1.0"],
        "integrations": [
            {"integration-name": "Airflow Tokens", "tags": ["service"]},
        ],
        "hooks": [{"integration-name": "Airflow Tokens", "python-modules": modules}],
        "operators": [
            {"integration-name": "Airflow Tokens", "python-modules": ["airflow_tokens.operators.token"]},
        ],
        "connection-types": CONNECTION_TYPES,
    }
