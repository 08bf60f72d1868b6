"""360Learning, Manis, Podero and any OAuth2 endpoint against the emulator: a real local server, real HTTP."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import tenacity

from airflow_tokens.exceptions import TokenConfigError, TokenRequestError
from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer, Fault
from tests.vendors import LEARNING360, MANIS, OAUTH2, PODERO, only_issued
from tests.vendors import VENDORS as VENDOR_CASES
from tests.vendors import VendorCase as Vendor

ID = EMULATOR_CLIENT_ID
SECRET = EMULATOR_CLIENT_SECRET
FAST = RetryPolicy(max_attempts=4).retrying(wait=tenacity.wait_none())
# Every character that trips naive credential handling: Basic's separator, URL and form syntax, a
# space, a Latin-1 letter and characters outside Latin-1.
AWKWARD_SECRET = "p:a@s%s w+o/r=d-ö-€-秘密"
# The same without characters outside Latin-1: what an HTTP header can carry.
LATIN1_SECRET = "p:a@s%s w+o/r=d-ö"


ALL = [pytest.param(v, id=v.conn_type) for v in (LEARNING360, MANIS, PODERO, OAUTH2)]
Connect = Callable[..., TokenHook]


@pytest.fixture
def connect(token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Connect:
    """Configure the vendor's default connection by AIRFLOW_CONN_ JSON and return its hook."""

    def make(vendor: Vendor, conn: dict[str, Any] | None = None, **options: Any) -> TokenHook:
        vendor.configure(monkeypatch, token_emulator.url, **(conn or {}))
        options.setdefault("retry", FAST)
        return vendor.hook(**options)

    return make


def basic(user: str, password: str) -> str:
    """Return the Authorization header value of HTTP Basic with UTF-8 credentials."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def only_request(emulator: EmulatorServer, vendor: str) -> dict[str, Any]:
    [request] = emulator.client.requests(vendor)
    return request


# ------------------------------------------------------------------------- request shapes


def test_learning360_request_is_what_its_docs_show(connect: Connect, token_emulator: EmulatorServer) -> None:
    token = connect(LEARNING360).get_access_token()
    assert token.token == only_issued(token_emulator)
    request = only_request(token_emulator, "learning360")
    assert request["method"] == "POST"
    assert request["path"] == "/api/v2/oauth2/token"
    assert request["headers"]["accept"] == "application/json"
    assert request["headers"]["content-type"] == "application/json"
    assert "authorization" not in request["headers"]
    assert request["json"] == {"grant_type": "client_credentials", "client_id": ID, "client_secret": SECRET}
    assert token.token_type == "Bearer"


def test_manis_request_is_what_its_docs_show(connect: Connect, token_emulator: EmulatorServer) -> None:
    token = connect(MANIS).get_access_token()
    assert token.token == only_issued(token_emulator)
    request = only_request(token_emulator, "manis")
    assert request["method"] == "POST"
    assert request["path"] == "/api/v1/auth/token"
    assert request["headers"]["x-merchant-id"] == ID
    assert request["headers"]["x-secret"] == SECRET
    assert "authorization" not in request["headers"]
    assert "content-type" not in request["headers"]
    assert request["body"] == ""
    assert token.token_type == "Bearer"


def test_podero_request_is_what_its_docs_show(connect: Connect, token_emulator: EmulatorServer) -> None:
    token = connect(PODERO).get_access_token()
    assert token.token == only_issued(token_emulator)
    request = only_request(token_emulator, "podero")
    assert request["method"] == "POST"
    assert request["path"] == "/oauth2/token/"
    assert request["headers"]["authorization"] == basic(ID, SECRET)
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["cache-control"] == "no-cache"
    assert request["json"] == {"grant_type": "client_credentials"}
    assert token.token_type == "Bearer"
    assert token.scope == ("read", "write")


def test_oauth2_default_is_client_secret_basic_with_a_form_body(
    connect: Connect, token_emulator: EmulatorServer
) -> None:
    token = connect(OAUTH2).get_access_token()
    assert token.token == only_issued(token_emulator)
    request = only_request(token_emulator, "oauth2")
    assert request["method"] == "POST"
    assert request["path"] == "/oauth2/token"
    assert request["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert request["headers"]["accept"] == "application/json"
    # RFC 6749 section 2.3.1: id and secret percent-encoded (a space as %20), then Basic.
    assert request["headers"]["authorization"] == basic(quote(ID, safe=""), quote(SECRET, safe=""))
    assert request["form"] == {"grant_type": "client_credentials"}
    assert token.token_type == "Bearer"


def test_oauth2_client_secret_post_sends_credentials_in_the_form(
    connect: Connect, token_emulator: EmulatorServer
) -> None:
    connect(OAUTH2, {"extra": {"client_auth_method": "client_secret_post"}}).get_token()
    request = only_request(token_emulator, "oauth2")
    assert "authorization" not in request["headers"]
    assert request["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert request["form"] == {"grant_type": "client_credentials", "client_id": ID, "client_secret": SECRET}


def test_oauth2_client_secret_json_sends_credentials_as_json(
    connect: Connect, token_emulator: EmulatorServer
) -> None:
    connect(OAUTH2, {"extra": {"client_auth_method": "client_secret_json"}}).get_token()
    request = only_request(token_emulator, "oauth2")
    assert "authorization" not in request["headers"]
    assert request["headers"]["content-type"] == "application/json"
    assert request["json"] == {"grant_type": "client_credentials", "client_id": ID, "client_secret": SECRET}


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "client_secret_json"])
def test_oauth2_scope_audience_and_extra_params_are_sent(
    connect: Connect, token_emulator: EmulatorServer, method: str
) -> None:
    extra = {
        "client_auth_method": method,
        "scope": "read write",
        "audience": "https://api.example.com",
        "extra_params": {"resource": "urn:example:api"},
    }
    token = connect(OAUTH2, {"extra": extra}).get_access_token()
    request = only_request(token_emulator, "oauth2")
    sent = request["json"] if method == "client_secret_json" else request["form"]
    assert sent["grant_type"] == "client_credentials"
    assert sent["scope"] == "read write"
    assert sent["audience"] == "https://api.example.com"
    assert sent["resource"] == "urn:example:api"
    assert token.scope == ("read", "write")


def test_oauth2_extra_params_must_be_strings(connect: Connect, token_emulator: EmulatorServer) -> None:
    with pytest.raises(TokenConfigError, match="extra_params: value of 'resource' must be a string"):
        connect(OAUTH2, {"extra": {"extra_params": {"resource": 3}}}).get_token()
    assert token_emulator.client.token_requests("oauth2") == 0


# -------------------------------------------------------------------------------- expiry
# The emulator's lifetimes differ from every hook's default, so each test below fails for a hook that
# ignores or misreads the expiry form it is about and falls back on the default.

NUMBER_OR_STRING = [
    pytest.param(LEARNING360, id="learning360"),
    pytest.param(PODERO, id="podero"),
    pytest.param(OAUTH2, id="oauth2"),
]


@pytest.mark.parametrize("vendor", NUMBER_OR_STRING)
@pytest.mark.parametrize("lifetime", [None, 1800])
def test_expires_in_as_a_number(
    connect: Connect, token_emulator: EmulatorServer, vendor: Vendor, lifetime: int | None
) -> None:
    token_emulator.client.configure(vendor.emulator, expires_in_as_string=False, lifetime=lifetime)
    token = connect(vendor).get_access_token()
    assert token.lifetime == pytest.approx(lifetime or vendor.issued_lifetime, abs=2)


@pytest.mark.parametrize("vendor", NUMBER_OR_STRING)
@pytest.mark.parametrize("lifetime", [None, 1800])
def test_expires_in_as_a_string(
    connect: Connect, token_emulator: EmulatorServer, vendor: Vendor, lifetime: int | None
) -> None:
    token_emulator.client.configure(vendor.emulator, expires_in_as_string=True, lifetime=lifetime)
    token = connect(vendor).get_access_token()
    assert token.lifetime == pytest.approx(lifetime or vendor.issued_lifetime, abs=2)


def test_every_lifetime_the_emulator_issues_is_unlike_every_default() -> None:
    defaults = {vendor.default_lifetime for vendor in VENDOR_CASES}
    assert not {vendor.issued_lifetime for vendor in VENDOR_CASES} & defaults
    assert 1800 not in defaults  # the other lifetime the tests below configure


@pytest.mark.parametrize("unit", ["ms", "s"])
@pytest.mark.parametrize("lifetime", [None, 1800])
def test_manis_expires_at_in_milliseconds_or_seconds(
    connect: Connect, token_emulator: EmulatorServer, unit: str, lifetime: int | None
) -> None:
    token_emulator.client.configure("manis", expires_at_unit=unit, lifetime=lifetime)
    assert connect(MANIS).get_access_token().lifetime == pytest.approx(lifetime or 5400, abs=2)


@pytest.mark.parametrize("vendor", ALL)
def test_without_an_expiry_the_documented_lifetime_is_assumed(
    connect: Connect, token_emulator: EmulatorServer, vendor: Vendor
) -> None:
    token_emulator.client.inject(vendor.emulator, Fault.patch({vendor.expiry_field: None}))
    token = connect(vendor).get_access_token()
    assert token.lifetime == pytest.approx(vendor.lifetime_without_expiry, abs=2)
    assert token.token == only_issued(token_emulator)


# -------------------------------------------------------------------------------- errors

MANIS_400 = {
    "timestamp": "2025-01-02T03:04:05.678Z",
    "title": "Bad Request",
    "type": "about:blank",
    "status": 400,
    "soaCode": "AUTH-4002",
    "detail": "Merchant account is suspended",
}


@pytest.mark.parametrize(
    ("vendor", "fault", "shown"),
    [
        pytest.param(LEARNING360, Fault.status(400), ["invalid_request"], id="learning360-invalid_request"),
        pytest.param(
            LEARNING360,
            Fault.json(400, {"error": "unsupported_grant_type"}),
            ["unsupported_grant_type"],
            id="learning360-unsupported_grant_type",
        ),
        pytest.param(
            LEARNING360,
            Fault.json(400, {"error": "non_existing_user"}),
            ["non_existing_user"],
            id="learning360-non_existing_user",
        ),
        pytest.param(
            MANIS,
            Fault.json(400, MANIS_400),
            ["Bad Request", "Merchant account is suspended", "soaCode=AUTH-4002"],
            id="manis-problem-details",
        ),
        pytest.param(
            PODERO,
            Fault.json(400, {"error": "invalid_scope", "error_description": "Scope 'admin' is not allowed."}),
            ["invalid_scope - Scope 'admin' is not allowed."],
            id="podero-rfc6749",
        ),
        pytest.param(
            OAUTH2,
            Fault.json(400, {"error": "invalid_scope", "error_description": "Unknown scope 'admin'."}),
            ["invalid_scope - Unknown scope 'admin'."],
            id="oauth2-rfc6749",
        ),
    ],
)
def test_400_shows_the_vendors_text_and_is_not_retried(
    connect: Connect, token_emulator: EmulatorServer, vendor: Vendor, fault: dict[str, Any], shown: list[str]
) -> None:
    token_emulator.client.inject(vendor.emulator, fault)
    with pytest.raises(TokenRequestError) as info:
        connect(vendor).get_token()
    assert info.value.status == 400
    assert info.value.attempts == 1
    for text in shown:
        assert text in str(info.value)
        assert text in (info.value.vendor_message or "")
    assert SECRET not in str(info.value)
    assert token_emulator.client.token_requests(vendor.emulator) == 1


@pytest.mark.parametrize("vendor", ALL)
def test_wrong_secret_401_shows_the_vendors_text_and_is_not_retried(
    connect: Connect, token_emulator: EmulatorServer, vendor: Vendor
) -> None:
    with pytest.raises(TokenRequestError) as info:
        connect(vendor, {"password": "wrong-secret-value"}).get_token()
    assert info.value.status == 401
    assert info.value.attempts == 1
    assert info.value.vendor_message == vendor.unauthorized
    assert "HTTP 401 after 1 attempt" in str(info.value)
    assert "wrong-secret-value" not in str(info.value)
    assert token_emulator.client.token_requests(vendor.emulator) == 1


@pytest.mark.parametrize("vendor", ALL)
def test_a_vendor_echoing_the_secret_is_redacted(
    connect: Connect, token_emulator: EmulatorServer, vendor: Vendor
) -> None:
    key = "message" if vendor is MANIS else "error"
    token_emulator.client.inject(vendor.emulator, Fault.json(401, {key: f"bad secret {SECRET}"}))
    with pytest.raises(TokenRequestError) as info:
        connect(vendor).get_token()
    assert SECRET not in str(info.value)
    assert "bad secret ***" in str(info.value)


@pytest.mark.parametrize("vendor", ALL)
def test_503_in_the_vendors_shape_is_retried(
    connect: Connect, token_emulator: EmulatorServer, vendor: Vendor
) -> None:
    token_emulator.client.inject(vendor.emulator, Fault.status(503))
    assert connect(vendor).get_token() == only_issued(token_emulator)
    assert token_emulator.client.token_requests(vendor.emulator) == 2


# --------------------------------------------------------------------- caching, credentials


@pytest.mark.parametrize("vendor", ALL)
def test_token_is_cached_across_hooks(
    connect: Connect, token_emulator: EmulatorServer, vendor: Vendor
) -> None:
    first = connect(vendor).get_token()
    assert connect(vendor).get_token() == first == only_issued(token_emulator)
    assert token_emulator.client.token_requests(vendor.emulator) == 1


@pytest.mark.parametrize("field", ["login", "password"])
@pytest.mark.parametrize("vendor", ALL)
def test_missing_credential_fails_before_any_request(
    connect: Connect, token_emulator: EmulatorServer, vendor: Vendor, field: str
) -> None:
    label = vendor.login_label if field == "login" else vendor.password_label
    with pytest.raises(TokenConfigError, match=f"'{vendor.conn_id}': {field}: {label} is missing") as info:
        connect(vendor, {field: ""}).get_token()
    assert info.value.field == field
    assert SECRET not in str(info.value)
    assert token_emulator.client.token_requests(vendor.emulator) == 0


@pytest.mark.parametrize(
    ("vendor", "conn"),
    [
        pytest.param(LEARNING360, {}, id="learning360"),
        pytest.param(OAUTH2, {"extra": {"client_auth_method": "client_secret_basic"}}, id="oauth2-basic"),
        pytest.param(OAUTH2, {"extra": {"client_auth_method": "client_secret_post"}}, id="oauth2-post"),
        pytest.param(OAUTH2, {"extra": {"client_auth_method": "client_secret_json"}}, id="oauth2-json"),
        pytest.param(PODERO, {}, id="podero"),
    ],
)
def test_awkward_secret_reaches_the_vendor_intact(
    connect: Connect, token_emulator: EmulatorServer, vendor: Vendor, conn: dict[str, Any]
) -> None:
    token_emulator.client.add_credentials(vendor.emulator, ID, AWKWARD_SECRET)
    if vendor is OAUTH2:  # accept only the RFC 6749 section 2.3.1 encoding of Basic credentials
        token_emulator.client.configure("oauth2", basic_auth_encoding="form")
    assert connect(vendor, {**conn, "password": AWKWARD_SECRET}).get_token() == only_issued(token_emulator)
    request = only_request(token_emulator, vendor.emulator)
    if vendor is PODERO:
        assert request["headers"]["authorization"] == basic(ID, AWKWARD_SECRET)
    elif request["headers"].get("authorization"):
        assert request["headers"]["authorization"] == basic(
            quote(ID, safe=""), quote(AWKWARD_SECRET, safe="")
        )
    else:
        assert (request["json"] or request["form"])["client_secret"] == AWKWARD_SECRET


def test_podero_basic_credentials_are_utf8_as_its_docs_show(
    connect: Connect, token_emulator: EmulatorServer
) -> None:
    token_emulator.client.add_credentials("podero", ID, LATIN1_SECRET)
    # The emulator also accepts Latin-1.
    assert connect(PODERO, {"password": LATIN1_SECRET}).get_token() == only_issued(token_emulator)
    assert only_request(token_emulator, "podero")["headers"]["authorization"] == basic(ID, LATIN1_SECRET)


def test_manis_latin1_secret_reaches_the_vendor_intact(
    connect: Connect, token_emulator: EmulatorServer
) -> None:
    token_emulator.client.add_credentials("manis", ID, LATIN1_SECRET)
    assert connect(MANIS, {"password": LATIN1_SECRET}).get_token() == only_issued(token_emulator)
    assert only_request(token_emulator, "manis")["headers"]["x-secret"] == LATIN1_SECRET


def test_manis_secret_outside_latin1_is_a_config_error(
    connect: Connect, token_emulator: EmulatorServer
) -> None:
    with pytest.raises(TokenConfigError) as info:
        connect(MANIS, {"password": AWKWARD_SECRET}).get_token()
    assert info.value.field == "password"
    assert AWKWARD_SECRET not in str(info.value)
    assert token_emulator.client.token_requests("manis") == 0


# --------------------------------------------------------------------- hosts and extras


def test_learning360_region_and_host(connect: Connect, token_emulator: EmulatorServer) -> None:
    url = "https://app.360learning.com/api/v2/oauth2/token"
    assert connect(LEARNING360, {"host": None}).token_request.url == url
    assert connect(LEARNING360, {"host": None, "extra": {"region": "EU"}}).token_request.url == url
    us = "https://app.us.360learning.com/api/v2/oauth2/token"
    assert connect(LEARNING360, {"host": None, "extra": {"region": "US"}}).token_request.url == us
    assert connect(LEARNING360, {"host": None, "extra": {"region": "us"}}).token_request.url == us
    assert connect(LEARNING360, {"host": None, "extra": {"extra__learning360__region": "US"}}).base_url == (
        "https://app.us.360learning.com"
    )
    explicit = connect(LEARNING360, {"host": "https://proxy.example/360/", "extra": {"region": "US"}})
    assert explicit.token_request.url == "https://proxy.example/360/api/v2/oauth2/token"
    assert token_emulator.client.token_requests("learning360") == 0


def test_learning360_unknown_region_is_a_config_error(
    connect: Connect, token_emulator: EmulatorServer
) -> None:
    with pytest.raises(TokenConfigError, match="region: 'APAC' is not one of eu, us") as info:
        connect(LEARNING360, {"host": None, "extra": {"region": "APAC"}}).get_token()
    assert info.value.field == "region"
    assert token_emulator.client.token_requests("learning360") == 0


def test_podero_environment_and_host(connect: Connect) -> None:
    url = "https://app.podero.com/oauth2/token/"
    assert connect(PODERO, {"host": None}).token_request.url == url
    assert connect(PODERO, {"host": None, "extra": {"environment": "production"}}).token_request.url == url
    sandbox = "https://sandbox-app.podero.com/oauth2/token/"
    assert connect(PODERO, {"host": None, "extra": {"environment": "sandbox"}}).token_request.url == sandbox
    prefixed = connect(PODERO, {"host": None, "extra": {"extra__podero__environment": "sandbox"}})
    assert prefixed.token_request.url == sandbox
    explicit = connect(PODERO, {"host": "https://podero.proxy.example", "extra": {"environment": "sandbox"}})
    assert explicit.token_request.url == "https://podero.proxy.example/oauth2/token/"
    with pytest.raises(TokenConfigError, match="environment: 'staging' is not one of") as info:
        connect(PODERO, {"host": None, "extra": {"environment": "staging"}}).token_request  # noqa: B018
    assert info.value.field == "environment"


def test_manis_host_is_required(connect: Connect, token_emulator: EmulatorServer) -> None:
    assert connect(MANIS, {"host": "https://manis.example.com/"}).token_request.url == (
        "https://manis.example.com/api/v1/auth/token"
    )
    with pytest.raises(TokenConfigError, match="'manis_default': host: is required") as info:
        connect(MANIS, {"host": None}).get_token()
    assert info.value.field == "host"
    assert token_emulator.client.token_requests("manis") == 0


def test_oauth2_host_is_the_token_url_and_required(connect: Connect, token_emulator: EmulatorServer) -> None:
    url = "https://auth.example.com/realms/data/protocol/openid-connect/token"
    assert connect(OAUTH2, {"host": url}).token_request.url == url
    with pytest.raises(
        TokenConfigError, match="'oauth2_client_credentials_default': host: is required"
    ) as info:
        connect(OAUTH2, {"host": None}).get_token()
    assert info.value.field == "host"
    assert token_emulator.client.token_requests("oauth2") == 0


def test_oauth2_token_url_is_used_verbatim(connect: Connect) -> None:
    url = "https://auth.example.com/o/token/"
    assert connect(OAUTH2, {"host": url}).token_request.url == url


def test_oauth2_prefixed_extras_from_the_ui_form_are_read(
    connect: Connect, token_emulator: EmulatorServer
) -> None:
    prefix = "extra__oauth2_client_credentials__"
    extra = {
        f"{prefix}client_auth_method": "client_secret_post",
        f"{prefix}scope": "read",
        f"{prefix}audience": "https://api.example.com",
        f"{prefix}extra_params": {"resource": "urn:example:api"},
    }
    connect(OAUTH2, {"extra": extra}).get_token()
    assert only_request(token_emulator, "oauth2")["form"] == {
        "grant_type": "client_credentials",
        "client_id": ID,
        "client_secret": SECRET,
        "scope": "read",
        "audience": "https://api.example.com",
        "resource": "urn:example:api",
    }


# ------------------------------------------------------------------- Airflow conveniences


@pytest.mark.parametrize("vendor", ALL)
def test_test_connection(connect: Connect, vendor: Vendor) -> None:
    ok, message = connect(vendor).test_connection()
    assert ok, message
    match = re.match(r"Got a Bearer token valid for (\d+) s", message)
    assert match, message
    assert float(match.group(1)) == pytest.approx(vendor.issued_lifetime, abs=2)
    ok, message = connect(vendor, {"password": "bad-secret-xyz"}).test_connection()
    assert not ok
    assert "HTTP 401" in message
    assert vendor.unauthorized in message
    assert "bad-secret-xyz" not in message


@pytest.mark.parametrize("vendor", ALL)
def test_session_sends_the_token_to_a_protected_resource(
    connect: Connect, token_emulator: EmulatorServer, vendor: Vendor
) -> None:
    response = connect(vendor).get_conn().get(f"{token_emulator.url}/protected", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "vendor": vendor.emulator}
    assert token_emulator.client.token_requests(vendor.emulator) == 1
