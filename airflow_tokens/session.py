"""Authentications (requests and httpx) that send a hook's token and renew it once on 401."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import requests.auth

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from airflow_tokens.token import AccessToken


class TokenSource(Protocol):
    """What hands out tokens to an authentication: a token hook."""

    def get_access_token(self, force_refresh: bool = False, *, rejected: str | None = None) -> AccessToken:
        """Return a fresh token; ``rejected`` names one the vendor refused."""

    async def aget_access_token(
        self, force_refresh: bool = False, *, rejected: str | None = None
    ) -> AccessToken:
        """Return a fresh token without blocking the event loop."""


log = logging.getLogger(__name__)

_SENT_TOKEN = "_airflow_tokens_sent"


class TokenAuth(requests.auth.AuthBase):
    """
    Send the hook's token; on a 401, drop that token if it is still cached, renew it, retry once.

    :param hook: the token hook (or any :class:`TokenSource`) that supplies tokens.
    """

    def __init__(self, hook: TokenSource) -> None:
        self.hook = hook

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the Authorization header and the 401 handler to ``request``."""
        self._authorize(request, self.hook.get_access_token())
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
        log.info("The vendor refused the token (HTTP 401); renewing it and retrying once")
        token = self.hook.get_access_token(rejected=sent)
        response.content  # noqa: B018 - drain the body so the connection can be reused
        response.close()
        retry = response.request.copy()
        self._authorize(retry, token)
        setattr(retry, _SENT_TOKEN, None)
        second: requests.Response = response.connection.send(retry, **kwargs)
        second.history.append(response)
        second.request = retry
        return second


class AsyncTokenAuth(httpx.Auth):
    """
    Send the hook's token from ``aget_access_token``; on a 401, renew that token and retry once.

    :param hook: the token hook (or any :class:`TokenSource`) that supplies tokens.
    """

    def __init__(self, hook: TokenSource) -> None:
        self.hook = hook

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send ``request`` with the token; renew the token and send it again once if refused."""
        token = await self.hook.aget_access_token()
        request.headers["Authorization"] = token.authorization
        response = yield request
        if response.status_code == 401:
            log.info("The vendor refused the token (HTTP 401); renewing it and retrying once")
            token = await self.hook.aget_access_token(rejected=token.token)
            request.headers["Authorization"] = token.authorization
            yield request
