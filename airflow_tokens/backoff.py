"""After a failed refresh: which failures are ridden out on the token held, and how long to wait.

Ridden out: no answer, 408, 429, 5xx, or an answer without a usable token (the vendor's fault).
Anything that says the request itself is wrong (400, 401, 403, any other 4xx, a configuration error)
is reported at once, even with a valid token in hand: a revoked secret is not hidden. The wait doubles
with each failure in a row, with jitter, up to a cap, or is what ``Retry-After`` says.
"""

from __future__ import annotations

import random

from airflow_tokens.exceptions import TokenRequestError, TokenResponseError

#: The first wait after a failed refresh; it doubles with each failure in a row, up to the cap.
BACKOFF_FIRST = 1.0
BACKOFF_CAP = 300.0
#: The longest ``Retry-After`` honoured (a longer one waits this long).
MAX_RETRY_AFTER = 3600.0


def rides_out(exc: BaseException) -> bool:
    """Say whether a failed refresh may be ridden out on the token held: the vendor, not the request."""
    if isinstance(exc, TokenRequestError):
        return exc.retryable
    return isinstance(exc, TokenResponseError)


def failure_name(exc: BaseException) -> str:
    """Name a failure for the back-off note (no secret: the status or the kind of error)."""
    if isinstance(exc, TokenRequestError):
        return f"HTTP {exc.status}" if exc.status is not None else str(exc.transport_error or "no answer")
    return type(exc).__name__


def next_wait(exc: BaseException, failures: int) -> float:
    """Return the seconds before the next attempt after ``exc``, the ``failures``-th failure in a row."""
    retry_after = exc.retry_after if isinstance(exc, TokenRequestError) else None
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    return float(min(BACKOFF_CAP, BACKOFF_FIRST * 2.0**failures) * random.uniform(0.8, 1.2))
