"""The one path by which every vendor's token is requested."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_tokens.exceptions import TokenRequestError, TokenResponseError
from airflow_tokens.response import (
    ResponseFields,
    ResponseProblem,
    describe_error_body,
    read_token_fields,
    redact,
)
from airflow_tokens.retry import parse_retry_after
from airflow_tokens.token import AccessToken

if TYPE_CHECKING:
    import requests
    import tenacity

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """
    Describe one token request; vendors build it, :func:`fetch_token` sends it.

    :param url: the token endpoint.
    :param secrets: the credential values to keep out of every message (never sent by themselves).
    :param method: the HTTP method.
    :param headers: request headers.
    :param json: a JSON body, if any.
    :param data: a form body, if any.
    :param auth: HTTP Basic credentials, if any.
    """

    url: str
    secrets: tuple[str, ...] = field(repr=False)
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    json: dict[str, Any] | None = field(default=None, repr=False)
    data: dict[str, str] | None = field(default=None, repr=False)
    auth: tuple[str, str] | None = field(default=None, repr=False)

    def fingerprint(self) -> str:
        """Return a digest of everything that decides which token the vendor issues."""
        material = json.dumps(
            [self.method, self.url, self.headers, self.json, self.data, self.auth],
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(b"airflow-tokens/v1\0" + material.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Transport:
    """
    Carry the HTTP settings of a hook.

    :param session: the requests session that sends the token request.
    :param timeout: connect and read timeouts in seconds.
    :param verify: True, or the path of a CA bundle; TLS verification is never off.
    """

    session: requests.Session
    timeout: tuple[float, float] = (10.0, 30.0)
    verify: bool | str = True


def _send_once(conn_id: str, request: TokenRequest, transport: Transport, attempt: int) -> Any:
    """Send the request once and return the decoded JSON of a 2xx answer; raise typed errors."""
    import requests  # imported on the first fetch: a task served from a cache never needs it

    try:
        response = transport.session.request(
            request.method,
            request.url,
            headers=request.headers,
            json=request.json,
            data=request.data,
            # RFC 7617: Basic credentials are UTF-8 (requests would encode str as Latin-1).
            auth=tuple(part.encode() for part in request.auth) if request.auth else None,  # type: ignore[arg-type]
            timeout=transport.timeout,
            verify=transport.verify,
            allow_redirects=False,
        )
        text = response.text
    except requests.RequestException as exc:
        raise TokenRequestError(
            conn_id, request.url, attempts=attempt, transport_error=type(exc).__name__
        ) from None
    try:
        payload = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None
        malformed = True
    else:
        malformed = False
    if response.status_code >= 300:
        raise TokenRequestError(
            conn_id,
            request.url,
            attempts=attempt,
            status=response.status_code,
            vendor_message=redact(describe_error_body(payload, text), request.secrets),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if malformed or payload is None:
        kind = response.headers.get("Content-Type", "no content type").split(";")[0]
        raise TokenResponseError(
            conn_id, request.url, f"HTTP {response.status_code} body is not JSON ({kind}, {len(text)} chars)"
        )
    return payload


def fetch_token(
    conn_id: str,
    request: TokenRequest,
    fields: ResponseFields,
    transport: Transport,
    retrying: tenacity.Retrying,
) -> AccessToken:
    """Send ``request`` under the retry policy and return the token read with ``fields``."""
    for attempt in retrying.copy():
        with attempt:
            payload = _send_once(conn_id, request, transport, attempt.retry_state.attempt_number)
    now = datetime.now(UTC)
    try:
        token = AccessToken(**read_token_fields(payload, fields, now))
    except ResponseProblem as problem:
        raise TokenResponseError(conn_id, request.url, str(problem)) from None
    log.debug(
        "Fetched a %s token for connection %s, valid for %d s", token.token_type, conn_id, token.lifetime
    )
    return token
