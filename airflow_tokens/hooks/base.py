"""The hook every vendor builds on: connection reading, options, caching, fetching, sessions."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload
from urllib.parse import urlsplit

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_tokens.cache import MEMORY, TokenCache, VariableStore, XComStore, in_task, mask_once
from airflow_tokens.exceptions import TokenConfigError, TokenError
from airflow_tokens.extras import known_extras, unknown_extras
from airflow_tokens.fetch import TokenRequest, Transport, fetch_flow
from airflow_tokens.flow import arun, prepare, run
from airflow_tokens.response import ResponseFields
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.sealing import EntrySeal

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx
    import requests
    import tenacity
    from airflow.sdk import Connection

    from airflow_tokens.flow import Flow
    from airflow_tokens.token import AccessToken

_T = TypeVar("_T")
_R = TypeVar("_R")

log = logging.getLogger(__name__)

#: Cache names accepted by the ``cache`` option and connection extra.
CACHES = ("variable", "memory", "xcom", "none")
DEFAULT_REFRESH_MARGIN = 60.0
#: How long one host may take to refresh for the deployment before another takes over (0: no lease).
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_TIMEOUT = (10.0, 30.0)
DEFAULT_RETRY = RetryPolicy()
#: New hook objects in one process reuse a connection resolved less than this many seconds ago.
CONNECTION_TTL = 60.0
#: JSON's names of the values ``json.loads`` returns, for messages.
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
    """

    def __init__(self, conn_id: str, conn_type: str, conn: Connection) -> None:
        self.conn_id = conn_id
        self.conn_type = conn_type
        self.conn = conn
        self.known = known_extras(conn_type)
        self.extras = _extras_object(conn_id, conn.extra)
        if self.extras:
            from airflow.sdk.log import mask_secret

            mask_secret(self.extras)  # as Airflow's own reader does: values of sensitive keys are masked
        #: Each extra key set that this connection type does not understand, with the closest known name.
        self.unknown_extras = unknown_extras(
            conn_type, [key for key, value in self.extras.items() if not _unset(value)]
        )
        for known in self.known.values():  # every extra set is checked, even one this connection skips
            self.extra(known.name, known.kind, None)
        ca_bundle = self.extra("ca_bundle", str, "")
        if ca_bundle and not os.path.exists(ca_bundle):
            raise self.error("ca_bundle", f"{ca_bundle!r} is not a file or directory on this host")

    def require_known_extras(self) -> None:
        """Raise a :class:`TokenConfigError` naming every extra this connection type does not understand."""
        if self.unknown_extras:
            names = "; ".join(self._describe_unknown(key) for key in self.unknown_extras)
            raise self.error("extra", f"{names}; known extras: {', '.join(sorted(self.known))}")

    def warn_unknown_extras(self) -> None:
        """Log one warning per process for each extra this connection type does not understand."""
        for key in self.unknown_extras:
            if (self.conn_id, key) not in _WARNED_EXTRAS:
                _WARNED_EXTRAS.add((self.conn_id, key))
                log.warning("Connection %r: %s, and is ignored", self.conn_id, self._describe_unknown(key))

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

    @overload
    def number(self, name: str, default: float, minimum: float, maximum: float) -> float: ...
    @overload
    def number(self, name: str, default: None, minimum: float, maximum: float) -> float | None: ...
    def number(self, name: str, default: float | None, minimum: float, maximum: float) -> float | None:
        """Return a numeric extra within ``minimum..maximum``."""
        value = self.extra(name, float, default)
        if value is not None and not minimum <= value <= maximum:
            raise self.error(name, f"{value:g} is outside {minimum:g}..{maximum:g}")
        return value

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
        if "@" in re.split(r"[/?#]", host.split("://", 1)[-1], maxsplit=1)[0]:
            # Never echo the host here: it holds a credential.
            raise self.error(
                "host", "carries credentials (user:password@); set them in the login and password fields"
            )
        try:
            parts = urlsplit(host)
            host_port = parts.port
        except ValueError as exc:
            raise self.error("host", f"{host!r} is not a valid URL ({exc})") from None
        if not parts.scheme or not parts.hostname:
            raise self.error("host", f"{host!r} needs a scheme, like https://{host}")
        if parts.scheme not in ("https", "http"):
            raise self.error("host", f"scheme {parts.scheme!r} is not supported; use https://")
        if (
            parts.scheme == "http"
            and not _is_loopback(parts.hostname)
            and not self.extra("allow_http", bool, False)
        ):
            raise self.error(
                "host",
                f"plain http:// to {parts.hostname} would send credentials unencrypted; use https:// "
                'or set the extra "allow_http": true',
            )
        if port is not None and host_port is None:
            host = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
        elif port is not None and port != host_port:
            raise self.error("port", f"{port} differs from the host's port {host_port}; keep one")
        return host if verbatim else host.rstrip("/")

    def choice(self, name: str, options: dict[str, str], default: str) -> str:
        """Return the value mapped from extra ``name``, which must be one of ``options``."""
        value = self.extra(name, str, default)
        key = value.strip().lower()
        if key not in options:
            raise self.error(name, f"{value!r} is not one of {', '.join(sorted(options))}")
        return options[key]


def _env_value(conn_id: str) -> tuple[str, str]:
    """Return the connection's variable name and value; refuse a URI Airflow misreads, or bad extras."""
    env_var = f"AIRFLOW_CONN_{conn_id.upper()}"
    value = os.environ.get(env_var, "").strip()
    if re.match(r"\d[\w+.-]*://", value):
        # Airflow misreads such a URI (no RFC 3986 scheme starts with a digit).
        from airflow_tokens.get_provider_info import RENAMED_CONNECTION_TYPES

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


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class _Profile:
    """What a hook resolved from its connection and options."""

    settings: ConnectionSettings
    base_url: str
    token_request: TokenRequest
    response_fields: ResponseFields
    fingerprint: str
    seal: EntrySeal
    refresh_margin: float
    cache: TokenCache
    timeout: tuple[float, float]  # (connect, read) from the extras; a hook's timeout option wins
    verify: bool | str
    resolved_at: float


class TokenHook(BaseHook):
    """
    Fetch, cache and hand out a vendor's access token from an Airflow connection.

    Options passed here win over the connection's extras, which win over the defaults.

    :param cache: ``"variable"`` (default: shared by all tasks; memory outside a task), ``"memory"``,
        ``"xcom"`` (with ``xcom_task_id``), ``"none"``, or a :class:`~airflow_tokens.cache.TokenCache`.
    :param xcom_task_id: with ``cache="xcom"``, the task id of the
        :class:`~airflow_tokens.operators.token.FetchTokenOperator` whose encrypted token to reuse.
    :param refresh_margin: seconds before expiry at which a token is replaced (default 60, at most a
        quarter of the token's lifetime).
    :param timeout: connect and read timeouts in seconds, or one number for both (default 10, 30).
    :param retry: a :class:`~airflow_tokens.retry.RetryPolicy` or a ready ``tenacity.Retrying``.
    :param session: the ``requests.Session`` used for token requests.
    :param kwargs: the connection id, by the keyword in ``conn_name_attr`` (``sirv_conn_id=...``).
    """

    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]

    #: The vendor's base URL when the connection has no host; None when the host is required.
    default_base_url: ClassVar[str | None] = None
    #: The connection's host is the whole token URL, required and used verbatim (``token_path`` unused).
    host_is_token_url: ClassVar[bool] = False
    #: A connection field that picks the default base URL instead: (field, {value: base URL}, default value).
    base_url_choice: ClassVar[tuple[str, dict[str, str], str] | None] = None
    #: Path of the token endpoint below the base URL.
    token_path: ClassVar[str] = ""
    #: How to read the vendor's token response.
    response_fields: ClassVar[ResponseFields] = ResponseFields()
    #: Labels of login and password, for messages (they match the connection form).
    login_label: ClassVar[str] = "Client ID"
    password_label: ClassVar[str] = "Client Secret"
    #: What an extra the connection type does not understand causes: False, a warning once per process
    #: (a newer package's extra must not break an older one); True, a :class:`TokenConfigError`.
    strict_extras: bool = False

    def __init__(
        self,
        *,
        cache: str | TokenCache | None = None,
        refresh_margin: float | None = None,
        timeout: float | tuple[float, float] | None = None,
        retry: RetryPolicy | tenacity.Retrying | None = None,
        session: requests.Session | None = None,
        xcom_task_id: str | None = None,
        **kwargs: str,
    ) -> None:
        conn_id = kwargs.pop(self.conn_name_attr, self.default_conn_name)
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments: {', '.join(sorted(kwargs))}")
        super().__init__()
        self.conn_id = conn_id
        self._cache_option = cache
        self._margin_option = refresh_margin
        self._timeout_option = timeout
        self._retry_option = retry
        self._session = session
        self._xcom_task_id = xcom_task_id
        self._resolved: _Profile | None = None

    # Vendor hooks override this: turn the validated connection into the token request.
    def build_request(self, settings: ConnectionSettings, base_url: str) -> TokenRequest:
        """Return the vendor's token request for this connection."""
        raise NotImplementedError

    def resolve_base_url(self, settings: ConnectionSettings) -> str:
        """Return the connection host if set, else the base URL its region/environment field picks."""
        if self.host_is_token_url:
            return settings.base_url(None, verbatim=True)
        if self.base_url_choice is None:
            return settings.base_url(self.default_base_url)
        field, options, default = self.base_url_choice
        return settings.base_url(settings.choice(field, options, default))

    def resolve_response_fields(self, settings: ConnectionSettings) -> ResponseFields:
        """Return how to read this connection's token response (the vendor's :attr:`response_fields`)."""
        return self.response_fields

    @property
    def _profile(self) -> _Profile:
        """Return what this hook resolved from its connection, shared by hooks alike for a short while."""
        if self._resolved is None:
            self._resolved = self._shared_profile(None)
        return self._resolved

    async def _aprofile(self) -> _Profile:
        """Return :attr:`_profile`, reading the connection with ``aget_connection`` when needed."""
        await prepare()  # once per process: what the async path imports, loaded off the event loop
        if self._resolved is None:
            profile = self._shared_profile(None, reuse_only=True)
            if profile is None:
                profile = self._shared_profile(await aload_connection(self.conn_id))
            self._resolved = profile
        return self._resolved

    def _profile_key(self) -> tuple[Any, ...]:
        option = self._cache_option
        return (
            type(self),
            self.conn_id,
            option if isinstance(option, str | None) else id(option),
            self._margin_option,
            self._xcom_task_id,
            self.strict_extras,
        )

    @overload
    def _shared_profile(self, conn: Connection | None) -> _Profile: ...
    @overload
    def _shared_profile(self, conn: None, *, reuse_only: bool) -> _Profile | None: ...
    def _shared_profile(self, conn: Connection | None, *, reuse_only: bool = False) -> _Profile | None:
        key = self._profile_key()
        profile: _Profile | None = MEMORY.profiles.get(key)
        if profile is None or time.monotonic() - profile.resolved_at > CONNECTION_TTL:
            if reuse_only:
                return None
            profile = self._resolve(conn or load_connection(self.conn_id))
            MEMORY.profiles[key] = profile
        return profile

    def _resolve(self, conn: Connection) -> _Profile:
        settings = ConnectionSettings(self.conn_id, self.conn_type, conn)
        if self.strict_extras:
            settings.require_known_extras()
        else:
            settings.warn_unknown_extras()
        base_url = self.resolve_base_url(settings)
        request = self.build_request(settings, base_url)
        return _Profile(
            settings=settings,
            base_url=base_url,
            token_request=request,
            response_fields=self.resolve_response_fields(settings),
            fingerprint=request.fingerprint(),
            seal=EntrySeal(request.material(), self.cache_key),
            refresh_margin=self._resolve_margin(settings),
            cache=self._resolve_cache(settings),
            timeout=(
                settings.number("connect_timeout", DEFAULT_TIMEOUT[0], 0.001, 600),
                settings.number("read_timeout", DEFAULT_TIMEOUT[1], 0.001, 3600),
            ),
            verify=settings.extra("ca_bundle", str, "") or True,
            resolved_at=time.monotonic(),
        )

    def _resolve_margin(self, settings: ConnectionSettings) -> float:
        if self._margin_option is not None:
            if self._margin_option < 0:
                raise TokenConfigError(self.conn_id, "refresh_margin", "must not be negative")
            return float(self._margin_option)
        return settings.number("refresh_margin", DEFAULT_REFRESH_MARGIN, 0, 86400)

    def _resolve_cache(self, settings: ConnectionSettings) -> TokenCache:
        option = self._cache_option
        if isinstance(option, TokenCache):
            return option
        name = option if option is not None else settings.extra("cache", str, "variable")
        if name not in CACHES:
            raise TokenConfigError(self.conn_id, "cache", f"{name!r} is not one of {', '.join(CACHES)}")
        if name == "xcom":
            if not self._xcom_task_id:
                raise TokenConfigError(
                    self.conn_id, "xcom_task_id", "cache='xcom' needs the task id of the FetchTokenOperator"
                )
            return TokenCache(XComStore(self._xcom_task_id, self.conn_id))
        if name == "variable":
            lease = settings.number("lease_seconds", DEFAULT_LEASE_SECONDS, 0, 3600)
            return TokenCache(VariableStore(), lease_seconds=lease)
        return TokenCache(None, remember=name == "memory")

    @property
    def settings(self) -> ConnectionSettings:
        """Return the validated connection."""
        return self._profile.settings

    @property
    def base_url(self) -> str:
        """Return the vendor API base URL for this connection (also the root for ``get_conn`` calls)."""
        return self._profile.base_url

    @property
    def token_request(self) -> TokenRequest:
        """Return the token request, validated before anything is sent."""
        return self._profile.token_request

    @property
    def fingerprint(self) -> str:
        """Return the digest of the token request; a changed credential gives another fingerprint."""
        return self._profile.fingerprint

    @property
    def seal(self) -> EntrySeal:
        """Return the encryption of this connection's cache entries (its key comes from the secret)."""
        return self._profile.seal

    @property
    def refresh_margin(self) -> float:
        """Return the refresh margin in seconds."""
        return self._profile.refresh_margin

    @property
    def cache(self) -> TokenCache:
        """Return the token cache chosen by option, extra or default."""
        return self._profile.cache

    @cached_property
    def transport(self) -> Transport:
        """Return the HTTP session, timeouts and TLS settings."""
        profile = self._profile
        timeout = profile.timeout
        if self._timeout_option is not None:
            option = self._timeout_option
            timeout = option if isinstance(option, tuple) else (float(option), float(option))
            if min(timeout) <= 0:
                raise TokenConfigError(self.conn_id, "timeout", "must be positive")
        return Transport(self._session, timeout, profile.verify)

    @cached_property
    def retrying(self) -> tenacity.Retrying:
        """Return the retry controller: the hook option, else the policy from extras and defaults."""
        option = self._retry_option
        if option is not None and not isinstance(option, RetryPolicy):
            return option
        policy = option or RetryPolicy(
            max_attempts=int(self.settings.number("max_attempts", DEFAULT_RETRY.max_attempts, 1, 100)),
            max_seconds=self.settings.number("max_retry_seconds", DEFAULT_RETRY.max_seconds, 0, 3600),
        )
        return policy.retrying()

    @property
    def cache_key(self) -> str:
        """Return the key under which this connection's token is cached."""
        return f"{self.conn_type}.{self.conn_id}"

    def _fetch_flow(self) -> Flow[AccessToken]:
        """Return the token request under the retry policy, as a flow either driver runs."""
        profile = self._profile
        return fetch_flow(
            self.conn_id,
            profile.token_request,
            profile.response_fields,
            self.retrying,
            self.transport,
            vendor=self.conn_type,
        )

    def _fetch(self) -> AccessToken:
        """Send the token request now; whoever hands the token out masks it."""
        return run(self._fetch_flow())

    def fetch_access_token(self) -> AccessToken:
        """Request a new token from the vendor, bypassing every cache (the token is masked, too)."""
        token = self._fetch()
        mask_once(token)
        return token

    async def afetch_access_token(self) -> AccessToken:
        """Request a new token as :meth:`fetch_access_token` does, without blocking the event loop."""
        await self._aprofile()
        token = await arun(self._fetch_flow())
        mask_once(token)
        return token

    def _lookup(
        self, get: Callable[..., _R], profile: _Profile, force_refresh: bool, rejected: str | None
    ) -> _R:
        """Call the cache's ``get`` or ``aget`` for this connection's token."""
        return get(
            self.cache_key,
            profile.fingerprint,
            profile.refresh_margin,
            self._fetch_flow,
            seal=profile.seal,
            force_refresh=force_refresh,
            rejected=rejected,
        )

    def get_access_token(self, force_refresh: bool = False, *, rejected: str | None = None) -> AccessToken:
        """Return a token that stays valid for the refresh margin, from cache or a new request."""
        profile = self._profile
        token = self._lookup(profile.cache.get, profile, force_refresh, rejected)
        mask_once(token)
        return token

    async def aget_access_token(
        self, force_refresh: bool = False, *, rejected: str | None = None
    ) -> AccessToken:
        """Return a token as :meth:`get_access_token` does, without blocking the event loop."""
        profile = await self._aprofile()
        token = await self._lookup(profile.cache.aget, profile, force_refresh, rejected)
        mask_once(token)
        return token

    def get_token(self, force_refresh: bool = False) -> str:
        """Return the access token value."""
        return self.get_access_token(force_refresh).token

    async def aget_token(self, force_refresh: bool = False) -> str:
        """Return the access token value without blocking the event loop."""
        return (await self.aget_access_token(force_refresh)).token

    def get_auth_header(self) -> dict[str, str]:
        """Return the Authorization header that sends the token."""
        return {"Authorization": self.get_access_token().authorization}

    async def aget_auth_header(self) -> dict[str, str]:
        """Return the Authorization header that sends the token, without blocking the event loop."""
        return {"Authorization": (await self.aget_access_token()).authorization}

    def get_conn(self) -> requests.Session:
        """Return a session that sends the token and renews it once when the vendor answers 401."""
        import requests

        from airflow_tokens.session import TokenAuth

        session = requests.Session()
        session.auth = TokenAuth(self)
        return session

    async def aget_conn(self) -> httpx.AsyncClient:
        """Return an httpx client for the vendor API that sends the token and renews it once on 401."""
        profile = await self._aprofile()

        import httpx

        from airflow_tokens.session import AsyncTokenAuth

        # TLS verified as get_conn() verifies it (default CAs), with the context built off the event loop.
        return httpx.AsyncClient(base_url=profile.base_url, auth=AsyncTokenAuth(self), verify=await prepare())

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a new token to check the connection; an unknown extra fails it; never shows the token."""
        try:
            self.settings.require_known_extras()
            token = self.fetch_access_token()
        except TokenError as exc:
            return False, str(exc)
        scope = f", scope {' '.join(token.scope)}" if token.scope else ""
        return True, f"Got a {token.token_type} token valid for {token.lifetime:.0f} s{scope}"
