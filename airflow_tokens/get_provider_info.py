"""Describe the provider to Airflow: package, hooks and connection forms (read without importing hooks)."""

from __future__ import annotations

from typing import Any

from airflow_tokens.extras import form_fields
from airflow_tokens.vendors import RENAMED_CONNECTION_TYPES, VENDORS, Vendor

__all__ = ["CONNECTION_TYPES", "RENAMED_CONNECTION_TYPES", "get_provider_info"]

_EXTRA_PLACEHOLDER = '{"cache": "variable", "refresh_margin": 60}'


def _connection_type(vendor: Vendor) -> dict[str, Any]:
    """Return one connection type entry: hook, relabelled standard fields and the extras' form fields."""
    placeholders = {"host": vendor.default_host or "", **vendor.placeholders}
    entry: dict[str, Any] = {
        "connection-type": vendor.conn_type,
        "hook-class-name": f"airflow_tokens.hooks.{vendor.hook}",
        "hook-name": vendor.name,
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {
                "login": vendor.login_label,
                "password": vendor.password_label,
                "host": vendor.host_label,
            },
            "placeholders": {**placeholders, "extra": _EXTRA_PLACEHOLDER},
        },
    }
    if fields := form_fields(vendor.conn_type):
        entry["conn-fields"] = fields
    return entry


CONNECTION_TYPES = [_connection_type(vendor) for vendor in VENDORS.values()]


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
