from __future__ import annotations

import email.utils
import time

import pytest
import tenacity

from airflow_tokens.exceptions import TokenRequestError
from airflow_tokens.retry import RetryPolicy, _retryable_error, parse_retry_after, wait_retry_after

URL = "https://vendor.example/token"


def failure(status: int | None, retry_after: float | None = None) -> TokenRequestError:
    transport = None if status else "ConnectTimeout"
    return TokenRequestError(
        "c", URL, attempts=1, status=status, transport_error=transport, retry_after=retry_after
    )


@pytest.mark.parametrize("status", [None, 408, 429, 500, 502, 503, 504])
def test_transient_failures_are_retried(status: int | None) -> None:
    assert _retryable_error(failure(status))


@pytest.mark.parametrize("status", [300, 400, 401, 403, 404, 422, 501])
def test_permanent_failures_are_not_retried(status: int) -> None:
    assert not _retryable_error(failure(status))


def test_other_exceptions_are_not_retried() -> None:
    assert not _retryable_error(ValueError("x"))


def test_retry_after_seconds_and_http_date() -> None:
    now = time.time()
    assert parse_retry_after("7") == 7.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("²") is None  # a digit to str.isdigit(), not a number of seconds
    assert parse_retry_after(None) is None


def _state(exc: BaseException, attempt: int = 1) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_wait_honours_retry_after_else_backoff() -> None:
    wait = wait_retry_after(tenacity.wait_fixed(0.25))
    assert wait(_state(failure(429, retry_after=3))) == 3
    assert wait(_state(failure(503))) == 0.25


def test_default_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=4)
    wait = policy.retrying().wait
    waits = [wait(_state(failure(503), attempt)) for attempt in range(1, 8)]
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 1.5
    assert all(w <= 4 for w in waits)


def test_policy_stops_at_max_attempts() -> None:
    calls = []

    def flaky() -> None:
        calls.append(1)
        raise failure(503)

    retrying = RetryPolicy(max_attempts=3).retrying(wait=tenacity.wait_none())
    with pytest.raises(TokenRequestError):
        retrying(flaky)
    assert len(calls) == 3


def test_policy_never_starts_a_wait_past_its_time_budget() -> None:
    calls = []

    def throttled() -> None:
        calls.append(1)
        raise failure(429, retry_after=120)

    retrying = RetryPolicy(max_attempts=5, max_seconds=10).retrying()
    started = time.monotonic()
    with pytest.raises(TokenRequestError):
        retrying(throttled)
    assert len(calls) == 1
    assert time.monotonic() - started < 5


def test_permanent_failure_is_raised_after_one_call() -> None:
    calls = []

    def refused() -> None:
        calls.append(1)
        raise failure(401)

    with pytest.raises(TokenRequestError):
        RetryPolicy().retrying()(refused)
    assert len(calls) == 1
