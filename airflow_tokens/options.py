"""Options: one row per connection extra, with its kind, default, bounds, choices and form field.

A row says everything about an option once: what its value is read as, what it is when unset, the
range it must lie in, the values it may take (and what each means), and how the connection form shows
it. :class:`~airflow_tokens.connection.ConnectionSettings` reads a connection's extras by these rows;
the provider info builds the forms from them. Importing this module costs nothing: it imports no
other module of the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Mapping

_T = TypeVar("_T")

#: JSON-schema types of the form field for each kind of extra.
_SCHEMA_TYPES: dict[type, str] = {str: "string", float: "number", bool: "boolean", dict: "object"}
#: Airflow shows the value of an extra whose name holds one of these as ``***`` (and would save a
#: default shown so): such a field names its default in its description only.
_MASKED_NAME_PARTS = ("token", "password", "secret", "private_key", "passphrase")


@dataclass(frozen=True, slots=True)
class Extra(Generic[_T]):
    """
    One connection extra: its name, kind, default, bounds and choices and, if it has one, its form field.

    :param name: the key in the connection's extras (the form may store it as ``extra__<conn_type>__<name>``).
    :param kind: what the value is read as: ``str``, ``float`` (any number), ``bool`` or ``dict``.
    :param label: the form field's label; empty for an extra without a form field (set in the Extra JSON).
    :param description: the form field's help text.
    :param default: the value when the extra is unset; None when unset means "not asked for".
    :param minimum: the smallest value a number may take.
    :param maximum: the largest value a number may take.
    :param whole: whether a number must be a whole number (the form asks for an integer).
    :param choices: the values a text extra may take (matched without regard to case), each with what it
        means (a base URL, a method name); the form lists them.
    :param format: how the form shows a text field: ``multiline`` (a text area, for PEM text) or
        ``password`` (hidden as typed); Airflow masks a value by the extra's name.
    """

    name: str
    kind: type[_T]
    label: str = ""
    description: str = ""
    default: _T | None = None
    minimum: float | None = None
    maximum: float | None = None
    whole: bool = False
    choices: Mapping[str, str] | None = None
    format: str | None = None

    def form_field(self) -> dict[str, Any]:
        """Return the field's ``conn-fields`` entry: label, description and JSON schema."""
        schema: dict[str, Any]
        if self.choices is not None:
            schema = {"type": "string", "enum": list(self.choices)}
        else:
            schema = {"type": ["integer" if self.whole else _SCHEMA_TYPES[self.kind], "null"]}
            for key, bound in (("minimum", self.minimum), ("maximum", self.maximum)):
                if bound is not None:
                    schema[key] = int(bound) if self.whole else bound
        if self.format is not None:
            schema["format"] = self.format
        shown = not any(part in self.name for part in _MASKED_NAME_PARTS)
        if self.default not in (None, "") and shown:
            default: Any = self.default
            schema["default"] = int(default) if self.whole else default
        return {"label": self.label, "description": self.description, "schema": schema}


def default(extra: Extra[_T]) -> _T:
    """Return the default of ``extra``, which must have one."""
    if extra.default is None:
        raise LookupError(f"the extra {extra.name!r} has no default")
    return extra.default


def choice(name: str, label: str, description: str, choices: Mapping[str, str], default: str) -> Extra[str]:
    """Return a text extra that takes one of ``choices`` (its form field lists them)."""
    return Extra(name, str, label, description, default=default, choices=choices)


def same(*names: str) -> dict[str, str]:
    """Return choices that mean themselves."""
    return {name: name for name in names}


# Extras every connection type understands; none has a form field (they go in the Extra JSON).
CACHE = choice("cache", "", "", same("variable", "memory", "xcom", "none"), "variable")
REFRESH_MARGIN = Extra("refresh_margin", float, default=60.0, minimum=0, maximum=86400)
#: How long one host may take to refresh for the deployment before another takes over (0: no lease).
LEASE_SECONDS = Extra("lease_seconds", float, default=30.0, minimum=0, maximum=3600)
CONNECT_TIMEOUT = Extra("connect_timeout", float, default=10.0, minimum=0.001, maximum=600)
READ_TIMEOUT = Extra("read_timeout", float, default=30.0, minimum=0.001, maximum=3600)
MAX_ATTEMPTS = Extra("max_attempts", float, default=5.0, minimum=1, maximum=100)
MAX_RETRY_SECONDS = Extra("max_retry_seconds", float, default=60.0, minimum=0, maximum=3600)
#: The most bytes of a decoded token answer accepted (a token answer is a few KiB; 1 MiB by default).
MAX_RESPONSE_BYTES = Extra(
    "max_response_bytes", float, default=1048576.0, minimum=1024, maximum=67108864, whole=True
)
CA_BUNDLE = Extra("ca_bundle", str, default="")
ALLOW_HTTP = Extra("allow_http", bool, default=False)
#: Proxies for the token request, as requests and ``HttpHook`` spell them: ``{"https": "http://proxy:3128"}``.
PROXIES = Extra("proxies", dict)
#: Where the vendor's API is, for calls made with :mod:`airflow_tokens.http` (default: the base URL).
API_BASE_URL = Extra("api_base_url", str, default="")

COMMON_EXTRAS: tuple[Extra[Any], ...] = (
    CACHE,
    REFRESH_MARGIN,
    LEASE_SECONDS,
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    MAX_ATTEMPTS,
    MAX_RETRY_SECONDS,
    MAX_RESPONSE_BYTES,
    CA_BUNDLE,
    ALLOW_HTTP,
    PROXIES,
    API_BASE_URL,
)
