"""Call a vendor's API the way Airflow users do: the HTTP provider, requests and httpx carry the token.

- :func:`token_auth`: a class for ``auth_type=`` of the provider's ``HttpHook`` and ``HttpOperator``
  (with an ``http`` connection that names the API), also a requests authentication;
- :func:`httpx_auth`: the same for ``httpx.Client`` and ``httpx.AsyncClient``;
- :class:`TokenHttpHook`, :class:`TokenHttpOperator`, :class:`TokenHttpSensor`: the provider's classes
  on the vendor's connection alone (its ``api_base_url`` extra, else its base URL).

Each sends ``Authorization: <type> <token>``, one token request serving every call while the token is
fresh, and renews the token once when the API answers 401. A vendor connection's login and password
go to its token endpoint only. The provider's deferrable mode is refused: its trigger would run the
call with aiohttp, which authenticates with HTTP Basic only; use
:class:`~airflow_tokens.operators.job.RunJobOperator`, whose trigger fetches the token itself.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any

from requests import Session

try:
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.providers.http.operators.http import HttpOperator
    from airflow.providers.http.sensors.http import HttpSensor
except ModuleNotFoundError as exc:  # pragma: no cover - shown by a test in a subprocess
    if not (exc.name or "").startswith("airflow.providers.http"):
        raise
    raise ModuleNotFoundError(
        "airflow_tokens.http builds on Airflow's HTTP provider, which is not installed: "
        'pip install "airflow-tokens[http]" (apache-airflow-providers-http)',
        name=exc.name,
    ) from exc

from airflow_tokens.exceptions import TokenConfigError, TokenError
from airflow_tokens.hooks import get_token_hook
from airflow_tokens.session import HttpxTokenAuth, TokenAuth
from airflow_tokens.vendors import CALL_OPTIONS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context
    from airflow.sdk.bases.sensor import PokeReturnValue

    from airflow_tokens.hooks.base import TokenHook
    from airflow_tokens.vendors import CallOptions

log = logging.getLogger(__name__)

#: Why a deferrable HTTP call cannot carry a token, and what to use instead.
NOT_DEFERRABLE = (
    "the HTTP provider's deferrable mode cannot carry airflow-tokens tokens (its trigger calls the API "
    "with aiohttp, which authenticates with HTTP Basic only, and a token must never be written into "
    "trigger arguments, which the metadata database keeps in clear); use deferrable=False, or "
    "airflow_tokens.operators.job.RunJobOperator, whose trigger fetches the token itself"
)


class TokenAuthNotDeferrable:
    """What a deferred ``HttpOperator`` finds for a :func:`token_auth` class: a clear refusal."""

    def __init__(self, *args: Any) -> None:
        raise TokenError("", f"auth_type=token_auth(...): {NOT_DEFERRABLE}")


def _split(options: dict[str, Any]) -> tuple[CallOptions, dict[str, Any]]:
    """Split keyword options into what to ask the token for and the token hook's own options."""
    asked: Any = {name: options.pop(name) for name in CALL_OPTIONS if name in options}
    return asked, options


def token_auth(conn_id: str, **options: Any) -> type[TokenAuth]:
    """
    Return a requests authentication class that sends the token of connection ``conn_id``.

    Give it as ``auth_type`` to ``HttpHook`` or ``HttpOperator`` with an ``http`` connection whose
    host is the API: the HTTP provider builds it with that connection's login and password, which it
    never sends. Its instances also work as ``auth=`` of requests.

    :param conn_id: any airflow-tokens connection.
    :param options: ``scope``, ``audience`` or ``resource`` to ask for instead of the connection's, and
        options of the connection's token hook (``cache``, ``refresh_margin``...).
    """
    asked, hook_options = _split(options)

    class ConnectionTokenAuth(TokenAuth):
        def __init__(self, *login_password: Any) -> None:
            if any(login_password):
                log.info(
                    "Sending the token of connection %r; the HTTP connection's login and password are "
                    "not sent",
                    conn_id,
                )
            super().__init__(get_token_hook(conn_id, **hook_options), **asked)

    ConnectionTokenAuth.__doc__ = f"Send the token of connection {conn_id!r}."
    # The HTTP provider's deferrable mode re-imports an auth class by module and name in the triggerer:
    # it finds the refusal, not a class that would fail obscurely (or send Basic credentials).
    ConnectionTokenAuth.__module__ = __name__
    ConnectionTokenAuth.__name__ = ConnectionTokenAuth.__qualname__ = TokenAuthNotDeferrable.__name__
    return ConnectionTokenAuth


def httpx_auth(conn_id: str, **options: Any) -> HttpxTokenAuth:
    """
    Return an httpx authentication (``httpx.Client`` and ``httpx.AsyncClient``) with ``conn_id``'s token.

    :param conn_id: any airflow-tokens connection.
    :param options: ``scope``, ``audience`` or ``resource`` to ask for instead of the connection's, and
        options of the connection's token hook (``cache``, ``refresh_margin``...).
    """
    asked, hook_options = _split(options)
    return HttpxTokenAuth(get_token_hook(conn_id, **hook_options), **asked)


class TokenHttpHook(HttpHook):
    """
    Call a vendor's API with the vendor's connection alone: its token, at its API base URL.

    The base URL is the connection's ``api_base_url`` extra, else its base URL (the host, or the
    vendor's default). The connection's extras configure the token, so, unlike ``HttpHook``, none
    becomes a header; ``extra_options`` (``verify``, ``proxies``, ``timeout``...) apply as there.

    :param method: the HTTP method of the calls.
    :param http_conn_id: the vendor's connection (any airflow-tokens connection type).
    :param token_options: options of the connection's token hook (``cache``, ``refresh_margin``...).
    :param options: ``scope``, ``audience`` or ``resource`` to ask for instead of the connection's,
        and the options of ``HttpHook`` (``tcp_keep_alive``, ``adapter``...).
    """

    hook_name = "Vendor API (airflow-tokens)"

    def __init__(
        self,
        method: str = "POST",
        http_conn_id: str = "sirv_default",
        *,
        token_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        _refuse_auth_type(http_conn_id, options)
        self.asked, http_options = _split(options)
        super().__init__(method=method, http_conn_id=http_conn_id, **http_options)
        self.token_options = dict(token_options or {})

    @cached_property
    def token_hook(self) -> TokenHook:
        """Return the token hook of the connection."""
        return get_token_hook(self.http_conn_id, **self.token_options)

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> Session:
        """Return a session on the vendor's API that sends the token and renews it once on 401."""
        hook = self.token_hook
        self.base_url = hook.api_base_url
        self._base_url_initialized = True
        session = Session()
        session.auth = TokenAuth(hook, **self.asked)
        options = self.merged_extra = dict(extra_options or {})
        session.proxies = dict(options.get("proxies") or options.get("proxy") or {})
        session.stream = options.get("stream", False)
        session.verify = options.get("verify", options.get("verify_ssl", True))
        session.cert = options.get("cert")
        session.trust_env = options.get("trust_env", True)
        if "max_redirects" in options:
            session.max_redirects = int(options["max_redirects"])
        session = self._configure_session_from_mount_adapters(session)
        if headers:
            session.headers.update(headers)
        return session


def _refuse_auth_type(conn_id: str, options: dict[str, Any]) -> None:
    """Refuse an ``auth_type``: the connection's token is the authentication."""
    if options.pop("auth_type", None) is not None:
        raise TokenConfigError(
            conn_id, "auth_type", "the connection's token is the authentication; leave it unset"
        )


class _OnVendorConnection:
    """
    What the token operator and sensor add to the provider's class: the vendor's connection and token.

    :param http_conn_id: the vendor's connection (any airflow-tokens connection type).
    :param scope: the scopes to ask for instead of the connection's.
    :param audience: the audience to ask for instead of the connection's.
    :param resource: the resource to ask for instead of the connection's.
    :param token_options: options of the connection's token hook (``cache``, ``refresh_margin``...).
    :param kwargs: the options of the provider's class; not ``deferrable``, not ``auth_type``.
    """

    http_conn_id: str
    method: str
    tcp_keep_alive: bool
    tcp_keep_alive_idle: int
    tcp_keep_alive_count: int
    tcp_keep_alive_interval: int

    def __init__(
        self,
        *,
        http_conn_id: str,
        scope: str | Sequence[str] | None = None,
        audience: str | None = None,
        resource: str | None = None,
        token_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("deferrable", False):
            raise TokenConfigError(http_conn_id, "deferrable", NOT_DEFERRABLE)
        _refuse_auth_type(http_conn_id, kwargs)
        super().__init__(http_conn_id=http_conn_id, deferrable=False, **kwargs)  # type: ignore[call-arg]
        self.scope = scope
        self.audience = audience
        self.resource = resource
        self.token_options = token_options

    def _token_http_hook(self) -> TokenHttpHook:
        """Return the hook that calls the vendor's API with the connection's token."""
        return TokenHttpHook(
            method=self.method,
            http_conn_id=self.http_conn_id,
            scope=self.scope,
            audience=self.audience,
            resource=self.resource,
            token_options=self.token_options,
            tcp_keep_alive=self.tcp_keep_alive,
            tcp_keep_alive_idle=self.tcp_keep_alive_idle,
            tcp_keep_alive_count=self.tcp_keep_alive_count,
            tcp_keep_alive_interval=self.tcp_keep_alive_interval,
        )


class TokenHttpOperator(_OnVendorConnection, HttpOperator):
    """
    Call a vendor's API as ``HttpOperator`` does, with the vendor's connection and its token.

    Takes ``HttpOperator``'s options (``endpoint``, ``method``, ``data``, ``headers``,
    ``response_check``, ``response_filter``, ``pagination_function``, ``retry_args``...) and those of
    :class:`_OnVendorConnection` (``http_conn_id``, ``scope``, ``audience``, ``resource``,
    ``token_options``); not ``deferrable``, not ``auth_type``.
    """

    template_fields: Sequence[str] = (*HttpOperator.template_fields, "scope", "audience", "resource")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # defined here for Airflow's operator metaclass, which wraps it

    @property
    def hook(self) -> TokenHttpHook:
        """Return the hook that calls the vendor's API with the connection's token."""
        return self._token_http_hook()


class TokenHttpSensor(_OnVendorConnection, HttpSensor):
    """
    Poke a vendor's API as ``HttpSensor`` does, with the vendor's connection and its token.

    Takes ``HttpSensor``'s options (``endpoint``, ``response_check``, ``poke_interval``...) and those
    of :class:`_OnVendorConnection`; not ``deferrable``.
    """

    template_fields: Sequence[str] = (*HttpSensor.template_fields, "scope", "audience", "resource")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # defined here for Airflow's operator metaclass, which wraps it

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Call the endpoint with the token; true once ``response_check`` (if any) says so."""
        from airflow.sdk.bases.decorator import determine_kwargs
        from airflow.sdk.exceptions import AirflowException

        self.log.info("Poking: %s", self.endpoint)
        try:
            response = self._token_http_hook().run(
                self.endpoint,
                data=self.request_params,
                headers=self.headers,
                extra_options=self.extra_options,
                **self.request_kwargs,
            )
        except AirflowException as exc:
            if str(exc).startswith(self.response_error_codes_allowlist):
                return False
            raise
        if self.response_check:
            kwargs = determine_kwargs(self.response_check, [response], context)
            result: bool | PokeReturnValue = self.response_check(response, **kwargs)
            return result
        return True
