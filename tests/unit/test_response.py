from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from airflow_tokens.redaction import redact
from airflow_tokens.response import (
    MAX_LIFETIME,
    ResponseFields,
    ResponseProblem,
    describe_error_body,
    jwt_expiry,
    lookup,
    parse_expiry,
    read_token_fields,
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
        "refresh_after": None,
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
        "refresh_after": None,
    }


def test_a_refresh_time_the_server_suggests_is_kept_when_it_falls_within_the_tokens_life() -> None:
    entra = {"access_token": "abc", "expires_in": 3599, "refresh_in": 1799}
    assert read_token_fields(entra, OAUTH, NOW)["refresh_after"] == NOW + timedelta(seconds=1799)
    for unusable in (0, -5, 3599, 9999, "soon", None):
        payload = {**entra, "refresh_in": unusable}
        assert read_token_fields(payload, OAUTH, NOW)["refresh_after"] is None, unusable


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
NOW_S = int(NOW.timestamp())
# Tokens as vendors send them: opaque printable strings and JWTs whose exp may lie in the past.
good_tokens = st.from_regex(r"[A-Za-z0-9._~+/-]{1,60}={0,2}", fullmatch=True) | st.integers(
    NOW_S - 3600, NOW_S + 2 * MAX_LIFETIME
).map(lambda exp: jwt({"exp": exp}))
good_seconds = (
    st.integers(1, MAX_LIFETIME)
    | st.integers(1, MAX_LIFETIME).map(str)
    | st.floats(min_value=0.001, max_value=MAX_LIFETIME)
)
good_epochs = st.integers(NOW_S + 1, NOW_S + MAX_LIFETIME).flatmap(
    lambda epoch: st.sampled_from([epoch, epoch * 1000])
)
# (fields, key of its expiry, values of that key the vendor may send)
SHAPES = [
    (SIRV, "expiresIn", good_seconds),
    (OAUTH, "expires_in", good_seconds),
    (MANIS, "expiresAt", good_epochs),
]


def token_bodies(
    fields: ResponseFields, expiry_key: str, good_expiry: st.SearchStrategy[object]
) -> st.SearchStrategy[object]:
    """Bodies that deliberately carry the token field (mostly well-formed), beside any other keys."""
    shaped = st.fixed_dictionaries(
        {fields.token: good_tokens | json_values},
        optional={expiry_key: good_expiry | json_values, "scope": json_values, "token_type": json_values},
    )
    extra = st.dictionaries(st.text(max_size=12), json_values, max_size=3)
    return st.tuples(extra, shaped).map(lambda parts: {**parts[0], **parts[1]})


def expected_expiry(payload: dict[str, object], fields: ResponseFields, expiry_key: str) -> datetime | None:
    """Return the expiry the plainest bodies must give (None where this oracle has no opinion)."""
    value = payload.get(expiry_key)
    token = payload[fields.token]
    if value is None and isinstance(token, str) and "." not in token:
        return NOW + timedelta(seconds=fields.default_lifetime)
    if type(value) is int and fields.expires_in == expiry_key:
        return NOW + timedelta(seconds=value)
    if type(value) is int and value <= NOW_S + MAX_LIFETIME:
        return datetime.fromtimestamp(value, UTC)
    return None


def test_any_token_body_gives_token_fields_or_a_problem() -> None:
    outcomes: Counter[str] = Counter()

    @settings(max_examples=300, deadline=None)
    @given(data=st.data(), shape=st.sampled_from(SHAPES))
    def check(data: st.DataObject, shape: tuple[ResponseFields, str, st.SearchStrategy[object]]) -> None:
        fields, expiry_key, good_expiry = shape
        payload = data.draw(token_bodies(fields, expiry_key, good_expiry) | json_values)
        try:
            result = read_token_fields(payload, fields, NOW)
        except ResponseProblem:
            outcomes["problem"] += 1
            event("problem")
            return
        assert isinstance(payload, dict)
        outcomes["token"] += 1
        event("token")
        assert result["token"] == payload[fields.token]
        assert NOW < result["expires_at"] <= NOW + timedelta(seconds=MAX_LIFETIME)
        expected = expected_expiry(payload, fields, expiry_key)
        if expected is not None:
            outcomes["exact expiry"] += 1
            assert result["expires_at"] == expected

    check()
    # The success branch is the point: it must be reached often, with exact expiries among them.
    assert outcomes["token"] >= 75, outcomes
    assert outcomes["exact expiry"] >= 25, outcomes
    assert outcomes["problem"] >= 25, outcomes


def test_any_expiry_value_gives_a_future_expiry_or_a_problem() -> None:
    outcomes: Counter[str] = Counter()

    @settings(max_examples=200, deadline=None)
    @given(
        token=good_tokens,
        expiry=json_values | good_seconds | good_epochs,
        shape=st.sampled_from([(OAUTH, "expires_in"), (MANIS, "expiresAt")]),
    )
    def check(token: str, expiry: object, shape: tuple[ResponseFields, str]) -> None:
        fields, key = shape
        try:
            result = read_token_fields({fields.token: token, key: expiry}, fields, NOW)
        except ResponseProblem:
            outcomes["problem"] += 1
            event("problem")
            return
        outcomes["expiry"] += 1
        event("expiry")
        assert NOW < result["expires_at"] <= NOW + timedelta(days=367)

    check()
    assert outcomes["expiry"] >= 50, outcomes
    assert outcomes["problem"] >= 25, outcomes


@given(expiry=st.datetimes(timezones=st.timezones()))
def test_any_iso_8601_time_with_a_zone_reads_as_that_instant_or_a_problem(expiry: datetime) -> None:
    try:
        result = parse_expiry({"expiresAt": expiry.isoformat()}, MANIS, "t", NOW)
    except ResponseProblem:
        assert not NOW < expiry <= NOW + timedelta(seconds=366 * 24 * 3600)
    else:
        assert abs(result - expiry) < timedelta(milliseconds=1)  # float epoch seconds
