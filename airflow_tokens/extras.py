"""The connection extras each connection type understands: the common options and its vendor's own.

Derived from :mod:`airflow_tokens.options` and :mod:`airflow_tokens.vendors`; it feeds the connection
forms (``conn-fields`` in the provider info), the validation of every connection's extras,
``airflow-tokens check`` and, through a test, the README's option tables. Importing it is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_tokens.options import COMMON_EXTRAS, Extra
from airflow_tokens.vendors import VENDORS

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["COMMON_EXTRAS", "EXTRAS", "Extra", "form_fields", "known_extras", "unknown_extras"]

#: The extras of each connection type beyond :data:`COMMON_EXTRAS`; those with a label are form fields.
EXTRAS: dict[str, tuple[Extra[Any], ...]] = {
    conn_type: vendor.extras for conn_type, vendor in VENDORS.items()
}


def known_extras(conn_type: str) -> dict[str, Extra[Any]]:
    """Return every extra ``conn_type`` understands, by name; an unknown type raises ``KeyError``."""
    return {extra.name: extra for extra in (*COMMON_EXTRAS, *EXTRAS[conn_type])}


def form_fields(conn_type: str) -> dict[str, Any]:
    """Return the ``conn-fields`` of ``conn_type``'s connection form."""
    return {extra.name: extra.form_field() for extra in EXTRAS[conn_type] if extra.label}


def unknown_extras(conn_type: str, keys: Iterable[str]) -> dict[str, str | None]:
    """Return each of ``keys`` that ``conn_type`` does not understand, with the closest known name or None.

    A key is known as ``name`` or as ``extra__<conn_type>__<name>`` (how Airflow's form may store it).
    """
    known = known_extras(conn_type)
    unknown: dict[str, str | None] = {}
    for key in keys:
        prefix, _, name = key.rpartition("__") if key.startswith("extra__") else ("", "", key)
        if name in known and prefix in ("", f"extra__{conn_type}"):
            continue
        import difflib  # only a misconfigured connection needs it

        # Another type's form field (the connection's type was changed) is matched by its field name.
        close = difflib.get_close_matches(name.lower(), known, n=1)
        unknown[key] = close[0] if close else None
    return unknown
