"""The one path by which every vendor's token is requested."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_tokens import metrics
from airflow_tokens.body import BodyTooLarge, BodyUndecodable
from airflow_tokens.exceptions import TokenRequestError, TokenResponseError
from airflow_tokens.flow import Send, SendFailed, Sleep
from airflow_tokens.redaction import redact
from airflow_tokens.response import ResponseFields, ResponseProblem, describe_error_body, read_token_fields
from airflow_tokens.retry import parse_retry_after
from airflow_tokens.token import AccessToken

if TYPE_CHECKING:
    import tenacity

    from airflow_tokens.flow import Flow, HttpResponse
    from airflow_tokens.request import TokenRequest, Transport

log = logging.getLogger(__name__)


def _json(text: str) -> Any:
    """Return the JSON value of ``text``; raise ValueError for anything else, however deep its nesting."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_response(conn_id: str, request: TokenRequest, response: HttpResponse, attempt: int) -> Any:
    """Return the decoded JSON of a 2xx answer; raise the typed error any other answer deserves."""
    text = response.text
    if response.status >= 300:
        # The whole text is redacted before anything of it is read, and what is read of it before it
        # is cut: a secret quoted in a JSON string is another form once the JSON is read.
        safe = redact(text, request.secrets) or ""
        try:
            payload = _json(safe) if safe.strip() else None
        except ValueError:
            payload = None

        def clean(part: str) -> str:
            return redact(part, request.secrets) or ""

        raise TokenRequestError(
            conn_id,
            request.url,
            attempts=attempt,
            status=response.status,
            vendor_message=describe_error_body(payload, safe, clean),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    try:
        payload = _json(text) if text.strip() else None
    except ValueError:
        payload = None
    if payload is None:
        kind = response.headers.get("Content-Type", "no content type").split(";")[0][:80]
        raise TokenResponseError(
            conn_id, request.url, f"HTTP {response.status} body is not JSON ({kind}, {len(text)} chars)"
        )
    return payload


def fetch_flow(
    conn_id: str,
    request: TokenRequest,
    fields: ResponseFields,
    retrying: tenacity.Retrying,
    transport: Transport,
    *,
    vendor: str,
) -> Flow[AccessToken]:
    """Send ``request`` under the retry policy and return the token read with ``fields`` (a sans-IO flow)."""
    import tenacity

    started = time.monotonic()
    controller = retrying.copy()
    controller.begin()
    state = tenacity.RetryCallState(controller, fn=None, args=(), kwargs={})
    while True:
        action = controller.iter(state)
        if isinstance(action, tenacity.DoAttempt):
            try:
                sent = request.ready()  # a new client assertion per attempt, if the client signs one
                try:
                    response = yield Send(sent, transport)
                except SendFailed as failure:
                    raise TokenRequestError(
                        conn_id, request.url, attempts=state.attempt_number, transport_error=failure.kind
                    ) from None
                except (BodyTooLarge, BodyUndecodable) as problem:
                    raise TokenResponseError(conn_id, request.url, str(problem)) from None
                payload = read_response(conn_id, sent, response, state.attempt_number)
                state.set_result(_token(conn_id, request, fields, payload))
                metrics.token_request(vendor, conn_id, None)
            except Exception as exc:  # the policy decides: retried, or raised as it is when it stops
                state.set_exception(sys.exc_info())  # type: ignore[arg-type]
                metrics.token_request(vendor, conn_id, exc)
        elif isinstance(action, tenacity.DoSleep):
            state.prepare_for_next_attempt()
            metrics.token_retry(vendor, conn_id)
            yield Sleep(float(action))
        else:
            metrics.fetch_time(vendor, conn_id, time.monotonic() - started)
            token: AccessToken = action
            return token


def _token(conn_id: str, request: TokenRequest, fields: ResponseFields, payload: Any) -> AccessToken:
    now = datetime.now(UTC)
    try:
        token = AccessToken(**read_token_fields(payload, fields, now))
    except ResponseProblem as problem:
        raise TokenResponseError(conn_id, request.url, str(problem)) from None
    log.debug(
        "Fetched a %s token for connection %s, valid for %d s", token.token_type, conn_id, token.lifetime
    )
    return token
