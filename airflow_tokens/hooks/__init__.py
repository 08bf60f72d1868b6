"""Token hooks, one module per vendor, and a lookup of the hook for any connection."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_tokens.hooks.base import TokenHook


def hook_class_for(conn_type: str) -> type[TokenHook] | None:
    """Return the hook class registered for ``conn_type``, or None if it is not one of ours."""
    from airflow_tokens.vendors import VENDORS

    vendor = VENDORS.get(conn_type)
    if vendor is None:
        return None
    module, _, name = vendor.hook.rpartition(".")
    hook: type[TokenHook] = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    return hook


def get_token_hook(conn_id: str, **options: Any) -> TokenHook:
    """Return the vendor hook for any airflow-tokens connection, chosen by its connection type."""
    from airflow_tokens.connection import load_connection
    from airflow_tokens.exceptions import TokenConfigError
    from airflow_tokens.vendors import RENAMED_CONNECTION_TYPES, VENDORS

    conn_type = load_connection(conn_id).conn_type or ""
    hook = hook_class_for(conn_type)
    if conn_type in RENAMED_CONNECTION_TYPES:
        renamed = RENAMED_CONNECTION_TYPES[conn_type]
        raise TokenConfigError(
            conn_id,
            "conn_type",
            f"{conn_type!r} was renamed to {renamed!r} in airflow-tokens 0.2; set the connection's type "
            f"to {renamed!r} (its fields and extras stay as they are)",
        )
    if hook is None:
        raise TokenConfigError(conn_id, "conn_type", f"{conn_type!r} is not one of {', '.join(VENDORS)}")
    options[hook.conn_name_attr] = conn_id
    return hook(**options)
