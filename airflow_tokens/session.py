"""Authentications (requests and httpx) that send a hook's token and renew it once on 401."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Unpack

import httpx
import requests.auth

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator

    from airflow_tokens.token import AccessToken
    from airflow_tokens.vendors import CallOptions


class TokenSource(Protocol):
    """What hands out tokens to an authentication: a token hook."""

    def get_access_token(
        self, force_refresh: bool = False, *, rejected: str | None = None, **asked: Unpack[CallOptions]
    ) -> AccessToken:
        """Return a fresh token; ``rejected`` names one the vendor refused."""

    async def aget_access_token(
        self, force_refresh: bool = False, *, rejected: str | None = None, **asked: Unpack[CallOptions]
    ) -> AccessToken:
        """Return a fresh token without blocking the event loop."""


log = logging.getLogger(__name__)

_SENT_TOKEN = "_airflow_tokens_sent"
_REFUSED = "The vendor refused the token (HTTP 401); renewing it and retrying once"


class TokenAuth(requests.auth.AuthBase):
    """
    Send the hook's token; on a 401, drop that token if it is still cached, renew it, retry once.

    :param hook: the token hook (or any :class:`TokenSource`) that supplies tokens.
    :param asked: ``scope``, ``audience`` or ``resource`` to ask for instead of the connection's.
    """

    def __init__(self, hook: TokenSource, **asked: Unpack[CallOptions]) -> None:
        self.hook = hook
        self.asked = asked

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the Authorization header and the 401 handler to ``request``."""
        self._authorize(request, self.hook.get_access_token(**self.asked))
        request.register_hook("response", self._retry_on_401)  # type: ignore[no-untyped-call]
        return request

    @staticmethod
    def _authorize(request: requests.PreparedRequest, token: Any) -> None:
        request.headers["Authorization"] = token.authorization
        setattr(request, _SENT_TOKEN, token.token)

    def _retry_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        sent = getattr(response.request, _SENT_TOKEN, None)
        if response.status_code != 401 or sent is None:
            return response
        log.info(_REFUSED)
        token = self.hook.get_access_token(rejected=sent, **self.asked)
        response.content  # noqa: B018 - drain the body so the connection can be reused
        response.close()
        retry = response.request.copy()
        self._authorize(retry, token)
        setattr(retry, _SENT_TOKEN, None)
        second: requests.Response = response.connection.send(retry, **kwargs)
        second.history.append(response)
        second.request = retry
        return second


@dataclass(frozen=True, slots=True)
class _NeedToken:
    """Ask the driver of :meth:`HttpxTokenAuth._flow` for a token (``rejected``: the one refused)."""

    rejected: str | None = None


class HttpxTokenAuth(httpx.Auth):
    """
    Send the hook's token with an httpx client, sync or async; on a 401, renew it and retry once.

    :param hook: the token hook (or any :class:`TokenSource`) that supplies tokens.
    :param asked: ``scope``, ``audience`` or ``resource`` to ask for instead of the connection's.
    """

    def __init__(self, hook: TokenSource, **asked: Unpack[CallOptions]) -> None:
        self.hook = hook
        self.asked = asked

    @staticmethod
    def _flow(request: httpx.Request) -> Generator[_NeedToken | httpx.Request, Any, None]:
        """Decide once for both drivers: ask for a token, send, and on a 401 ask again and resend."""
        token: AccessToken = yield _NeedToken()
        request.headers["Authorization"] = token.authorization
        response: httpx.Response = yield request
        if response.status_code == 401:
            log.info(_REFUSED)
            token = yield _NeedToken(rejected=token.token)
            request.headers["Authorization"] = token.authorization
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Run :meth:`_flow` with ``get_access_token``."""
        flow = self._flow(request)
        step = next(flow)
        try:
            while True:
                if isinstance(step, _NeedToken):
                    step = flow.send(self.hook.get_access_token(rejected=step.rejected, **self.asked))
                else:
                    step = flow.send((yield step))
        except StopIteration:
            return

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Run :meth:`_flow` with ``aget_access_token``."""
        flow = self._flow(request)
        step = next(flow)
        try:
            while True:
                if isinstance(step, _NeedToken):
                    token = await self.hook.aget_access_token(rejected=step.rejected, **self.asked)
                    step = flow.send(token)
                else:
                    step = flow.send((yield step))
        except StopIteration:
            return


#: The name 0.2 gave the async authentication; :class:`HttpxTokenAuth` serves sync clients too.
AsyncTokenAuth = HttpxTokenAuth
