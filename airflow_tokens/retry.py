"""The one retry policy of every token request."""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import tenacity

from airflow_tokens.exceptions import TokenRequestError
from airflow_tokens.options import MAX_ATTEMPTS, MAX_RETRY_SECONDS, default

if TYPE_CHECKING:
    from tenacity.wait import WaitBaseT

log = logging.getLogger(__name__)


def _retryable_error(exc: BaseException) -> bool:
    """Say whether a failed token request is worth sending again."""
    return isinstance(exc, TokenRequestError) and exc.retryable


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return the wait a ``Retry-After`` header asks for, in seconds (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() also accepts digits like "²"
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class wait_retry_after(tenacity.wait.wait_base):
    """
    Wait as long as the vendor's ``Retry-After`` says, else as the fallback wait says.

    :param fallback: the wait used when the failure carries no ``Retry-After``.
    """

    def __init__(self, fallback: WaitBaseT) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TokenRequestError) and exc.retry_after is not None:
            return exc.retry_after
        return self.fallback(retry_state)


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
    log.warning("%s; retrying in %.1f s (attempt %d)", exc, wait, retry_state.attempt_number + 1)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """
    Bound and pace the retries of a token request.

    Retries connection errors, timeouts and HTTP 408, 429, 500, 502, 503 and 504; never 400, 401 or 403.
    Waits as ``Retry-After`` says, else exponentially with jitter.

    :param max_attempts: requests sent at most, the first included.
    :param max_seconds: total time budget: no retry starts if its wait would pass it.
    :param initial_wait: the first backoff in seconds; it doubles at each retry.
    :param max_wait: the ceiling of one backoff wait (a ``Retry-After`` is honoured as given).
    """

    max_attempts: int = int(default(MAX_ATTEMPTS))
    max_seconds: float = default(MAX_RETRY_SECONDS)
    initial_wait: float = 0.5
    max_wait: float = 10.0

    def retrying(self, wait: WaitBaseT | None = None) -> tenacity.Retrying:
        """Build the tenacity controller; ``wait`` replaces the backoff (for example ``wait_none()``)."""
        backoff = wait or tenacity.wait_exponential_jitter(
            multiplier=self.initial_wait, max=self.max_wait, jitter=self.initial_wait
        )
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retryable_error),
            stop=tenacity.stop_after_attempt(self.max_attempts)
            | tenacity.stop_before_delay(self.max_seconds),
            wait=wait_retry_after(backoff),
            before_sleep=_log_retry,
            reraise=True,
        )
