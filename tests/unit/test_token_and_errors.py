from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from airflow_tokens.exceptions import (
    TokenConfigError,
    TokenError,
    TokenRequestError,
    TokenResponseError,
)
from airflow_tokens.token import AccessToken

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def token(lifetime: float, value: str = "tok-value-123") -> AccessToken:
    return AccessToken(value, "Bearer", T0 + timedelta(seconds=lifetime), T0, ("a",))


def test_repr_never_shows_the_token() -> None:
    assert "tok-value-123" not in repr(token(60))
    assert "tok-value-123" not in str(token(60))


def test_authorization_header_value() -> None:
    assert token(60).authorization == "Bearer tok-value-123"


def test_fresh_until_expiry_minus_margin() -> None:
    tok = token(1200)
    with time_machine.travel(T0 + timedelta(seconds=1139), tick=False):
        assert tok.is_fresh(60)
    with time_machine.travel(T0 + timedelta(seconds=1140), tick=False):
        assert not tok.is_fresh(60)


def test_margin_is_capped_for_short_lifetimes() -> None:
    tok = token(8)
    assert tok.effective_margin(60) == 2
    with time_machine.travel(T0 + timedelta(seconds=5.9), tick=False):
        assert tok.is_fresh(60)
    with time_machine.travel(T0 + timedelta(seconds=6), tick=False):
        assert not tok.is_fresh(60)


def test_round_trip_and_rejects_foreign_data() -> None:
    tok = token(60)
    assert AccessToken.from_dict(tok.to_dict()) == tok
    for bad in (
        None,
        [],
        {},
        {"token": "x"},
        {**tok.to_dict(), "expires_at": "soon"},
        {**tok.to_dict(), "scope": 3},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - the message varies by case
            AccessToken.from_dict(bad)


def test_errors_form_one_family_rooted_at_airflow_exception() -> None:
    from airflow.sdk.exceptions import AirflowException

    for cls in (TokenConfigError, TokenRequestError, TokenResponseError):
        assert issubclass(cls, TokenError)
        assert issubclass(cls, AirflowException)


def test_error_messages_name_connection_field_status_and_attempts() -> None:
    assert str(TokenConfigError("sirv_default", "login", "Client ID is missing")) == (
        "Connection 'sirv_default': login: Client ID is missing"
    )
    err = TokenRequestError(
        "sirv_default", "https://api.sirv.com/v2/token", attempts=3, status=503, vendor_message="busy"
    )
    assert str(err) == (
        "Connection 'sirv_default': token request to https://api.sirv.com/v2/token "
        "failed with HTTP 503 after 3 attempts: busy"
    )
    assert err.retryable
    err = TokenRequestError("c", "https://x/t", attempts=1, transport_error="ReadTimeout")
    assert "failed with ReadTimeout after 1 attempt" in str(err)
    assert "missing" in str(TokenResponseError("c", "https://x/t", "'token' is missing"))
