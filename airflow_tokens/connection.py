"""Read and validate one Airflow connection: its credentials, its base URL and its typed extras.

:class:`ConnectionSettings` reads every extra by its row in :mod:`airflow_tokens.options` (kind,
default, bounds, choices); :func:`load_connection` and :func:`aload_connection` find the connection
and turn what Airflow cannot read into a :class:`~airflow_tokens.exceptions.TokenConfigError`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import SplitResult, urlsplit

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_tokens.exceptions import TokenConfigError
from airflow_tokens.extras import known_extras, unknown_extras
from airflow_tokens.options import ALLOW_HTTP, API_BASE_URL, CA_BUNDLE, PROXIES, default
from airflow_tokens.request import is_loopback
from airflow_tokens.stores import in_task
from airflow_tokens.vendors import RENAMED_CONNECTION_TYPES

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Connection

    from airflow_tokens.options import Extra

_T = TypeVar("_T")
#: The longest host (token URL) accepted: what RFC 9110 asks every server to read.
MAX_URL_LENGTH = 8000

log = logging.getLogger(__name__)

_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
#: (connection id, extra key) pairs already warned about in this process.
_WARNED_EXTRAS: set[tuple[str, str]] = set()


def _unset(value: object) -> bool:
    """Say whether an extra's value means "not set" (Airflow's form stores empty fields so)."""
    return value is None or value == ""


def _extras_object(conn_id: str, text: str | None) -> dict[str, Any]:
    """Return the extras, which must be a JSON object (Airflow's own reader logs bad JSON, reads none)."""
    if not text:
        return {}
    try:
        extras = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenConfigError(
            conn_id,
            "extra",
            f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            'write a JSON object, like {"cache": "memory"}',
        ) from None
    if not isinstance(extras, dict):
        kind = _JSON_TYPES.get(type(extras), "null")
        raise TokenConfigError(conn_id, "extra", f"must be a JSON object of settings, not {kind}")
    return extras


class ConnectionSettings:
    """
    Read and validate one Airflow connection: credentials, base URL and typed extras.

    :param conn_id: the connection id (for messages).
    :param conn_type: the vendor's connection type (for ``extra__<conn_type>__`` keys).
    :param conn: the Airflow connection.
    :param overrides: options given per call (a scope, an audience), which win over the extras of the
        same name; each must be an extra of this connection type.
    """

    def __init__(
        self, conn_id: str, conn_type: str, conn: Connection, overrides: Mapping[str, Any] | None = None
    ) -> None:
        self.conn_id = conn_id
        self.conn_type = conn_type
        self.conn = conn
        self.known = known_extras(conn_type)
        self.extras = _extras_object(conn_id, conn.extra)
        for name, value in (overrides or {}).items():
            if name not in self.known:
                raise self.error(name, f"{conn_type} connections take no {name}")
            self.extras.pop(f"extra__{conn_type}__{name}", None)
            self.extras[name] = value
        if self.extras:
            from airflow.sdk.log import mask_secret

            mask_secret(self.extras)  # as Airflow's own reader does: values of sensitive keys are masked
        #: Each extra key set that this connection type does not understand, with the closest known name.
        self.unknown_extras = unknown_extras(
            conn_type, [key for key, value in self.extras.items() if not _unset(value)]
        )
        #: Each extra set that this connection's other settings leave unread, with why (set by the request
        #: builder: a private key beside a method that signs nothing).
        self.unused_extras: dict[str, str] = {}
        for known in self.known.values():  # every extra set is checked, even one this connection skips
            self.extra(known.name, known.kind, None)
        ca_bundle = self.value(CA_BUNDLE)
        if ca_bundle and not os.path.exists(ca_bundle):
            raise self.error("ca_bundle", f"{ca_bundle!r} is not a file or directory on this host")

    def require_known_extras(self) -> None:
        """Raise a :class:`TokenConfigError` naming every extra this connection does not understand or use."""
        if self.unknown_extras:
            names = "; ".join(self._describe_unknown(key) for key in self.unknown_extras)
            raise self.error("extra", f"{names}; known extras: {', '.join(sorted(self.known))}")
        for key, why in self.unused_extras.items():
            raise self.error(key, f"{why}; clear it")

    def warn_unknown_extras(self) -> None:
        """Log one warning per process for each extra this connection does not understand or use."""
        described = {key: self._describe_unknown(key) for key in self.unknown_extras}
        described |= {key: f"{key!r} {why}" for key, why in self.unused_extras.items()}
        for key, description in described.items():
            if (self.conn_id, key) not in _WARNED_EXTRAS:
                _WARNED_EXTRAS.add((self.conn_id, key))
                log.warning("Connection %r: %s, and is ignored", self.conn_id, description)

    def leave_unused(self, name: str, why: str) -> None:
        """Record that extra ``name``, if set, goes unread, and why: a task warns, a check refuses it."""
        known = self.known.get(name)
        if known is not None and self.extra(name, known.kind, None) is not None:
            self.unused_extras[name] = why

    def _describe_unknown(self, key: str) -> str:
        suggestion = self.unknown_extras[key]
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        return f"{key!r} is not an extra of {self.conn_type} connections{hint}"

    def error(self, field: str, problem: str) -> TokenConfigError:
        """Return the configuration error for ``field``."""
        return TokenConfigError(self.conn_id, field, problem)

    def credential(self, field: str, label: str, *, in_header: bool = False) -> str:
        """Return ``login`` or ``password``: present, without surrounding whitespace, header-safe if asked."""
        value = getattr(self.conn, field)
        if not value:
            raise self.error(field, f"{label} is missing (set the connection's {field} field)")
        if value != value.strip():
            raise self.error(field, f"{label} has leading or trailing whitespace; remove it")
        if in_header:
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                raise self.error(
                    field, f"{label} has characters an HTTP header cannot carry (only Latin-1 is allowed)"
                ) from None
            if any((char < " " and char != "\t") or char == "\x7f" for char in value):
                raise self.error(field, f"{label} has control characters an HTTP header cannot carry")
        return str(value)

    def extra(self, name: str, kind: type[_T], default: _T) -> _T:
        """Return extra ``name`` (plain or ``extra__<conn_type>__`` prefixed) checked to be a ``kind``."""
        known = self.known.get(name)
        if known is None or known.kind is not kind:
            raise LookupError(f"{self.conn_type} reads extra {name!r} as {kind.__name__}: add it to EXTRAS")
        value = self.extras.get(name)
        prefixed = self.extras.get(f"extra__{self.conn_type}__{name}")
        if _unset(value):
            value = prefixed
        elif not _unset(prefixed) and prefixed != value:
            raise self.error(
                name, f"is set twice, as {name!r} and as 'extra__{self.conn_type}__{name}'; keep one"
            )
        if _unset(value):
            return default
        if kind is bool and isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"  # type: ignore[return-value]
        if kind in (int, float) and isinstance(value, str):
            try:
                value = kind(value.strip())  # type: ignore[call-arg]
            except ValueError:
                raise self.error(name, f"{value!r} is not a number") from None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is dict and isinstance(value, str):  # a JSON object written as text
            try:
                value = json.loads(value)
            except ValueError:
                raise self.error(
                    name, 'is not valid JSON; write a JSON object, like {"key": "value"}'
                ) from None
        if kind is dict and not isinstance(value, dict):
            raise self.error(name, f"must be a JSON object, not {type(value).__name__}")
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.error(name, f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    def get(self, extra: Extra[_T]) -> _T | None:
        """Return ``extra`` read by its row (kind, bounds, whole numbers, choices); its default if unset."""
        value = self.extra(extra.name, extra.kind, None)
        if value is None:
            return extra.default
        if isinstance(value, float):
            if (
                extra.minimum is not None
                and extra.maximum is not None
                and not extra.minimum <= value <= extra.maximum
            ):
                raise self.error(extra.name, f"{value:g} is outside {extra.minimum:g}..{extra.maximum:g}")
            if extra.whole and not value.is_integer():
                raise self.error(extra.name, f"{value:g} is not a whole number")
        if extra.choices is not None and isinstance(value, str):
            self.pick(cast("Extra[str]", extra), value)
        return value

    def value(self, extra: Extra[_T]) -> _T:
        """Return ``extra`` as :meth:`get` does; its row has a default, so it is never None."""
        value = self.get(extra)
        return default(extra) if value is None else value

    def choice(self, extra: Extra[str]) -> str:
        """Return what the chosen value of ``extra`` means (a base URL, a method), its default when unset."""
        return self.pick(extra, self.value(extra))

    def pick(self, extra: Extra[str], value: str) -> str:
        """Return what ``value``, one of the choices of ``extra`` (in any case), means."""
        choices = {name.lower(): meaning for name, meaning in (extra.choices or {}).items()}
        key = value.strip().lower()
        if key not in choices:
            raise self.error(extra.name, f"{value!r} is not one of {', '.join(sorted(choices))}")
        return choices[key]

    def base_url(self, default: str | None, *, verbatim: bool = False) -> str:
        """Return the connection host if set (with scheme), else ``default``; ``verbatim`` keeps a final /."""
        host = (self.conn.host or "").strip()
        port = self.conn.port or None  # Airflow's form sends 0 for no port
        if port is not None and not 0 < port < 65536:
            raise self.error("port", f"{port} is not a TCP port (1..65535)")
        if not host:
            if port is not None:
                raise self.error("port", "is set without a host; set the host (with scheme) too, or no port")
            if default is None:
                raise self.error("host", "is required for this vendor (for example https://api.example.com)")
            return default.rstrip("/")
        parts = self._checked_url("host", host, verbatim=verbatim)
        host_port = parts.port
        if port is not None and host_port is None:
            host = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
        elif port is not None and port != host_port:
            raise self.error("port", f"{port} differs from the host's port {host_port}; keep one")
        return host if verbatim else host.rstrip("/")

    def proxies(self) -> dict[str, str] | None:
        """Return the ``proxies`` extra checked (scheme -> proxy URL), or None to use the environment's."""
        proxies = self.get(PROXIES)
        if not proxies:
            return None
        for scheme, url in proxies.items():
            if scheme not in ("http", "https", "all"):
                raise self.error("proxies", f"{scheme!r} is not http, https or all")
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
                # Never echo the URL: it may carry the proxy's password.
                raise self.error("proxies", f"the {scheme} proxy is not an http:// or https:// URL")
        return dict(proxies)

    def api_base_url(self, default: str | None) -> str:
        """Return the vendor API's base URL: the ``api_base_url`` extra, else ``default`` (the base URL)."""
        url = self.value(API_BASE_URL).strip()
        if not url:
            if default is None:
                raise self.error(
                    "api_base_url",
                    "is required: this connection's host is the token URL, not the API; set the API's "
                    "base URL, like https://api.example.com",
                )
            return default
        self._checked_url("api_base_url", url, verbatim=False)
        return url.rstrip("/")

    def _checked_url(self, field: str, url: str, *, verbatim: bool) -> SplitResult:
        """Return the parts of ``url`` (the host or ``field``); refuse a URL unfit for credentials."""
        if len(url) > MAX_URL_LENGTH:
            raise self.error(field, f"is {len(url)} characters long; a URL has {MAX_URL_LENGTH} at most")
        if "@" in re.split(r"[/?#]", url.split("://", 1)[-1], maxsplit=1)[0]:
            # Never echo the URL here: it holds a credential.
            raise self.error(
                field, "carries credentials (user:password@); set them in the login and password fields"
            )
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise self.error(field, f"{url!r} is not a valid URL ({exc})") from None
        if not parts.scheme or not parts.hostname:
            raise self.error(field, f"{url!r} needs a scheme, like https://{url}")
        if parts.scheme not in ("https", "http"):
            raise self.error(field, f"scheme {parts.scheme!r} is not supported; use https://")
        if not verbatim and (parts.query or parts.fragment):
            # Never echo the URL here: a query may hold a credential.
            raise self.error(
                field,
                "is a base URL that paths are appended to: it takes no query (?) or fragment (#)",
            )
        if parts.scheme == "http" and not is_loopback(parts.hostname) and not self.value(ALLOW_HTTP):
            raise self.error(
                field,
                f"plain http:// to {parts.hostname} would send credentials unencrypted; use https:// "
                'or set the extra "allow_http": true',
            )
        return parts


def _env_value(conn_id: str) -> tuple[str, str]:
    """Return the connection's variable name and value; refuse a URI Airflow misreads, or bad extras."""
    env_var = f"AIRFLOW_CONN_{conn_id.upper()}"
    value = os.environ.get(env_var, "").strip()
    if re.match(r"\d[\w+.-]*://", value):
        # Airflow misreads such a URI (no RFC 3986 scheme starts with a digit).
        scheme = value.split("://")[0]
        renamed = RENAMED_CONNECTION_TYPES.get(scheme)
        fix = f"write it as {renamed}://..., the type's name since 0.2" if renamed else "write it as JSON"
        raise TokenConfigError(
            conn_id,
            "conn_id",
            f"{env_var} is a URI whose scheme starts with a digit ({scheme}://), which Airflow cannot "
            f"parse; {fix}",
        )
    if value.startswith("{"):
        try:
            fields = json.loads(value)
        except ValueError:
            fields = None  # Airflow cannot read it either: said below
        if isinstance(fields, dict) and isinstance(fields.get("extra"), str):
            # Bad extras get the clear error before Airflow logs a traceback about them and reads none.
            _extras_object(conn_id, fields["extra"])
    return env_var, value


def _not_found(conn_id: str, env_var: str, value: str, exc: Exception) -> TokenConfigError:
    """Return the error for a connection Airflow could not find or read."""
    if value:
        # Airflow skips a backend that fails (here: a value it cannot parse) and calls the id undefined.
        problem = f"{env_var} is set but Airflow cannot read it (neither valid JSON nor a connection URI)"
    else:
        server = in_task() or os.environ.get("_AIRFLOW_PROCESS_CONTEXT") == "server"
        places = f"{env_var}, the secrets backends" + (" and the metadata database" if server else "")
        problem = f"is not defined (looked in {places})"
    error = TokenConfigError(conn_id, "conn_id", problem)
    error.__cause__ = exc
    return error


def load_connection(conn_id: str) -> Connection:
    """Return the Airflow connection; a missing or unreadable one is a :class:`TokenConfigError`."""
    env_var, value = _env_value(conn_id)
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise _not_found(conn_id, env_var, value, exc) from exc


async def aload_connection(conn_id: str) -> Connection:
    """Return the Airflow connection without blocking the event loop (``BaseHook.aget_connection``)."""
    env_var, value = _env_value(conn_id)
    try:
        return await BaseHook.aget_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise _not_found(conn_id, env_var, value, exc) from exc
