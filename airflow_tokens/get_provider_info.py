"""Describe the provider to Airflow: package, hooks and connection forms (read without importing hooks)."""

from __future__ import annotations

from typing import Any

_CREDENTIAL_LABELS = {"login": "Client ID", "password": "Client Secret"}


def get_provider_info() -> dict[str, Any]:
    """Return the provider description read through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-tokens",
        "name": "Airflow Tokens",
        "description": "Fetch, cache and refresh vendor API access tokens (Sirv, 360Learning, Manis, "
        "Podero, any OAuth2 client-credentials endpoint).",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Sirv",
                "external-doc-url": "https://apidocs.sirv.com/",
                "tags": ["service"],
            },
        ],
        "hooks": [
            {"integration-name": "Sirv", "python-modules": ["airflow_tokens.hooks.sirv"]},
        ],
        "connection-types": [
            {
                "connection-type": "sirv",
                "hook-class-name": "airflow_tokens.hooks.sirv.SirvTokenHook",
                "hook-name": "Sirv",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {**_CREDENTIAL_LABELS, "host": "API base URL (optional)"},
                    "placeholders": {
                        "host": "https://api.sirv.com",
                        "login": "Sirv API client ID",
                        "password": "Sirv API client secret",
                        "extra": '{"cache": "variable", "refresh_margin": 60}',
                    },
                },
                "conn-fields": {
                    "expires_in": {
                        "label": "Requested lifetime (seconds)",
                        "description": "Optional. How long Sirv should keep each access token valid, "
                        "5 to 604800 seconds. Sirv's default is 1200 (20 minutes).",
                        "schema": {"type": ["integer", "null"], "minimum": 5, "maximum": 604800},
                    },
                },
            },
        ],
    }
