from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tokens.response import (
    ResponseFields,
    ResponseProblem,
    describe_error_body,
    jwt_expiry,
    lookup,
    parse_expiry,
    read_token_fields,
    redact,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SIRV = ResponseFields(token="token", token_type=None, expires_in="expiresIn", default_lifetime=1200)
MANIS = ResponseFields(token="token", token_type="tokenType", expires_in=None, expires_at="expiresAt")
OAUTH = ResponseFields()
NESTED = ResponseFields(
    token="data.session.value",
    token_type="data.session.type",
    expires_in=None,
    expires_at="data.session.expiresAt",
    scope="data.session.scopes",
)


def jwt(claims: dict[str, object]) -> str:
    def enc(part: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'HS256'})}.{enc(claims)}.c2ln"


@pytest.mark.parametrize("value", [3600, "3600", " 3600 ", 3600.0])
def test_expires_in_number_or_string(value: object) -> None:
    assert parse_expiry({"expires_in": value}, OAUTH, "t", NOW) == NOW + timedelta(seconds=3600)


def test_epoch_seconds_and_milliseconds_give_the_same_expiry() -> None:
    at = NOW + timedelta(hours=1)
    seconds = parse_expiry({"expiresAt": int(at.timestamp())}, MANIS, "t", NOW)
    millis = parse_expiry({"expiresAt": int(at.timestamp() * 1000)}, MANIS, "t", NOW)
    assert seconds == millis == at


def test_jwt_exp_used_when_no_expiry_field() -> None:
    exp = int((NOW + timedelta(minutes=7)).timestamp())
    assert parse_expiry({}, SIRV, jwt({"exp": exp}), NOW) == datetime.fromtimestamp(exp, UTC)


def test_vendor_default_when_nothing_says() -> None:
    assert parse_expiry({}, SIRV, "opaque", NOW) == NOW + timedelta(seconds=1200)


def test_expiry_field_wins_over_jwt() -> None:
    token = jwt({"exp": int((NOW + timedelta(minutes=7)).timestamp())})
    assert parse_expiry({"expiresIn": 60}, SIRV, token, NOW) == NOW + timedelta(seconds=60)


@pytest.mark.parametrize("value", [0, -5, "soon", 10**12, True, float("nan"), [], {}, 1e-99])
def test_bad_expires_in_is_a_typed_problem(value: object) -> None:
    with pytest.raises(ResponseProblem, match="expires_in="):
        parse_expiry({"expires_in": value}, OAUTH, "t", NOW)


@pytest.mark.parametrize("value", [0, int(NOW.timestamp()) - 10, "x", 10**20])
def test_bad_expires_at_is_a_typed_problem(value: object) -> None:
    with pytest.raises(ResponseProblem, match="expiresAt="):
        parse_expiry({"expiresAt": value}, MANIS, "t", NOW)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-21T13:00:00Z",
        "2026-11-21T13:00:00+00:00",
        "2026-11-21T15:00:00+02:00",
        "2026-11-21T08:30:00-04:30",
        "2026-11-21T13:00:00.000Z",
        "20261121T130000Z",
        " 2026-11-21T13:00:00Z ",
    ],
)
def test_expires_at_in_iso_8601_with_z_or_an_offset(value: str) -> None:
    assert parse_expiry({"expiresAt": value}, MANIS, "t", NOW) == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-21T13:00:00",  # no zone: refused rather than guessed
        "2026-11-21",
        "2026-11-21T11:00:00Z",  # past
        "9999-12-31T23:59:59-23:59",  # beyond any token's lifetime
        "tomorrow at noon",
        "",
    ],
)
def test_bad_iso_8601_expires_at_is_a_typed_problem(value: str) -> None:
    with pytest.raises(ResponseProblem, match=r"expiresAt=.* ISO 8601"):
        parse_expiry({"expiresAt": value}, MANIS, "t", NOW)


def test_dotted_paths_reach_nested_fields_and_list_items() -> None:
    payload = {"data": {"session": {"value": "abc"}, "items": [{"id": "first"}, {"id": "second"}]}}
    assert lookup(payload, "data.session.value") == "abc"
    assert lookup(payload, "data.items.1.id") == "second"
    assert lookup(payload, "data.items") == [{"id": "first"}, {"id": "second"}]
    missing = ("data.session.other", "data.items.2.id", "data.items.x", "data.session.value.deeper", "nope")
    for path in missing:
        assert lookup(payload, path) is None, path


def test_read_nested_response_with_iso_expiry() -> None:
    session = {"value": "abc", "type": "Bearer", "expiresAt": "2026-11-21T12:20:00Z", "scopes": ["read"]}
    fields = read_token_fields({"data": {"session": session}}, NESTED, NOW)
    assert fields == {
        "token": "abc",
        "token_type": "Bearer",
        "expires_at": NOW + timedelta(minutes=20),
        "obtained_at": NOW,
        "scope": ("read",),
    }


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({}, "'data.session.value' is missing"),
        ({"data": "session"}, "'data.session.value' is missing"),
        ({"data": {"session": {"value": ""}}}, "'data.session.value' is empty"),
        ({"data": {"session": {"value": 7}}}, "'data.session.value' is a int, not a string"),
        (
            {"data": {"session": {"value": "abc", "expiresAt": "2026-11-21T12:20:00"}}},
            "data.session.expiresAt='2026-11-21T12:20:00' is not a future time",
        ),
    ],
)
def test_malformed_nested_response_is_a_typed_problem_naming_the_path(payload: object, problem: str) -> None:
    with pytest.raises(ResponseProblem, match=problem):
        read_token_fields(payload, NESTED, NOW)


def test_unreadable_jwt_is_not_a_jwt() -> None:
    assert jwt_expiry("a.b.c") is None
    assert jwt_expiry("only-one-part") is None
    assert jwt_expiry(jwt({"exp": "tomorrow"})) is None


def test_read_sirv_response() -> None:
    fields = read_token_fields({"token": "abc", "expiresIn": 1200, "scope": ["a", "b"]}, SIRV, NOW)
    assert fields == {
        "token": "abc",
        "token_type": "Bearer",
        "expires_at": NOW + timedelta(seconds=1200),
        "obtained_at": NOW,
        "scope": ("a", "b"),
    }


def test_read_oauth_response_normalises_type_and_scope() -> None:
    fields = read_token_fields(
        {"access_token": "abc", "token_type": "bearer", "expires_in": 36000, "scope": "read write"},
        OAUTH,
        NOW,
    )
    assert fields["token_type"] == "Bearer"
    assert fields["scope"] == ("read", "write")


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ([], "JSON list, not an object"),
        ({}, "'access_token' is missing"),
        ({"access_token": ""}, "'access_token' is empty"),
        ({"access_token": 5}, "is a int, not a string"),
        ({"access_token": "a b"}, "whitespace"),
        ({"access_token": "a\nb"}, "whitespace"),
    ],
)
def test_malformed_token_is_a_typed_problem(payload: object, problem: str) -> None:
    with pytest.raises(ResponseProblem, match=problem):
        read_token_fields(payload, OAUTH, NOW)


def test_problem_text_never_holds_the_token() -> None:
    with pytest.raises(ResponseProblem) as info:
        read_token_fields({"access_token": "SECRET-TOKEN-VALUE", "expires_in": "never"}, OAUTH, NOW)
    assert "SECRET-TOKEN-VALUE" not in str(info.value)


def test_error_bodies_of_each_vendor_are_described() -> None:
    assert describe_error_body({"error": "invalid_client"}, "") == "invalid_client"
    assert (
        describe_error_body({"error": "invalid_request", "error_description": "bad scope"}, "")
        == "invalid_request - bad scope"
    )
    manis = {"title": "Bad Request", "detail": "x-secret missing", "soaCode": "AUTH-400", "status": 400}
    assert describe_error_body(manis, "") == "Bad Request - x-secret missing - soaCode=AUTH-400"
    assert describe_error_body({"statusCode": 401, "message": "Wrong credentials"}, "") == "Wrong credentials"
    assert describe_error_body(None, "<html><body>Bad gateway</body></html>").startswith("non-JSON body")
    assert describe_error_body(None, "   ") is None
    nested = {"error": {"code": "unauthorized", "message": "Invalid API key or secret."}}
    assert describe_error_body(nested, json.dumps(nested)) == "Invalid API key or secret."


def test_redact_removes_secrets() -> None:
    assert redact("client s3cret! unknown", ("s3cret!",)) == "client *** unknown"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@given(payload=json_values)
def test_any_json_body_gives_token_fields_or_a_problem(payload: object) -> None:
    for fields in (SIRV, MANIS, OAUTH, NESTED):
        try:
            result = read_token_fields(payload, fields, NOW)
        except ResponseProblem:
            continue
        assert result["expires_at"] > NOW


@given(
    token=st.text(min_size=1, max_size=30),
    expiry=json_values,
)
def test_any_expiry_value_gives_a_future_expiry_or_a_problem(token: str, expiry: object) -> None:
    for fields, key in ((OAUTH, "expires_in"), (MANIS, "expiresAt")):
        payload = {fields.token: token, key: expiry}
        try:
            result = read_token_fields(payload, fields, NOW)
        except ResponseProblem:
            continue
        assert NOW < result["expires_at"] <= NOW + timedelta(days=367)


@given(expiry=st.datetimes(timezones=st.timezones()))
def test_any_iso_8601_time_with_a_zone_reads_as_that_instant_or_a_problem(expiry: datetime) -> None:
    try:
        result = parse_expiry({"expiresAt": expiry.isoformat()}, MANIS, "t", NOW)
    except ResponseProblem:
        assert not NOW < expiry <= NOW + timedelta(seconds=366 * 24 * 3600)
    else:
        assert abs(result - expiry) < timedelta(milliseconds=1)  # float epoch seconds
