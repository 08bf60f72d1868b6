"""The hook every vendor is: its options, its resolved connection, and the token it hands out."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, Unpack, overload

from airflow.sdk import BaseHook

from airflow_tokens.cache import TokenCache
from airflow_tokens.connection import ConnectionSettings, aload_connection, load_connection
from airflow_tokens.endpoint import build_request, default_body, endpoint_for
from airflow_tokens.exceptions import TokenConfigError, TokenError
from airflow_tokens.fetch import fetch_flow
from airflow_tokens.flow import arun, prepare, run
from airflow_tokens.memory import MEMORY, mask_once, masked
from airflow_tokens.options import (
    CA_BUNDLE,
    CACHE,
    CONNECT_TIMEOUT,
    LEASE_SECONDS,
    MAX_ATTEMPTS,
    MAX_RESPONSE_BYTES,
    MAX_RETRY_SECONDS,
    READ_TIMEOUT,
    REFRESH_MARGIN,
)
from airflow_tokens.request import Transport
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.sealing import EntrySeal
from airflow_tokens.stores import VariableStore, XComStore
from airflow_tokens.vendors import CALL_OPTIONS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import httpx
    import requests
    import tenacity
    from airflow.sdk import Connection

    from airflow_tokens.flow import Flow
    from airflow_tokens.request import TokenRequest
    from airflow_tokens.response import ResponseFields
    from airflow_tokens.token import AccessToken
    from airflow_tokens.vendors import CallOptions, Vendor

_R = TypeVar("_R")
#: What a caller asked for per call: sorted (option, value) pairs, e.g. (("scope", "read"),).
Asked = tuple[tuple[str, str], ...]

#: What HttpOperator passes to the hook of its connection's type (``Connection.get_hook(hook_params=...)``).
_HTTP_HOOK_PARAMS = frozenset({"method", "auth_type", "tcp_keep_alive"})

#: New hook objects in one process reuse a connection resolved less than this many seconds ago.
CONNECTION_TTL = 60.0


def asked_for(options: CallOptions | Mapping[str, Any]) -> Asked:
    """Return what a call asked for: the options given (a list of scopes joined by spaces), sorted."""
    asked = []
    value: Any
    for name, value in options.items():
        if name not in CALL_OPTIONS:
            raise TypeError(f"unexpected argument {name!r}; a call may ask for {', '.join(CALL_OPTIONS)}")
        if value is None:
            continue
        text = value if isinstance(value, str) else " ".join(value)
        asked.append((name, text))
    return tuple(sorted(asked))


async def _amask(token: AccessToken) -> None:
    """Mask ``token`` as :func:`mask_once` does, the first time off the event loop (its cost grows)."""
    if not masked(token):
        await asyncio.to_thread(mask_once, token)


@dataclass(frozen=True, slots=True)
class _Profile:
    """What a hook resolved from its connection and options."""

    settings: ConnectionSettings
    base_url: str
    cache_key: str
    token_request: TokenRequest
    response_fields: ResponseFields
    fingerprint: str
    seal: EntrySeal
    refresh_margin: float
    cache: TokenCache | None  # None: every call fetches
    timeout: tuple[float, float]  # (connect, read) from the extras; a hook's timeout option wins
    verify: bool | str
    max_body: int
    proxies: dict[str, str] | None
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

    #: The vendor's row (:mod:`airflow_tokens.vendors`); the class attributes below derive from it.
    vendor: ClassVar[Vendor]
    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    #: Labels of login and password, for messages (they match the connection form).
    login_label: ClassVar[str]
    password_label: ClassVar[str]
    #: What an extra the connection type does not understand causes: False, a warning once per process
    #: (a newer package's extra must not break an older one); True, a :class:`TokenConfigError`.
    strict_extras: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        vendor = cls.__dict__.get("vendor")
        if vendor is not None:
            cls.conn_name_attr = vendor.conn_name_attr
            cls.default_conn_name = vendor.default_conn_name
            cls.conn_type = vendor.conn_type
            cls.hook_name = vendor.name
            cls.login_label = vendor.login_label
            cls.password_label = vendor.password_label

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
        if _HTTP_HOOK_PARAMS & set(kwargs):
            # HttpOperator builds the hook of its connection's type with these: it would send the
            # vendor's client ID and secret to the API as HTTP Basic.
            raise TokenConfigError(
                conn_id,
                "conn_type",
                f"is a {self.hook_name} connection, which HttpOperator cannot call an API with (it would "
                f"send the {self.login_label} and {self.password_label} as HTTP Basic); use "
                f"airflow_tokens.http.TokenHttpOperator(http_conn_id={conn_id!r}, ...), or an http "
                f"connection with auth_type=airflow_tokens.http.token_auth({conn_id!r})",
            )
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
        self._resolved: dict[Asked, _Profile] = {}

    def request_body(
        self, settings: ConnectionSettings, static: dict[str, Any], credentials: dict[str, str]
    ) -> dict[str, Any]:
        """Return the request body from the static fields and the credential fields (vendors with code)."""
        return default_body(settings, static, credentials)

    def resolve_base_url(self, settings: ConnectionSettings) -> str:
        """Return the connection host if set, else the vendor's base URL or the one its option picks."""
        vendor = self.vendor
        if vendor.host_is_token_url:
            return settings.base_url(None, verbatim=True)
        if vendor.base_url_option is None:
            return settings.base_url(vendor.base_url)
        return settings.base_url(settings.choice(vendor.base_url_option))

    @property
    def _profile(self) -> _Profile:
        """Return what this hook resolved from its connection, shared by hooks alike for a short while."""
        return self._profile_for(())

    def _profile_for(self, asked: Asked) -> _Profile:
        """Return the profile of the token asked for (a scope, an audience; ``()`` for the extras' own)."""
        profile = self._resolved.get(asked)
        if profile is None:
            profile = self._resolved[asked] = self._shared_profile(None, asked)
        return profile

    async def _aprofile(self, asked: Asked = ()) -> _Profile:
        """Return :meth:`_profile_for`, reading the connection with ``aget_connection`` when needed."""
        await prepare()  # once per process: what the async path imports, loaded off the event loop
        profile = self._resolved.get(asked)
        if profile is None:
            profile = self._shared_profile(None, asked, reuse_only=True)
            if profile is None:
                profile = self._shared_profile(await aload_connection(self.conn_id), asked)
            self._resolved[asked] = profile
        return profile

    def _profile_key(self, asked: Asked) -> tuple[Any, ...]:
        option = self._cache_option
        return (
            type(self),
            self.conn_id,
            option if isinstance(option, str | None) else id(option),
            self._margin_option,
            self._xcom_task_id,
            self.strict_extras,
            asked,
        )

    @overload
    def _shared_profile(self, conn: Connection | None, asked: Asked) -> _Profile: ...
    @overload
    def _shared_profile(self, conn: None, asked: Asked, *, reuse_only: bool) -> _Profile | None: ...
    def _shared_profile(
        self, conn: Connection | None, asked: Asked, *, reuse_only: bool = False
    ) -> _Profile | None:
        key = self._profile_key(asked)
        profile: _Profile | None = MEMORY.profiles.get(key)
        if profile is None or time.monotonic() - profile.resolved_at > CONNECTION_TTL:
            if reuse_only:
                return None
            profile = self._resolve(conn or load_connection(self.conn_id), asked)
            MEMORY.profiles[key] = profile
        return profile

    def _cache_key_for(self, asked: Asked) -> str:
        """Return the cache key of the token asked for: the connection's, and a digest of what was asked."""
        if not asked:
            return self.cache_key
        digest = hashlib.sha256(json.dumps(asked).encode()).hexdigest()[:16]
        return f"{self.cache_key}@{digest}"

    def _resolve(self, conn: Connection, asked: Asked = ()) -> _Profile:
        settings = ConnectionSettings(self.conn_id, self.conn_type, conn, dict(asked))
        if self.strict_extras:
            settings.require_known_extras()
        base_url = self.resolve_base_url(settings)
        url = base_url if self.vendor.host_is_token_url else base_url + self.vendor.token_path
        request = build_request(settings, self.vendor, url, self.request_body)
        if self.strict_extras:
            settings.require_known_extras()  # again: the request builder names what it left unread
        else:
            settings.warn_unknown_extras()
        cache_key = self._cache_key_for(asked)
        return _Profile(
            settings=settings,
            base_url=base_url,
            cache_key=cache_key,
            token_request=request,
            response_fields=endpoint_for(self.vendor, settings).response,
            fingerprint=request.fingerprint(),
            seal=EntrySeal(request.material(), cache_key, dict(asked)),
            refresh_margin=self._resolve_margin(settings),
            cache=self._resolve_cache(settings),
            timeout=(settings.value(CONNECT_TIMEOUT), settings.value(READ_TIMEOUT)),
            verify=settings.value(CA_BUNDLE) or True,
            max_body=int(settings.value(MAX_RESPONSE_BYTES)),
            proxies=settings.proxies(),
            resolved_at=time.monotonic(),
        )

    def _resolve_margin(self, settings: ConnectionSettings) -> float:
        if self._margin_option is not None:
            if self._margin_option < 0:
                raise TokenConfigError(self.conn_id, "refresh_margin", "must not be negative")
            return float(self._margin_option)
        return settings.value(REFRESH_MARGIN)

    def _resolve_cache(self, settings: ConnectionSettings) -> TokenCache | None:
        """Return the cache chosen by option, extra or default; None for ``cache="none"``."""
        option = self._cache_option
        if isinstance(option, TokenCache):
            return option
        name = settings.pick(CACHE, option) if option is not None else settings.choice(CACHE)
        if name == "xcom":
            if not self._xcom_task_id:
                raise TokenConfigError(
                    self.conn_id, "xcom_task_id", "cache='xcom' needs the task id of the FetchTokenOperator"
                )
            return TokenCache(XComStore(self._xcom_task_id, self.conn_id))
        if name == "variable":
            return TokenCache(VariableStore(), lease_seconds=settings.value(LEASE_SECONDS))
        if name == "memory":
            return TokenCache(None)
        return None

    @property
    def settings(self) -> ConnectionSettings:
        """Return the validated connection."""
        return self._profile.settings

    @property
    def base_url(self) -> str:
        """Return the vendor API base URL for this connection (also the root for ``get_conn`` calls)."""
        return self._profile.base_url

    @property
    def api_base_url(self) -> str:
        """Return where the vendor's API is: the ``api_base_url`` extra, else :attr:`base_url`."""
        default = None if self.vendor.host_is_token_url else self.base_url
        return self.settings.api_base_url(default)

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
    def cache(self) -> TokenCache | None:
        """Return the token cache chosen by option, extra or default; None when nothing is cached."""
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
        return Transport(self._session, timeout, profile.verify, profile.max_body, profile.proxies)

    @cached_property
    def retrying(self) -> tenacity.Retrying:
        """Return the retry controller: the hook option, else the policy from extras and defaults."""
        option = self._retry_option
        if option is not None and not isinstance(option, RetryPolicy):
            return option
        policy = option or RetryPolicy(
            max_attempts=int(self.settings.value(MAX_ATTEMPTS)),
            max_seconds=self.settings.value(MAX_RETRY_SECONDS),
        )
        return policy.retrying()

    @property
    def cache_key(self) -> str:
        """Return the key under which this connection's token is cached."""
        return f"{self.conn_type}.{self.conn_id}"

    def _fetch_flow(self, profile: _Profile) -> Flow[AccessToken]:
        """Return the token request under the retry policy, as a flow either driver runs."""
        return fetch_flow(
            self.conn_id,
            profile.token_request,
            profile.response_fields,
            self.retrying,
            self.transport,
            vendor=self.conn_type,
        )

    def fetch_access_token(self, **asked: Unpack[CallOptions]) -> AccessToken:
        """Request a new token from the vendor, bypassing every cache (the token is masked, too)."""
        token = run(self._fetch_flow(self._profile_for(asked_for(asked))))
        mask_once(token)
        return token

    async def afetch_access_token(self, **asked: Unpack[CallOptions]) -> AccessToken:
        """Request a new token as :meth:`fetch_access_token` does, without blocking the event loop."""
        profile = await self._aprofile(asked_for(asked))
        token = await arun(self._fetch_flow(profile))
        await _amask(token)
        return token

    def _lookup(
        self, get: Callable[..., _R], profile: _Profile, force_refresh: bool, rejected: str | None
    ) -> _R:
        """Call the cache's ``get`` or ``aget`` for this connection's token."""
        return get(
            profile.cache_key,
            profile.fingerprint,
            profile.refresh_margin,
            functools.partial(self._fetch_flow, profile),
            seal=profile.seal,
            force_refresh=force_refresh,
            rejected=rejected,
        )

    def get_access_token(
        self, force_refresh: bool = False, *, rejected: str | None = None, **asked: Unpack[CallOptions]
    ) -> AccessToken:
        """
        Return a token that stays valid for the refresh margin, from cache or a new request.

        :param force_refresh: fetch a new token even if the cached one is fresh.
        :param rejected: a token the vendor refused (HTTP 401): dropped if still cached, then renewed.
        :param asked: ``scope`` (a string or a list), ``audience`` or ``resource`` to ask for instead of
            the connection's; each combination is its own cache entry.
        """
        profile = self._profile_for(asked_for(asked))
        if profile.cache is None:
            token = run(self._fetch_flow(profile))
        else:
            token = self._lookup(profile.cache.get, profile, force_refresh, rejected)
        mask_once(token)
        return token

    async def aget_access_token(
        self, force_refresh: bool = False, *, rejected: str | None = None, **asked: Unpack[CallOptions]
    ) -> AccessToken:
        """Return a token as :meth:`get_access_token` does, without blocking the event loop."""
        profile = await self._aprofile(asked_for(asked))
        if profile.cache is None:
            token = await arun(self._fetch_flow(profile))
        else:
            token = await self._lookup(profile.cache.aget, profile, force_refresh, rejected)
        await _amask(token)
        return token

    def get_token(self, force_refresh: bool = False, **asked: Unpack[CallOptions]) -> str:
        """Return the access token value (``scope``, ``audience``, ``resource`` as for get_access_token)."""
        return self.get_access_token(force_refresh, **asked).token

    async def aget_token(self, force_refresh: bool = False, **asked: Unpack[CallOptions]) -> str:
        """Return the access token value without blocking the event loop."""
        return (await self.aget_access_token(force_refresh, **asked)).token

    def get_auth_header(self, **asked: Unpack[CallOptions]) -> dict[str, str]:
        """Return the Authorization header that sends the token."""
        return {"Authorization": self.get_access_token(**asked).authorization}

    async def aget_auth_header(self, **asked: Unpack[CallOptions]) -> dict[str, str]:
        """Return the Authorization header that sends the token, without blocking the event loop."""
        return {"Authorization": (await self.aget_access_token(**asked)).authorization}

    def get_conn(self, **asked: Unpack[CallOptions]) -> requests.Session:
        """Return a session that sends the token and renews it once when the vendor answers 401."""
        import requests

        from airflow_tokens.session import TokenAuth

        asked_for(asked)  # an unknown option fails here, not at the first request
        session = requests.Session()
        session.auth = TokenAuth(self, **asked)
        return session

    async def aget_conn(self, **asked: Unpack[CallOptions]) -> httpx.AsyncClient:
        """Return an httpx client for the vendor API that sends the token and renews it once on 401."""
        profile = await self._aprofile(asked_for(asked))

        import httpx

        from airflow_tokens.session import HttpxTokenAuth

        # TLS verified as get_conn() verifies it (default CAs), with the context built off the event loop.
        return httpx.AsyncClient(
            base_url=profile.base_url, auth=HttpxTokenAuth(self, **asked), verify=await prepare()
        )

    def test_connection(self) -> tuple[bool, str]:
        """Fetch a new token to check the connection; an unknown extra fails it; never shows the token."""
        try:
            self.settings.require_known_extras()
            token = self.fetch_access_token()
        except TokenError as exc:
            return False, str(exc)
        scope = f", scope {' '.join(token.scope)}" if token.scope else ""
        return True, f"Got a {token.token_type} token valid for {token.lifetime:.0f} s{scope}"
