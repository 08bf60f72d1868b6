"""Errors raised by airflow-tokens; no message ever contains a secret or a token."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException

#: HTTP statuses worth another attempt: the server may answer differently next time.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class TokenError(AirflowException):
    """
    Base of every airflow-tokens error.

    :param conn_id: the Airflow connection the error concerns.
    :param message: the full, secret-free message.
    """

    def __init__(self, conn_id: str, message: str) -> None:
        self.conn_id = conn_id
        super().__init__(message)


class TokenConfigError(TokenError):
    """
    Report a connection or option that cannot work, before any request is sent.

    :param conn_id: the connection at fault.
    :param field: the connection field or option at fault (``login``, ``host``, ``expires_in``...).
    :param problem: what is wrong with it, in words that contain no secret.
    """

    def __init__(self, conn_id: str, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(conn_id, f"Connection {conn_id!r}: {field}: {problem}")


class TokenRequestError(TokenError):
    """
    Report a token request that failed: an HTTP error status or a transport failure.

    :param conn_id: the connection whose token was requested.
    :param url: the token endpoint.
    :param attempts: how many requests were sent in all.
    :param status: the HTTP status, or None when no response arrived.
    :param vendor_message: the vendor's own error text (already free of secrets).
    :param transport_error: the name of the transport failure when no response arrived.
    :param retry_after: seconds the vendor asked to wait (``Retry-After``), if any.
    """

    def __init__(
        self,
        conn_id: str,
        url: str,
        *,
        attempts: int,
        status: int | None = None,
        vendor_message: str | None = None,
        transport_error: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.status = status
        self.vendor_message = vendor_message
        self.transport_error = transport_error
        self.retry_after = retry_after
        what = f"HTTP {status}" if status is not None else (transport_error or "a transport error")
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        detail = f": {vendor_message}" if vendor_message else ""
        super().__init__(
            conn_id,
            f"Connection {conn_id!r}: token request to {url} failed with {what} after {tries}{detail}",
        )

    @property
    def retryable(self) -> bool:
        """Say whether sending the same request again may succeed."""
        return self.status is None or self.status in RETRYABLE_STATUSES


class TokenResponseError(TokenError):
    """
    Report a successful HTTP answer whose body does not hold a usable token.

    :param conn_id: the connection whose token was requested.
    :param url: the token endpoint.
    :param problem: what is missing or malformed.
    """

    def __init__(self, conn_id: str, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(conn_id, f"Connection {conn_id!r}: unusable token response from {url}: {problem}")
