"""The token_endpoint connection type against the emulator: any token endpoint configured, not coded."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import tenacity

from airflow_tokens.exceptions import TokenConfigError, TokenRequestError, TokenResponseError
from airflow_tokens.hooks import get_token_hook
from airflow_tokens.hooks.token_endpoint import TokenEndpointHook
from airflow_tokens.memory import forget_connections
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer, Fault
from airflow_tokens.token import AccessToken
from tests.vendors import (
    LEARNING360,
    MANIS,
    OAUTH2,
    PODERO,
    SIRV,
    TOKEN_ENDPOINT,
    VENDORS,
    VendorCase,
)

ID = EMULATOR_CLIENT_ID
SECRET = EMULATOR_CLIENT_SECRET
# Every character that trips naive handling and still fits in an HTTP header (Latin-1).
LATIN1_SECRET = "p:a@s%s w+o/r=d-ö"
FAST = RetryPolicy(max_attempts=4).retrying(wait=tenacity.wait_none())
FIXED_TOKEN = "fixed-token-value-for-both-hooks"


@pytest.fixture
def endpoint(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., TokenEndpointHook]:
    """Configure ``token_endpoint_default`` for the emulator's custom endpoint (or as told); return a hook."""

    def make(conn: dict[str, Any] | None = None, **options: Any) -> TokenEndpointHook:
        TOKEN_ENDPOINT.configure(monkeypatch, token_emulator.url, **(conn or {}))
        options.setdefault("retry", FAST)
        return TokenEndpointHook(**options)

    return make


Endpoint = Callable[..., TokenEndpointHook]


@pytest.fixture
def restore_masker() -> Iterator[None]:
    """Drop the masks a test adds: a token_field of "token" makes Airflow mask that word in this process."""
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    masker = _secrets_masker()
    saved = set(masker.patterns)
    yield
    masker.patterns = saved
    masker.replacer = re.compile("|".join(saved)) if saved else None


# ------------------------------------------------------------------- the vendors, configured


@dataclass(frozen=True)
class Equivalent:
    """
    A vendor hook and the token_endpoint connection that describes the same endpoint.

    :param vendor: the vendor under test.
    :param path: the vendor's token path on the emulator.
    :param extra: the token_endpoint connection's extras.
    :param answer: the answer fields both hooks get (fixed, so both must read the same token and expiry).
    :param vendor_extra: the vendor connection's extras.
    """

    vendor: VendorCase
    path: str
    extra: dict[str, Any]
    answer: Callable[[], dict[str, Any]]
    vendor_extra: dict[str, Any] = field(default_factory=dict)


def _in_an_hour_ms() -> int:
    return int((time.time() + 3600) * 1000)


EQUIVALENTS = [
    Equivalent(
        SIRV,
        "/v2/token",
        {
            "login_field": "clientId",
            "password_field": "clientSecret",
            "headers": {"Content-Type": "application/json", "Accept": "application/json"},
            "token_field": "token",
            "expires_in_field": "expiresIn",
            "default_lifetime": 1200,
        },
        lambda: {"token": FIXED_TOKEN, "expiresIn": 900},
    ),
    Equivalent(
        LEARNING360,
        "/api/v2/oauth2/token",
        {
            "body": {"grant_type": "client_credentials"},
            "headers": {"accept": "application/json", "content-type": "application/json"},
        },
        lambda: {"access_token": FIXED_TOKEN, "expires_in": "3600"},
    ),
    Equivalent(
        MANIS,
        "/api/v1/auth/token",
        {
            "credentials_in": "headers",
            "login_field": "x-merchant-id",
            "password_field": "x-secret",
            "token_field": "token",
            "token_type_field": "tokenType",
            "expires_at_field": "expiresAt",
        },
        lambda: {"token": FIXED_TOKEN, "tokenType": "MAC", "expiresAt": _in_an_hour_ms()},
    ),
    Equivalent(
        PODERO,
        "/oauth2/token/",
        {
            "credentials_in": "basic",
            "body": {"grant_type": "client_credentials"},
            "headers": {"Cache-Control": "no-cache", "Content-Type": "application/json"},
        },
        lambda: {"access_token": FIXED_TOKEN, "expires_in": 36000, "scope": "read write"},
    ),
    Equivalent(
        OAUTH2,
        "/oauth2/token",
        {
            "credentials_in": "form",
            "body": {"grant_type": "client_credentials"},
            "headers": {"Accept": "application/json"},
        },
        lambda: {"access_token": FIXED_TOKEN, "expires_in": 600, "scope": "read"},
        vendor_extra={"client_auth_method": "client_secret_post"},
    ),
]


@pytest.mark.parametrize("secret", [SECRET, LATIN1_SECRET], ids=["plain-secret", "awkward-secret"])
@pytest.mark.parametrize("case", EQUIVALENTS, ids=[case.vendor.conn_type for case in EQUIVALENTS])
def test_a_vendor_configured_as_token_endpoint_sends_its_request_byte_for_byte(
    token_emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    restore_masker: None,
    case: Equivalent,
    secret: str,
) -> None:
    emulator, url = token_emulator.client, token_emulator.url
    emulator.add_credentials(case.vendor.emulator, ID, secret)
    answer = case.answer()
    emulator.inject(case.vendor.emulator, Fault.patch(answer), Fault.patch(answer))  # success bodies only

    case.vendor.configure(monkeypatch, url, password=secret, extra=case.vendor_extra or None)
    own = case.vendor.hook(cache="none", retry=FAST).get_access_token()
    conn = {"conn_type": "token_endpoint", "host": url + case.path, "login": ID, "password": secret}
    monkeypatch.setenv("AIRFLOW_CONN_TOKEN_ENDPOINT_DEFAULT", json.dumps({**conn, "extra": case.extra}))
    forget_connections()
    configured = TokenEndpointHook(cache="none", retry=FAST).get_access_token()

    # The vendor's strict route accepted both (a refused request gets no patched answer, no token).
    vendor_request, endpoint_request = emulator.requests(case.vendor.emulator)
    assert endpoint_request["method"] == vendor_request["method"] == "POST"
    assert endpoint_request["path"] == vendor_request["path"] == case.path
    assert list(endpoint_request["headers"].items()) == list(vendor_request["headers"].items())  # in order
    assert endpoint_request["body"] == vendor_request["body"]
    assert sum(emulator.stats()["token_requests"].values()) == 2
    # ... and both read the same answer alike.
    assert configured.token == own.token == FIXED_TOKEN
    assert (configured.token_type, configured.scope) == (own.token_type, own.scope)
    if "expiresAt" in answer:
        assert configured.expires_at == own.expires_at
    else:
        assert configured.lifetime == own.lifetime


# ----------------------------------------------------- the custom endpoint: nested, ISO 8601


def test_nested_answer_with_an_iso_8601_expiry(endpoint: Endpoint, token_emulator: EmulatorServer) -> None:
    token = endpoint(cache="none").get_access_token()
    assert token.token in token_emulator.client.issued_tokens()
    assert token.token_type == "Bearer"
    assert token.scope == ("images:read", "images:write")
    assert token.lifetime == pytest.approx(900, abs=2)
    (request,) = token_emulator.client.requests("custom")
    assert (
        request["headers"]["authorization"] == "Basic " + base64.b64encode(f"{ID}:{SECRET}".encode()).decode()
    )
    assert request["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert request["body"] == "grant=session"


def test_an_iso_8601_expiry_with_an_offset(endpoint: Endpoint, token_emulator: EmulatorServer) -> None:
    in_20_minutes = time.time() + 1200
    offset = time.strftime("%Y-%m-%dT%H:%M:%S+02:00", time.gmtime(in_20_minutes + 7200))
    token_emulator.client.inject("custom", Fault.patch({"data.session.expiresAt": offset}))
    token = endpoint(cache="none").get_access_token()
    assert token.expires_at.timestamp() == pytest.approx(in_20_minutes, abs=1)


def test_without_an_expiry_the_default_lifetime_applies(
    endpoint: Endpoint, token_emulator: EmulatorServer
) -> None:
    token_emulator.client.inject("custom", Fault.patch({"data.session.expiresAt": None}))
    token = endpoint({"extra": {"default_lifetime": "120"}}, cache="none").get_access_token()
    assert token.lifetime == pytest.approx(120, abs=1)


def test_a_missing_nested_token_is_a_response_error_naming_the_path(
    endpoint: Endpoint, token_emulator: EmulatorServer
) -> None:
    token_emulator.client.inject("custom", Fault.patch({"data.session.value": None}))
    with pytest.raises(TokenResponseError, match=r"'data\.session\.value' is missing") as info:
        endpoint(cache="none").get_token()
    assert info.value.url.endswith("/api/v3/auth/sessions")


# ------------------------------------------------------------------- bad configuration


@pytest.mark.parametrize(
    ("extra", "field", "problem"),
    [
        ({"credentials_in": "xml"}, "credentials_in", "'xml' is not one of basic, form, headers, json"),
        ({"token_field": "   "}, "token_field", "is blank"),
        ({"token_field": "data..value"}, "token_field", "empty part between dots"),
        ({"expires_at_field": "data."}, "expires_at_field", "empty part between dots"),
        ({"body": [1, 2]}, "body", "must be a JSON object, not list"),
        ({"body": "grant=session"}, "body", "is not valid JSON"),
        ({"body": "[1]"}, "body", "must be a JSON object, not list"),
        ({"headers": "nope"}, "headers", "is not valid JSON"),
        ({"headers": {"X-Count": 3}}, "headers", "value of 'X-Count' must be a string"),
        ({"headers": {"Bad Header": "x"}}, "headers", "'Bad Header' is not a valid HTTP header name"),
        ({"headers": {"X-Line": "a\r\nInjected: b"}}, "headers", "a line break"),
        (
            {"headers": {"Authorization": "Basic eA=="}},
            "headers",
            "Authorization collides with the HTTP Basic",
        ),
        (
            {"credentials_in": "json", "headers": {}, "body": {"client_id": "x"}},
            "body",
            "'client_id' collides with a credential field",
        ),
        (
            {"credentials_in": "form", "headers": {}, "body": {"key": "x"}, "password_field": "key"},
            "body",
            "'key' collides with a credential field",
        ),
        (
            {
                "credentials_in": "headers",
                "headers": {"X-Secret": "static"},
                "login_field": "x-id",
                "password_field": "x-secret",
            },
            "headers",
            "'x-secret' collides with a credential field",
        ),
        (
            {"credentials_in": "json", "headers": {}, "login_field": "key", "password_field": "key"},
            "password_field",
            "'key' is also the login_field",
        ),
        ({"credentials_in": "json", "headers": {}, "login_field": "  "}, "login_field", "is empty"),
        (
            {"credentials_in": "headers", "headers": {}, "login_field": "x id", "password_field": "x-secret"},
            "login_field",
            "'x id' is not a valid HTTP header name",
        ),
        ({"credentials_in": "json"}, "headers", "contradicts credentials_in json"),
        (
            {"credentials_in": "form", "headers": {"Content-Type": "application/json"}},
            "headers",
            "contradicts credentials_in form",
        ),
        ({"body": {"grant": 1}}, "body", "value of 'grant' must be a string in a form body"),
        ({"default_lifetime": 0}, "default_lifetime", r"0 is outside 1\.\."),
        ({"default_lifetime": "soon"}, "default_lifetime", "'soon' is not a number"),
    ],
)
def test_bad_configuration_is_a_config_error_naming_the_field_before_any_request(
    endpoint: Endpoint, token_emulator: EmulatorServer, extra: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(TokenConfigError, match=problem) as info:
        endpoint({"extra": extra}).get_token()
    assert info.value.field == field
    assert info.value.conn_id == "token_endpoint_default"
    assert SECRET not in str(info.value)
    assert sum(token_emulator.client.stats()["token_requests"].values()) == 0


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        (f"{{url}}/api/v3/auth/sessions?client_secret={SECRET}", "contains the connection's password"),
        (
            "{url}/api/v3/auth/sessions?password=" + SECRET.replace("-", "%2D"),
            "contains the connection's password",
        ),
        (f"{{url}}/api/v3/{SECRET}/sessions", "contains the connection's password"),
        ("{url}/api/v3/auth/sessions?client_id=someone", "query parameter 'client_id' carries a credential"),
        (f"{{url}}/api/v3/auth/sessions?account={ID}", "query parameter 'account' carries a credential"),
    ],
)
def test_a_credential_in_the_url_is_refused(
    endpoint: Endpoint, token_emulator: EmulatorServer, host: str, problem: str
) -> None:
    with pytest.raises(TokenConfigError, match=problem) as info:
        endpoint({"host": host.format(url=token_emulator.url)}).get_token()
    assert info.value.field == "host"
    assert SECRET not in str(info.value)
    assert sum(token_emulator.client.stats()["token_requests"].values()) == 0


def test_a_query_string_without_credentials_is_kept(
    endpoint: Endpoint, token_emulator: EmulatorServer
) -> None:
    hook = endpoint({"host": f"{token_emulator.url}/api/v3/auth/sessions?api-version=3"})
    assert hook.token_request.url.endswith("/api/v3/auth/sessions?api-version=3")


@pytest.mark.parametrize("vendor", VENDORS, ids=[vendor.conn_type for vendor in VENDORS])
def test_a_host_with_user_and_password_is_refused_for_every_vendor(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, vendor: VendorCase
) -> None:
    host = token_emulator.url.replace("http://", "http://user:in-url-secret@") + vendor.host_path
    vendor.configure(monkeypatch, token_emulator.url, host=host)
    with pytest.raises(TokenConfigError, match="host: carries credentials") as info:
        vendor.hook(retry=FAST).get_token()
    assert "in-url-secret" not in str(info.value)
    assert sum(token_emulator.client.stats()["token_requests"].values()) == 0


def test_header_credentials_must_fit_in_a_header(endpoint: Endpoint, token_emulator: EmulatorServer) -> None:
    extra = {"credentials_in": "headers", "headers": {}, "login_field": "x-id", "password_field": "x-secret"}
    with pytest.raises(TokenConfigError, match="characters an HTTP header cannot carry") as info:
        endpoint({"extra": extra, "password": "secret-€"}).get_token()
    assert info.value.field == "password"
    with pytest.raises(TokenConfigError, match="contains ':', which HTTP Basic cannot carry") as info:
        endpoint({"login": "user:name"}).get_token()
    assert info.value.field == "login"
    assert sum(token_emulator.client.stats()["token_requests"].values()) == 0


def test_unset_fields_take_their_defaults(endpoint: Endpoint) -> None:
    # A form leaves empty fields as "" or null: they mean the default, an OAuth2-style JSON endpoint.
    names = ["credentials_in", "login_field", "password_field", "body", "headers", "token_field"]
    names += ["expires_in_field", "expires_at_field", "token_type_field", "scope_field", "default_lifetime"]
    unset = dict.fromkeys(names, "")
    hook = endpoint({"extra": {**unset, "expires_at_field": None}})
    request = hook.token_request
    assert request.json == {"client_id": ID, "client_secret": SECRET}
    assert (request.data, request.auth, request.headers) == (None, None, {})
    fields = hook._profile.response_fields
    assert (fields.token, fields.token_type, fields.expires_in, fields.expires_at, fields.scope) == (
        "access_token",
        "token_type",
        "expires_in",
        None,
        "scope",
    )
    assert fields.default_lifetime == 3600


def test_extras_may_carry_the_type_prefix(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefixed = {f"extra__token_endpoint__{name}": value for name, value in TOKEN_ENDPOINT.extra.items()}
    conn = {**TOKEN_ENDPOINT.conn(token_emulator.url), "extra": prefixed}
    monkeypatch.setenv("AIRFLOW_CONN_TOKEN_ENDPOINT_DEFAULT", json.dumps(conn))
    forget_connections()
    assert TokenEndpointHook(cache="none", retry=FAST).get_access_token().scope == (
        "images:read",
        "images:write",
    )


def test_a_connection_given_as_a_uri_works(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The UI's Test button hands the connection to the hook as Connection.get_uri().
    from airflow.models.connection import Connection

    conn = TOKEN_ENDPOINT.conn(token_emulator.url, password=LATIN1_SECRET)
    uri = Connection(conn_id="x", **{**conn, "extra": json.dumps(conn["extra"])}).get_uri()
    token_emulator.client.add_credentials("custom", ID, LATIN1_SECRET)
    monkeypatch.setenv("AIRFLOW_CONN_TOKEN_ENDPOINT_DEFAULT", uri)
    forget_connections()
    assert TokenEndpointHook(cache="none", retry=FAST).get_access_token().scope == (
        "images:read",
        "images:write",
    )


# ------------------------------------------------------------- what every hook does, here too


def test_errors_carry_the_endpoints_own_text_and_never_the_secret(
    endpoint: Endpoint, token_emulator: EmulatorServer
) -> None:
    with pytest.raises(TokenRequestError) as info:
        endpoint({"password": "wrong-secret-value"}).get_token()
    assert (info.value.status, info.value.attempts) == (401, 1)
    assert info.value.vendor_message == TOKEN_ENDPOINT.unauthorized
    assert "wrong-secret-value" not in str(info.value)
    # An endpoint that echoes the secret, or the Basic header it got, is scrubbed.
    echoed = base64.b64encode(f"{ID}:{SECRET}".encode()).decode()
    message = f"bad secret {SECRET} in Basic {echoed}"
    token_emulator.client.inject("custom", Fault.json(400, {"error": {"code": "bad", "message": message}}))
    with pytest.raises(TokenRequestError) as info:
        endpoint().get_token()
    assert info.value.vendor_message == "bad secret *** in Basic ***"


def test_retries_a_503(endpoint: Endpoint, token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("custom", Fault.status(503), Fault.status(429, retry_after="0"))
    assert endpoint(cache="none").get_token()
    assert token_emulator.client.token_requests("custom") == 3


@pytest.mark.parametrize("cache", ["memory", "variable"])
def test_caches(endpoint: Endpoint, token_emulator: EmulatorServer, cache: str) -> None:
    # Outside a task the Variable cache quietly serves from memory; the example DAG runs it in a task.
    tokens = {endpoint(cache=cache).get_token() for _ in range(3)}
    assert len(tokens) == 1
    assert token_emulator.client.token_requests("custom") == 1


def test_session_renews_the_token_once_on_401(endpoint: Endpoint, token_emulator: EmulatorServer) -> None:
    hook = endpoint(cache="memory")
    session = hook.get_conn()
    assert session.get(f"{token_emulator.url}/protected", timeout=10).json() == {
        "ok": True,
        "vendor": "custom",
    }
    token_emulator.client.revoke("custom")
    response = session.get(f"{token_emulator.url}/protected", timeout=10)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert token_emulator.client.token_requests("custom") == 2


def test_test_connection(endpoint: Endpoint) -> None:
    ok, message = endpoint().test_connection()
    assert ok, message
    match = re.match(r"Got a Bearer token valid for (\d+) s", message)
    assert match, message
    assert float(match.group(1)) == pytest.approx(900, abs=2)
    assert message.endswith("scope images:read images:write")
    ok, message = endpoint({"password": "bad-secret-xyz"}).test_connection()
    assert not ok
    assert "HTTP 401" in message
    assert TOKEN_ENDPOINT.unauthorized in message
    assert "bad-secret-xyz" not in message


def test_async_get_token(endpoint: Endpoint, token_emulator: EmulatorServer) -> None:
    hook = endpoint(cache="memory")

    async def twice() -> tuple[str, str]:
        return await hook.aget_token(), await TokenEndpointHook(cache="memory").aget_token()

    first, second = asyncio.run(twice())
    assert first == second
    assert first in token_emulator.client.issued_tokens()
    assert token_emulator.client.token_requests("custom") == 1


def test_the_token_is_masked(endpoint: Endpoint) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    token = endpoint(cache="none").get_token()
    assert redact(f"got {token}") == "got ***"


def test_airflow_masks_the_values_of_extras_named_like_secrets(
    endpoint: Endpoint, restore_masker: None
) -> None:
    # Airflow hides the value of any extra whose name contains "token" or "password", wherever it reads
    # a connection's extras: token_field "token" (as for Sirv or Manis) hides that word in this process.
    from airflow.sdk._shared.secrets_masker import redact

    extra = {"token_field": "token", "token_type_field": "kind", "password_field": "api_secret"}
    endpoint({"extra": extra}).token_request  # noqa: B018 - reading the connection is the point
    assert redact("the token, its kind, the api_secret; scope") == "the ***, its kind, the ***; scope"


def test_get_token_hook_picks_this_hook_by_connection_type(endpoint: Endpoint) -> None:
    endpoint()
    assert isinstance(get_token_hook("token_endpoint_default"), TokenEndpointHook)


def test_access_token_repr_and_cache_entry_hold_no_token(endpoint: Endpoint) -> None:
    hook = endpoint(cache="memory")
    token: AccessToken = hook.get_access_token()
    assert token.token not in repr(token)
    assert hook.cache_key == "token_endpoint.token_endpoint_default"


@pytest.mark.airflow_db
def test_xcom_cache_in_a_dag_run(dagbag: Any, endpoint: Endpoint, token_emulator: EmulatorServer) -> None:
    endpoint()
    run = dagbag.dags["token_endpoint_xcom"].test()
    assert run.state == "success"
    assert token_emulator.client.token_requests("custom") == 1  # the producer's; consumers read XCom
    assert token_emulator.client.resource_requests() == 2
