"""The connection extras each connection type understands, in one table.

The table feeds the connection forms (``conn-fields`` in the provider info), the validation of every
connection's extras, ``airflow-tokens check`` and, through a test, the README's option tables. A new
connection type adds one entry to :data:`EXTRAS`. Importing this module is cheap: Airflow reads the
provider info, which uses it, without importing any hook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

#: JSON-schema types of the form field for each kind of extra.
_SCHEMA_TYPES: dict[type, str] = {str: "string", float: "number", bool: "boolean", dict: "object"}


@dataclass(frozen=True, slots=True)
class Extra:
    """
    One connection extra: its name, the kind of value it takes and, if it has one, its form field.

    :param name: the key in the connection's extras (the form may store it as ``extra__<conn_type>__<name>``).
    :param kind: what the value is read as: ``str``, ``float`` (any number), ``bool`` or ``dict``.
    :param label: the form field's label; empty for an extra without a form field (set in the Extra JSON).
    :param description: the form field's help text.
    :param schema: more JSON-schema keys of the form field (``enum``, ``default``, ``minimum``, a ``type``).
    """

    name: str
    kind: type
    label: str = ""
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=dict)

    def form_field(self) -> dict[str, Any]:
        """Return the field's ``conn-fields`` entry: label, description and JSON schema."""
        schema = {"type": [_SCHEMA_TYPES[self.kind], "null"], **self.schema}
        return {"label": self.label, "description": self.description, "schema": schema}


def _choice(name: str, label: str, description: str, values: list[str], default: str) -> Extra:
    """Return a text extra whose form field is a list of ``values``."""
    return Extra(name, str, label, description, {"type": "string", "enum": values, "default": default})


#: Extras every connection type understands; none has a form field (they go in the Extra JSON).
COMMON_EXTRAS = (
    Extra("cache", str),
    Extra("refresh_margin", float),
    Extra("lease_seconds", float),
    Extra("connect_timeout", float),
    Extra("read_timeout", float),
    Extra("max_attempts", float),
    Extra("max_retry_seconds", float),
    Extra("ca_bundle", str),
    Extra("allow_http", bool),
)

#: The extras of each connection type beyond :data:`COMMON_EXTRAS`; those with a label are form fields.
EXTRAS: dict[str, tuple[Extra, ...]] = {
    "sirv": (
        Extra(
            "expires_in",
            float,
            "Requested lifetime (seconds)",
            "Optional. How long Sirv should keep each access token valid, 5 to 604800 seconds. "
            "Sirv's default is 1200 (20 minutes).",
            {"type": ["integer", "null"], "minimum": 5, "maximum": 604800},
        ),
    ),
    "learning360": (
        _choice(
            "region",
            "Region",
            "Where your 360Learning platform is hosted: EU (app.360learning.com) or "
            "US (app.us.360learning.com).",
            ["EU", "US"],
            "EU",
        ),
    ),
    "manis": (),
    "podero": (
        _choice(
            "environment",
            "Environment",
            "Podero production (app.podero.com) or sandbox (sandbox-app.podero.com).",
            ["production", "sandbox"],
            "production",
        ),
    ),
    "oauth2_client_credentials": (
        _choice(
            "client_auth_method",
            "Client authentication",
            "How the client ID and secret are sent: client_secret_basic (HTTP Basic, the RFC "
            "default), client_secret_post (form fields) or client_secret_json (a JSON body).",
            ["client_secret_basic", "client_secret_post", "client_secret_json"],
            "client_secret_basic",
        ),
        Extra("scope", str, "Scope", "Optional. Space-separated scopes to request, e.g. 'read write'."),
        Extra("audience", str, "Audience", "Optional. The audience parameter some servers require."),
        Extra(
            "extra_params",
            dict,
            "Extra request parameters",
            'Optional. More parameters for the request, as JSON: {"resource": "..."}.',
        ),
    ),
    # Airflow shows the values of extras whose names contain "token" or "password" as *** (and would
    # show a default as ***, then save it): those fields name their default in the description only.
    "token_endpoint": (
        _choice(
            "credentials_in",
            "Credentials in",
            "Where the login and secret go: json (a JSON body), form (a form body), headers (two "
            "headers) or basic (HTTP Basic).",
            ["json", "form", "headers", "basic"],
            "json",
        ),
        Extra(
            "login_field",
            str,
            "Login field",
            "The body field or header that carries the login (json, form, headers).",
            {"default": "client_id"},
        ),
        Extra(
            "password_field",
            str,
            "Secret field",
            "The body field or header that carries the secret (json, form, headers). Default: client_secret.",
        ),
        Extra(
            "body",
            dict,
            "Static body",
            'Optional. A JSON object sent with every request, e.g. {"grant_type": '
            '"client_credentials"}. With headers or basic it is sent as JSON, or as a form when the '
            "headers set Content-Type: application/x-www-form-urlencoded.",
        ),
        Extra(
            "headers",
            dict,
            "Static headers",
            'Optional. A JSON object of headers sent with every request, e.g. {"Accept": '
            '"application/json"}.',
        ),
        Extra(
            "token_field",
            str,
            "Token field",
            "Where the answer holds the token, a dotted path for nested answers (data.session.value). "
            "Default: access_token.",
        ),
        Extra(
            "expires_in_field",
            str,
            "Lifetime field",
            "Where the answer holds the lifetime in seconds (a number or numeric string).",
            {"default": "expires_in"},
        ),
        Extra(
            "expires_at_field",
            str,
            "Expiry time field",
            "Optional. Where the answer holds the expiry time: epoch seconds or milliseconds, or "
            "ISO 8601 with Z or an offset. Read when the lifetime field is absent.",
        ),
        Extra(
            "token_type_field",
            str,
            "Token type field",
            "Where the answer holds the token type. Default: token_type; Bearer when absent.",
        ),
        Extra(
            "scope_field",
            str,
            "Scope field",
            "Where the answer holds the granted scope (a list or space-separated string).",
            {"default": "scope"},
        ),
        Extra(
            "default_lifetime",
            float,
            "Default lifetime (seconds)",
            "The lifetime assumed when the answer states no expiry and the token is no JWT with an "
            "exp claim.",
            {"type": ["integer", "null"], "minimum": 1, "maximum": 31622400, "default": 3600},
        ),
    ),
}


def known_extras(conn_type: str) -> dict[str, Extra]:
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
