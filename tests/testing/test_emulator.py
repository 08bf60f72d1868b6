"""Test the vendor token emulator against a real server with real HTTP requests (no mocks).

The ``token_emulator`` / ``token_emulator_server`` fixtures come from the package's pytest plugin
(entry point ``pytest11: airflow_tokens``).
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import pytest
import requests

from airflow_tokens.testing import (
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    VENDORS,
    EmulatorClient,
    EmulatorError,
    EmulatorServer,
    Fault,
)
from airflow_tokens.testing.__main__ import main

if TYPE_CHECKING:
    from collections.abc import Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
ID = EMULATOR_CLIENT_ID
SECRET = EMULATOR_CLIENT_SECRET
SIRV_SCOPE = [
    "account:read",
    "account:write",
    "user:read",
    "user:write",
    "billing:read",
    "billing:write",
    "files:read",
    "files:write",
    "videos",
    "images",
]
# The emulator's token lifetimes: unlike each vendor's documented lifetime and every hook's default
# (1200 s, 3600 s, 36000 s), so a client reading the expiry wrong or not at all is seen to.
LIFETIME = {"sirv": 1500, "learning360": 2700, "manis": 5400, "podero": 32400, "oauth2": 4500}
MANIS_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# A secret with every character that trips naive HTTP Basic handling.
SPECIAL_ID = "client@émulateur"
SPECIAL_SECRET = "p:a@s%s w+ö€rd%41"


# ----------------------------------------------------------------------------------- helpers


def post(server: EmulatorServer, vendor: str, **kwargs: Any) -> requests.Response:
    """POST to a vendor's token endpoint."""
    kwargs.setdefault("timeout", 5)
    return requests.post(server.token_url(vendor), **kwargs)


def good_request(vendor: str) -> dict[str, Any]:
    """Return the ``requests.post`` arguments of a valid token request for ``vendor``."""
    grant = {"grant_type": "client_credentials"}
    requests_by_vendor: dict[str, dict[str, Any]] = {
        "sirv": {"json": {"clientId": ID, "clientSecret": SECRET}},
        "learning360": {"json": {**grant, "client_id": ID, "client_secret": SECRET}},
        "manis": {"headers": {"x-merchant-id": ID, "x-secret": SECRET}},
        "podero": {"json": grant, "auth": (ID, SECRET)},
        "oauth2": {"data": grant, "auth": (ID, SECRET)},
        "custom": {"data": {"grant": "session"}, "auth": (ID, SECRET)},
    }
    return requests_by_vendor[vendor]


def token_of(vendor: str, body: dict[str, Any]) -> str:
    """Return the access token in a vendor's success body."""
    if vendor == "custom":
        value = body["data"]["session"]["value"]
    else:
        value = body["token"] if vendor in ("sirv", "manis") else body["access_token"]
    assert isinstance(value, str)
    return value


def get_token(server: EmulatorServer, vendor: str) -> str:
    """Fetch a token from ``vendor``."""
    response = post(server, vendor, **good_request(vendor))
    assert response.status_code == (201 if vendor == "custom" else 200), response.text
    return token_of(vendor, response.json())


def jwt_part(token: str, index: int) -> dict[str, Any]:
    """Decode one base64url JSON segment of a JWT."""
    segment = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


def basic(client_id: str, secret: str, *, form_encode: bool) -> dict[str, str]:
    """Build an ``Authorization: Basic`` header, RFC 6749 2.3.1 form-encoded or raw UTF-8."""
    if form_encode:
        client_id, secret = quote_plus(client_id), quote_plus(secret)
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def free_port() -> int:
    """Return a port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ----------------------------------------------------------------------------- package surface


def test_import_is_cheap() -> None:
    code = (
        "import sys, airflow_tokens.testing as t, airflow_tokens.testing.pytest_plugin\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'requests') if m in sys.modules))\n"
        "print('EmulatorServer' in dir(t), t.VENDORS)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT, timeout=30
    )
    assert out.stdout.splitlines() == [
        "[]",
        "True ('sirv', 'learning360', 'manis', 'podero', 'oauth2', 'custom')",
    ]


def test_server_lifecycle() -> None:
    server = EmulatorServer()
    with pytest.raises(EmulatorError):
        _ = server.url
    with server:
        assert server.running
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert server.start() is server  # idempotent
        health = server.client.health()
        assert health["status"] == "ok"
        assert health["vendors"]["podero"] == "/oauth2/token/"
        assert get_token(server, "sirv")
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.port}/_emulator/health", timeout=2)
    server.stop()  # no-op


def test_fixture_dirties_state(token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.status(500))
    token_emulator.client.add_credentials("sirv", "other", "pair")
    token_emulator.client.configure("manis", expires_at_unit="s")
    token = get_token(token_emulator, "oauth2")
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.post(token_emulator.url + "/jobs", json={}, headers=headers, timeout=5).status_code == 201


def test_fixture_resets_state(token_emulator: EmulatorServer) -> None:
    stats = token_emulator.client.stats()
    assert stats["token_requests"] == dict.fromkeys(VENDORS, 0)
    assert stats["invalid_requests"] == dict.fromkeys(VENDORS, 0)
    assert stats["resource_requests"] == 0
    assert stats["faults_pending"] == dict.fromkeys(VENDORS, 0)
    assert stats["tokens_issued"] == 0
    assert stats["job_requests"] == {"start": 0, "status": 0}
    assert stats["jobs_started"] == 0
    assert token_emulator.client.requests() == []
    assert token_emulator.client.config("manis")["expires_at_unit"] == "ms"
    assert post(token_emulator, "sirv", json={"clientId": "other", "clientSecret": "pair"}).status_code == 401


# --------------------------------------------------------------------------------------- sirv


def test_sirv_success_shape(token_emulator: EmulatorServer) -> None:
    before = int(time.time())
    response = post(token_emulator, "sirv", json={"clientId": ID, "clientSecret": SECRET})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"token", "expiresIn", "scope"}
    assert body["expiresIn"] == LIFETIME["sirv"]
    assert body["scope"] == SIRV_SCOPE
    assert len(body["token"].split(".")) == 3
    assert jwt_part(body["token"], 0) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt_part(body["token"], 1)
    assert claims["clientId"] == ID
    assert claims["scope"] == SIRV_SCOPE
    assert before <= claims["iat"] <= time.time()
    assert claims["exp"] == claims["iat"] + LIFETIME["sirv"]
    assert isinstance(claims["aud"], str)
    assert get_token(token_emulator, "sirv") != body["token"]


@pytest.mark.parametrize("expires_in", [5, 60, 604800])
def test_sirv_expires_in(token_emulator: EmulatorServer, expires_in: int) -> None:
    response = post(
        token_emulator, "sirv", json={"clientId": ID, "clientSecret": SECRET, "expiresIn": expires_in}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["expiresIn"] == expires_in
    claims = jwt_part(body["token"], 1)
    assert claims["exp"] - claims["iat"] == expires_in


@pytest.mark.parametrize(
    ("kwargs", "message_part"),
    [
        pytest.param({"json": {}}, "required property 'clientId'", id="empty-object"),
        pytest.param({"json": {"clientId": ID}}, "required property 'clientSecret'", id="no-secret"),
        pytest.param(
            {"json": {"clientId": ID, "clientSecret": SECRET, "scope": "x"}},
            "additional properties",
            id="extra-key",
        ),
        pytest.param(
            {"json": {"clientId": 1, "clientSecret": SECRET}}, "clientId must be string", id="id-int"
        ),
        pytest.param(
            {"json": {"clientId": ID, "clientSecret": None}}, "clientSecret must be string", id="null"
        ),
        pytest.param(
            {"json": {"clientId": ID, "clientSecret": SECRET, "expiresIn": 4}},
            "expiresIn must be >= 5",
            id="low",
        ),
        pytest.param(
            {"json": {"clientId": ID, "clientSecret": SECRET, "expiresIn": 604801}},
            "expiresIn must be <= 604800",
            id="high",
        ),
        pytest.param(
            {"json": {"clientId": ID, "clientSecret": SECRET, "expiresIn": "60"}},
            "expiresIn must be integer",
            id="expires-string",
        ),
        pytest.param(
            {"json": {"clientId": ID, "clientSecret": SECRET, "expiresIn": 60.5}},
            "expiresIn must be integer",
            id="expires-float",
        ),
        pytest.param(
            {"json": {"clientId": ID, "clientSecret": SECRET, "expiresIn": True}},
            "expiresIn must be integer",
            id="expires-bool",
        ),
        pytest.param({"json": [ID, SECRET]}, "body must be object", id="array"),
        pytest.param(
            {"data": "{not json", "headers": {"Content-Type": "application/json"}},
            "not valid JSON",
            id="bad-json",
        ),
        pytest.param({"data": {"clientId": ID, "clientSecret": SECRET}}, "Unsupported Media Type", id="form"),
        pytest.param({}, "body must be object", id="no-body"),
    ],
)
def test_sirv_bad_request(token_emulator: EmulatorServer, kwargs: dict[str, Any], message_part: str) -> None:
    response = post(token_emulator, "sirv", **kwargs)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"statusCode", "error", "message"}
    assert body["statusCode"] == 400
    assert body["error"] == "Bad Request"
    assert message_part in body["message"]
    assert token_emulator.state.stats()["tokens_issued"] == 0
    assert [record["valid"] for record in token_emulator.client.requests("sirv")] == [False]


def test_sirv_wrong_credentials(token_emulator: EmulatorServer) -> None:
    response = post(token_emulator, "sirv", json={"clientId": ID, "clientSecret": "nope"})
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "error": "Unauthorized", "message": "Wrong credentials"}


# -------------------------------------------------------------------------------- 360learning


def test_learning360_success_shape(token_emulator: EmulatorServer) -> None:
    response = post(token_emulator, "learning360", **good_request("learning360"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token_type", "access_token", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == "2700"  # a string, as 360Learning's page shows
    assert body["access_token"] != get_token(token_emulator, "learning360")


def test_learning360_expires_in_as_number(token_emulator: EmulatorServer) -> None:
    token_emulator.client.configure("learning360", expires_in_as_string=False)
    assert post(token_emulator, "learning360", **good_request("learning360")).json()["expires_in"] == 2700
    token_emulator.client.configure("learning360", lifetime=120)
    assert post(token_emulator, "learning360", **good_request("learning360")).json()["expires_in"] == 120
    token_emulator.client.configure("learning360", expires_in_as_string=True, lifetime=None)
    assert post(token_emulator, "learning360", **good_request("learning360")).json()["expires_in"] == "2700"


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        pytest.param({"json": {}}, 400, "invalid_request", id="empty"),
        pytest.param(
            {"json": {"grant_type": "client_credentials", "client_id": ID}},
            400,
            "invalid_request",
            id="no-secret",
        ),
        pytest.param(
            {"json": {"client_id": ID, "client_secret": SECRET}}, 400, "invalid_request", id="no-grant"
        ),
        pytest.param(
            {
                "json": {
                    "grant_type": "client_credentials",
                    "client_id": ID,
                    "client_secret": SECRET,
                    "scope": "x",
                }
            },
            400,
            "invalid_request",
            id="extra-key",
        ),
        pytest.param(
            {"json": {"grant_type": "client_credentials", "client_id": ID, "client_secret": 7}},
            400,
            "invalid_request",
            id="secret-int",
        ),
        pytest.param(
            {"data": {"grant_type": "client_credentials", "client_id": ID, "client_secret": SECRET}},
            400,
            "invalid_request",
            id="form-body",
        ),
        pytest.param(
            {"data": "{oops", "headers": {"Content-Type": "application/json"}},
            400,
            "invalid_request",
            id="bad-json",
        ),
        pytest.param(
            {"json": {"grant_type": "password", "client_id": ID, "client_secret": SECRET}},
            400,
            "unsupported_grant_type",
            id="grant",
        ),
        pytest.param(
            {"json": {"grant_type": "client_credentials", "client_id": ID, "client_secret": "x"}},
            401,
            "invalid_client",
            id="wrong-secret",
        ),
    ],
)
def test_learning360_errors(
    token_emulator: EmulatorServer, kwargs: dict[str, Any], status: int, error: str
) -> None:
    response = post(token_emulator, "learning360", **kwargs)
    assert response.status_code == status
    assert response.json() == {"error": error}
    [record] = token_emulator.client.requests("learning360")
    assert record["valid"] is (status == 401)  # wrong credentials come in a well-formed request


# -------------------------------------------------------------------------------------- manis


def test_manis_success_shape_milliseconds(token_emulator: EmulatorServer) -> None:
    before = time.time()
    response = post(token_emulator, "manis", headers={"x-merchant-id": ID, "x-secret": SECRET})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"tokenType", "token", "expiresAt"}
    assert body["tokenType"] == "Bearer"
    assert isinstance(body["expiresAt"], int)
    lifetime = LIFETIME["manis"]
    assert (before + lifetime) * 1000 - 1000 <= body["expiresAt"] <= (time.time() + lifetime) * 1000


def test_manis_expires_at_seconds(token_emulator: EmulatorServer) -> None:
    token_emulator.client.configure("manis", expires_at_unit="s", lifetime=60)
    before = time.time()
    body = post(token_emulator, "manis", **good_request("manis")).json()
    assert isinstance(body["expiresAt"], int)
    assert before + 59 <= body["expiresAt"] <= time.time() + 60


@pytest.mark.parametrize(
    ("headers", "missing"),
    [({"x-secret": SECRET}, "x-merchant-id"), ({"x-merchant-id": ID}, "x-secret"), ({}, "x-merchant-id")],
)
def test_manis_missing_header(token_emulator: EmulatorServer, headers: dict[str, str], missing: str) -> None:
    response = post(token_emulator, "manis", headers=headers)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"timestamp", "title", "type", "status", "soaCode", "detail"}
    assert MANIS_TIMESTAMP.match(body["timestamp"])
    assert body["title"] == "Bad Request"
    assert body["type"] == "about:blank"
    assert body["status"] == 400
    assert body["soaCode"] == "AUTH-400"
    assert f"'{missing}'" in body["detail"]


def test_manis_wrong_credentials(token_emulator: EmulatorServer) -> None:
    response = post(token_emulator, "manis", headers={"x-merchant-id": ID, "x-secret": "wrong"})
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"message", "timestamp"}
    assert body["message"] == "Invalid merchant credentials"
    assert MANIS_TIMESTAMP.match(body["timestamp"])


# ------------------------------------------------------------------------------------- podero


def test_podero_success_shape(token_emulator: EmulatorServer) -> None:
    response = post(
        token_emulator,
        "podero",
        json={"grant_type": "client_credentials"},
        auth=(ID, SECRET),
        headers={"Cache-Control": "no-cache"},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "scope"}
    assert body["expires_in"] == LIFETIME["podero"]
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read write"


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        pytest.param({"json": {"grant_type": "client_credentials"}}, 401, "invalid_client", id="no-auth"),
        pytest.param(
            {"json": {"grant_type": "client_credentials"}, "auth": (ID, "wrong")},
            401,
            "invalid_client",
            id="wrong",
        ),
        pytest.param(
            {"json": {"grant_type": "client_credentials"}, "headers": {"Authorization": "Basic !!notbase64"}},
            401,
            "invalid_client",
            id="bad-basic",
        ),
        pytest.param({"json": {}, "auth": (ID, SECRET)}, 400, "invalid_request", id="no-grant"),
        pytest.param(
            {"data": "{x", "headers": {"Content-Type": "application/json"}, "auth": (ID, SECRET)},
            400,
            "invalid_request",
            id="bad-json",
        ),
        pytest.param(
            {"json": {"grant_type": "authorization_code"}, "auth": (ID, SECRET)},
            400,
            "unsupported_grant_type",
            id="grant",
        ),
    ],
)
def test_podero_errors(
    token_emulator: EmulatorServer, kwargs: dict[str, Any], status: int, error: str
) -> None:
    response = post(token_emulator, "podero", **kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)


# ------------------------------------------------------------------------------------- oauth2


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"data": {"grant_type": "client_credentials"}, "auth": (ID, SECRET)}, id="basic"),
        pytest.param(
            {"data": {"grant_type": "client_credentials"}, "headers": basic(ID, SECRET, form_encode=True)},
            id="basic-form-encoded",
        ),
        pytest.param(
            {"data": {"grant_type": "client_credentials", "client_id": ID, "client_secret": SECRET}},
            id="post",
        ),
        pytest.param(
            {"json": {"grant_type": "client_credentials", "client_id": ID, "client_secret": SECRET}},
            id="json",
        ),
    ],
)
def test_oauth2_client_authentication(token_emulator: EmulatorServer, kwargs: dict[str, Any]) -> None:
    response = post(token_emulator, "oauth2", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == LIFETIME["oauth2"]


def test_oauth2_scope_audience_and_extra_params(token_emulator: EmulatorServer) -> None:
    response = post(
        token_emulator,
        "oauth2",
        data={
            "grant_type": "client_credentials",
            "scope": "read:a write:b",
            "audience": "api://x",
            "resource": "r",
        },
        auth=(ID, SECRET),
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "read:a write:b"
    (record,) = token_emulator.client.requests("oauth2")
    assert record["form"] == {
        "grant_type": "client_credentials",
        "scope": "read:a write:b",
        "audience": "api://x",
        "resource": "r",
    }
    assert record["json"] is None


def test_request_log_names_the_client_address(token_emulator: EmulatorServer) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", token_emulator.port, timeout=5)
    try:
        connection.connect()
        local_port = connection.sock.getsockname()[1]
        body = json.dumps(good_request("sirv")["json"])
        connection.request("POST", "/v2/token", body, {"Content-Type": "application/json"})
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    (record,) = token_emulator.client.requests("sirv")
    assert record["client"] == ["127.0.0.1", local_port]


@pytest.mark.parametrize("auth", ["basic-form", "basic-raw", "post", "json"])
def test_oauth2_special_characters(token_emulator: EmulatorServer, auth: str) -> None:
    token_emulator.client.add_credentials("oauth2", SPECIAL_ID, SPECIAL_SECRET)
    grant = {"grant_type": "client_credentials"}
    credentials = {"client_id": SPECIAL_ID, "client_secret": SPECIAL_SECRET}
    kwargs: dict[str, Any] = {
        "basic-form": {"data": grant, "headers": basic(SPECIAL_ID, SPECIAL_SECRET, form_encode=True)},
        "basic-raw": {"data": grant, "headers": basic(SPECIAL_ID, SPECIAL_SECRET, form_encode=False)},
        "post": {"data": {**grant, **credentials}},
        "json": {"json": {**grant, **credentials}},
    }[auth]
    response = post(token_emulator, "oauth2", **kwargs)
    assert response.status_code == 200, response.text
    # The pair was added for oauth2 only.
    assert post(token_emulator, "podero", json=grant, auth=(ID, "x")).status_code == 401


def test_oauth2_strict_form_encoded_basic(token_emulator: EmulatorServer) -> None:
    token_emulator.client.add_credentials("oauth2", SPECIAL_ID, SPECIAL_SECRET)
    token_emulator.client.configure("oauth2", basic_auth_encoding="form")
    grant = {"grant_type": "client_credentials"}
    raw = post(
        token_emulator, "oauth2", data=grant, headers=basic(SPECIAL_ID, SPECIAL_SECRET, form_encode=False)
    )
    assert raw.status_code == 401
    form = post(
        token_emulator, "oauth2", data=grant, headers=basic(SPECIAL_ID, SPECIAL_SECRET, form_encode=True)
    )
    assert form.status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        pytest.param({"data": {}, "auth": (ID, SECRET)}, 400, "invalid_request", id="no-grant"),
        pytest.param(
            {"data": {"grant_type": "password"}, "auth": (ID, SECRET)}, 400, "unsupported_grant_type"
        ),
        pytest.param(
            {"data": "grant_type=client_credentials&grant_type=client_credentials", "auth": (ID, SECRET)},
            400,
            "invalid_request",
            id="repeated",
        ),
        pytest.param(
            {"data": {"grant_type": "client_credentials", "client_secret": SECRET}, "auth": (ID, SECRET)},
            400,
            "invalid_request",
            id="two-methods",
        ),
        pytest.param(
            {
                "data": "grant_type=client_credentials",
                "auth": (ID, SECRET),
                "headers": {"Content-Type": "text/plain"},
            },
            400,
            "invalid_request",
            id="content-type",
        ),
        pytest.param(
            {"data": {"grant_type": "client_credentials"}}, 401, "invalid_client", id="no-credentials"
        ),
        pytest.param(
            {"data": {"grant_type": "client_credentials", "client_id": ID, "client_secret": "x"}},
            401,
            "invalid_client",
            id="post-wrong",
        ),
    ],
)
def test_oauth2_errors(
    token_emulator: EmulatorServer, kwargs: dict[str, Any], status: int, error: str
) -> None:
    response = post(token_emulator, "oauth2", **kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert "www-authenticate" not in response.headers


def test_oauth2_wrong_basic_credentials_challenge(token_emulator: EmulatorServer) -> None:
    response = post(token_emulator, "oauth2", data={"grant_type": "client_credentials"}, auth=(ID, "wrong"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


# ------------------------------------------------------------------------------------- custom


def test_custom_success_is_nested_with_an_iso_8601_expiry(token_emulator: EmulatorServer) -> None:
    before = datetime.now(UTC)
    response = post(token_emulator, "custom", **good_request("custom"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"data", "meta"}
    session = body["data"]["session"]
    assert set(session) == {"value", "type", "expiresAt", "scopes"}
    assert session["type"] == "Bearer"
    assert session["scopes"] == ["images:read", "images:write"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", session["expiresAt"])
    expires = datetime.fromisoformat(session["expiresAt"])
    assert before + timedelta(seconds=899) <= expires <= datetime.now(UTC) + timedelta(seconds=901)
    assert session["value"] in token_emulator.client.issued_tokens()
    (record,) = token_emulator.client.requests("custom")
    assert (record["method"], record["path"], record["form"]) == (
        "POST",
        "/api/v3/auth/sessions",
        {"grant": "session"},
    )


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        pytest.param({"json": {"grant": "session"}, "auth": (ID, SECRET)}, 400, "form-urlencoded", id="json"),
        pytest.param({"data": {"grant": ""}, "auth": (ID, SECRET)}, 400, "grant must be", id="empty-grant"),
        pytest.param({"data": {"grant": "token"}, "auth": (ID, SECRET)}, 400, "grant must be", id="grant"),
        pytest.param(
            {"data": {"grant": "session", "key": ID}, "auth": (ID, SECRET)}, 400, "parameter: key", id="extra"
        ),
        pytest.param(
            {
                "data": "grant=session&grant=session",
                "auth": (ID, SECRET),
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            400,
            "repeated parameter: grant",
            id="twice",
        ),
        pytest.param({"data": {"grant": "session"}}, 401, "Authentication required", id="no-auth"),
        pytest.param({"data": {"grant": "session"}, "auth": (ID, "x")}, 401, "Invalid API key", id="wrong"),
    ],
)
def test_custom_errors(
    token_emulator: EmulatorServer, kwargs: dict[str, Any], status: int, message: str
) -> None:
    response = post(token_emulator, "custom", **kwargs)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    assert message in error["message"]


def test_custom_basic_credentials_are_utf8(token_emulator: EmulatorServer) -> None:
    token_emulator.client.add_credentials("custom", SPECIAL_ID, SPECIAL_SECRET)
    grant = {"grant": "session"}
    raw = post(
        token_emulator, "custom", data=grant, headers=basic(SPECIAL_ID, SPECIAL_SECRET, form_encode=False)
    )
    assert raw.status_code == 201, raw.text
    # RFC 7617, not RFC 6749 section 2.3.1: percent-encoded credentials are other credentials.
    form = post(
        token_emulator, "custom", data=grant, headers=basic(SPECIAL_ID, SPECIAL_SECRET, form_encode=True)
    )
    assert form.status_code == 401


def test_routes_are_exact(token_emulator: EmulatorServer) -> None:
    # Podero's path has a trailing slash, the generic endpoint has none; no redirects between them.
    response = requests.post(
        token_emulator.url + "/v2/token/", json={"clientId": ID, "clientSecret": SECRET}, timeout=5
    )
    assert response.status_code == 404
    assert requests.get(token_emulator.token_url("sirv"), timeout=5).status_code == 405


# ------------------------------------------------------------------------------------- faults


def test_fault_sequence_consumed_in_order(token_emulator: EmulatorServer) -> None:
    http_date = datetime.now(UTC) + timedelta(seconds=30)
    token_emulator.client.inject(
        "sirv", Fault.status(503), Fault.status(429, retry_after=7), Fault.status(503, retry_after=http_date)
    )
    token_emulator.client.inject("sirv", Fault.status(500))  # appended
    responses = [post(token_emulator, "sirv", **good_request("sirv")) for _ in range(5)]
    assert [r.status_code for r in responses] == [503, 429, 503, 500, 200]
    assert responses[0].json() == {
        "statusCode": 503,
        "error": "Service Unavailable",
        "message": "Service Unavailable",
    }
    assert "retry-after" not in responses[0].headers
    assert responses[1].headers["retry-after"] == "7"
    assert abs(parsedate_to_datetime(responses[2].headers["retry-after"]) - http_date) < timedelta(seconds=1)
    assert responses[3].json()["statusCode"] == 500
    assert token_emulator.client.token_requests("sirv") == 5
    assert len(token_emulator.client.requests("sirv")) == 5
    # Faults are per vendor.
    assert post(token_emulator, "oauth2", **good_request("oauth2")).status_code == 200


@pytest.mark.parametrize(
    ("vendor", "check"),
    [
        (
            "sirv",
            lambda b: b == {"statusCode": 500, "error": "Internal Server Error", "message": b["message"]},
        ),
        ("learning360", lambda b: b == {"error": "server_error"}),
        ("manis", lambda b: b["status"] == 500 and b["soaCode"] == "AUTH-500" and "detail" in b),
        ("podero", lambda b: b["error"] == "server_error" and "error_description" in b),
        ("oauth2", lambda b: b["error"] == "server_error" and "error_description" in b),
        (
            "custom",
            lambda b: b == {"error": {"code": "internal_server_error", "message": "Internal Server Error"}},
        ),
    ],
)
def test_fault_status_uses_vendor_error_shape(
    token_emulator: EmulatorServer, vendor: str, check: Callable[[dict[str, Any]], bool]
) -> None:
    token_emulator.client.inject(vendor, Fault.status(500))
    response = post(token_emulator, vendor, **good_request(vendor))
    assert response.status_code == 500
    assert check(response.json())


def test_fault_manis_401_shape(token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("manis", Fault.status(401))
    body = post(token_emulator, "manis", **good_request("manis")).json()
    assert body["message"] == "Invalid merchant credentials"
    assert set(body) == {"message", "timestamp"}


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Poll ``condition`` until it holds; fail after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_fault_delay_does_not_block_others(token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.delay(600))
    body = json.dumps({"clientId": ID, "clientSecret": SECRET}).encode()
    with socket.create_connection(("127.0.0.1", token_emulator.port), timeout=30) as slow:
        slow.sendall(
            b"POST /v2/token HTTP/1.1\r\nHost: emulator\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_for(lambda: token_emulator.client.token_requests("sirv") == 1)  # the delay has begun
        # Another request is answered while the delayed one still waits, however slow the machine.
        assert post(token_emulator, "oauth2", **good_request("oauth2")).status_code == 200
        assert post(token_emulator, "sirv", **good_request("sirv")).status_code == 200
        assert select.select([slow], [], [], 0)[0] == []  # nothing came back on the delayed request
    # A delay the client waits out ends in the normal answer.
    token_emulator.client.inject("sirv", Fault.delay(0.2))
    response = post(token_emulator, "sirv", **good_request("sirv"))
    assert response.status_code == 200
    assert response.json()["token"] == token_emulator.client.issued_tokens()[-1]


def test_fault_delay_client_timeout(caplog: pytest.LogCaptureFixture) -> None:
    # A dedicated server: stopping it must not wait for the abandoned delayed request.
    caplog.set_level(logging.WARNING, logger="airflow_tokens.testing.emulator")
    server = EmulatorServer().start()
    try:
        server.client.inject("podero", Fault.delay(600))
        with pytest.raises(requests.ReadTimeout):
            post(server, "podero", timeout=0.2, **good_request("podero"))
        assert post(server, "podero", **good_request("podero")).status_code == 200
        assert server.client.token_requests("podero") == 2
    finally:
        started = time.monotonic()
        server.stop(timeout=60)
    # Well under the 600 s delay, and without forcing the server down.
    assert time.monotonic() - started < 60
    assert not server.running
    assert not [r for r in caplog.records if "did not stop" in r.getMessage()]


@pytest.mark.parametrize(
    ("vendor", "malformed", "status", "rejection"),
    [
        (
            "sirv",
            {"json": {"clientId": ID, "clientSecret": SECRET, "scope": "x"}},
            400,
            "body must NOT have additional properties: 'scope'",
        ),
        (
            "learning360",
            {"json": {**good_request("learning360")["json"], "scope": "x"}},
            400,
            "invalid_request",
        ),
        ("manis", {"headers": {"x-merchant-id": ID}}, 400, "Required request header 'x-secret'"),
        ("podero", {"json": {"grant_type": "client_credentials"}}, 401, "Client authentication required."),
        (
            "oauth2",
            {"data": {"client_id": ID, "client_secret": SECRET}},
            400,
            "Missing required parameter 'grant_type'.",
        ),
    ],
)
@pytest.mark.parametrize(
    "fault",
    [Fault.status(503), Fault.patch(token=None), Fault.json(200, {"x": 1}), Fault.html(), Fault.reset()],
    ids=["503", "patch", "json", "html", "reset"],
)
def test_a_malformed_request_is_rejected_even_when_a_fault_is_queued(
    token_emulator: EmulatorServer,
    vendor: str,
    malformed: dict[str, Any],
    status: int,
    rejection: str,
    fault: dict[str, Any],
) -> None:
    token_emulator.client.inject(vendor, fault)
    response = post(token_emulator, vendor, **malformed)
    assert response.status_code == status  # the vendor's own rejection, not the fault
    assert rejection in response.text
    [record] = token_emulator.client.requests(vendor)
    assert record["valid"] is False
    assert token_emulator.client.invalid_requests(vendor) == 1
    assert token_emulator.client.stats()["faults_pending"][vendor] == 1  # kept for a well-formed request
    assert token_emulator.client.issued_tokens() == []


def test_fault_html(token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("learning360", Fault.html())
    response = post(token_emulator, "learning360", **good_request("learning360"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_fault_truncated(token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.truncated())
    response = post(token_emulator, "sirv", **good_request("sirv"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.text == '{"token": "abc'
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_fault_patch(token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject(
        "sirv",
        Fault.patch(token=None),
        Fault.patch(expiresIn="soon"),
        Fault.patch({"token": 42, "extra": [1]}),
    )
    missing = post(token_emulator, "sirv", **good_request("sirv")).json()
    assert set(missing) == {"expiresIn", "scope"}
    assert post(token_emulator, "sirv", **good_request("sirv")).json()["expiresIn"] == "soon"
    odd = post(token_emulator, "sirv", **good_request("sirv")).json()
    assert odd["token"] == 42
    assert odd["extra"] == [1]
    # A dotted name reaches into a nested answer; a path that is not there changes nothing.
    token_emulator.client.inject(
        "custom",
        Fault.patch({"data.session.value": None, "data.session.expiresAt": "soon"}),
        Fault.patch({"data.missing.value": 1, "meta.requestId": None}),
    )
    nested = post(token_emulator, "custom", **good_request("custom")).json()["data"]["session"]
    assert "value" not in nested
    assert nested["expiresAt"] == "soon"
    untouched = post(token_emulator, "custom", **good_request("custom")).json()
    assert set(untouched["data"]) == {"session"}
    assert untouched["meta"] == {}
    # A patch only touches a success: wrong credentials still fail.
    token_emulator.client.inject("manis", Fault.patch(expiresAt=None))
    assert post(token_emulator, "manis", headers={"x-merchant-id": ID, "x-secret": "x"}).status_code == 401


def test_fault_body_and_json(token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject(
        "oauth2", Fault.body(502, "upstream down", "text/plain"), Fault.json(200, {"access_token": None})
    )
    first = post(token_emulator, "oauth2", **good_request("oauth2"))
    assert (first.status_code, first.text, first.headers["content-type"]) == (
        502,
        "upstream down",
        "text/plain",
    )
    second = post(token_emulator, "oauth2", **good_request("oauth2"))
    assert (second.status_code, second.json()) == (200, {"access_token": None})


def test_fault_reset(token_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    token_emulator.client.inject("manis", Fault.reset(), {**Fault.reset(), **Fault.status(503)})
    for _ in range(2):
        with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
            post(token_emulator, "manis", **good_request("manis"))
    assert post(token_emulator, "manis", **good_request("manis")).status_code == 200
    assert token_emulator.client.token_requests("manis") == 3
    # The deliberate truncation is not reported as an application error.
    assert not [r for r in caplog.records if r.name.startswith("uvicorn")]


def test_invalid_faults_are_refused(token_emulator: EmulatorServer) -> None:
    with pytest.raises(EmulatorError, match="unknown fault keys"):
        token_emulator.client.inject("sirv", {"stauts": 500})
    with pytest.raises(EmulatorError, match="status"):
        token_emulator.client.inject("sirv", {"status": "500"})
    with pytest.raises(EmulatorError, match="unknown vendor"):
        token_emulator.client.inject("nope", Fault.status(500))
    assert token_emulator.client.stats()["faults_pending"]["sirv"] == 0


def test_reset_clears_faults(token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.status(500))
    token_emulator.client.reset()
    assert post(token_emulator, "sirv", **good_request("sirv")).status_code == 200


# ------------------------------------------------------------------------ protected resources


@pytest.mark.parametrize("vendor", VENDORS)
def test_protected_accepts_issued_tokens(token_emulator: EmulatorServer, vendor: str) -> None:
    token = get_token(token_emulator, vendor)
    response = requests.get(
        token_emulator.url + "/protected", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True, "vendor": vendor}


def test_sirv_account_resource(token_emulator: EmulatorServer) -> None:
    url = token_emulator.url + "/v2/account"
    sirv_token = get_token(token_emulator, "sirv")
    assert requests.get(url, headers={"Authorization": f"Bearer {sirv_token}"}, timeout=5).json() == {
        "ok": True,
        "vendor": "sirv",
    }
    other = get_token(token_emulator, "oauth2")
    assert requests.get(url, headers={"Authorization": f"Bearer {other}"}, timeout=5).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer unknown-token"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
)
def test_protected_rejects_unknown_tokens(token_emulator: EmulatorServer, headers: dict[str, str]) -> None:
    response = requests.get(token_emulator.url + "/protected", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json() == {
        "statusCode": 401,
        "error": "Unauthorized",
        "message": "Invalid or expired token",
    }


def test_protected_rejects_revoked_and_expired(token_emulator: EmulatorServer) -> None:
    url = token_emulator.url + "/protected"
    token = get_token(token_emulator, "podero")
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 200
    assert token_emulator.client.revoke() == 1
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 401
    token_emulator.client.configure("podero", lifetime=0)
    expired = get_token(token_emulator, "podero")
    assert requests.get(url, headers={"Authorization": f"Bearer {expired}"}, timeout=5).status_code == 401
    stats = token_emulator.client.stats()
    assert stats["resource_requests"] == 3
    assert stats["token_requests"]["podero"] == 2


# ------------------------------------------------------------------------------------- jobs


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_job_runs_until_its_polls_then_succeeds(token_emulator: EmulatorServer) -> None:
    token = get_token(token_emulator, "podero")
    started = requests.post(
        token_emulator.url + "/jobs", json={"report": "sales"}, headers=bearer(token), timeout=5
    )
    assert started.status_code == 201
    job = started.json()
    assert job["status"] == "running"
    url = f"{token_emulator.url}/jobs/{job['id']}"
    answers = [requests.get(url, headers=bearer(token), timeout=5).json() for _ in range(3)]
    assert [a["status"] for a in answers] == ["running", "running", "succeeded"]
    assert answers[-1]["result"] == {"payload": {"report": "sales"}}
    assert token_emulator.client.job_requests() == {"start": 1, "status": 3}
    assert token_emulator.client.stats()["jobs_started"] == 1


def test_job_knobs_polls_seconds_and_fail(token_emulator: EmulatorServer) -> None:
    headers = bearer(get_token(token_emulator, "sirv"))

    def start(body: dict[str, Any]) -> str:
        response = requests.post(token_emulator.url + "/jobs", json=body, headers=headers, timeout=5)
        assert response.status_code == 201, response.text
        return f"{token_emulator.url}/jobs/{response.json()['id']}"

    assert requests.get(start({"polls": 1}), headers=headers, timeout=5).json()["status"] == "succeeded"
    timed = start({"polls": 1000, "seconds": 0.2})
    assert requests.get(timed, headers=headers, timeout=5).json()["status"] == "running"
    time.sleep(0.25)
    assert requests.get(timed, headers=headers, timeout=5).json()["status"] == "succeeded"
    failed = requests.get(start({"polls": 1, "fail": True}), headers=headers, timeout=5).json()
    assert failed["status"] == "failed"
    assert failed["error"] == "The job failed"


def test_held_jobs_stay_running_and_the_default_polls_apply(token_emulator: EmulatorServer) -> None:
    client = token_emulator.client
    assert client.configure_jobs(polls=1, hold=True) == {"polls": 1, "hold": True}
    headers = bearer(get_token(token_emulator, "sirv"))
    job = requests.post(token_emulator.url + "/jobs", json={"report": "x"}, headers=headers, timeout=5).json()
    url = f"{token_emulator.url}/jobs/{job['id']}"
    reads = [requests.get(url, headers=headers, timeout=5).json()["status"] for _ in range(2)]
    assert reads == ["running", "running"]
    assert client.jobs() == [{"id": job["id"], "payload": {"report": "x"}, "polls": 2}]
    assert client.configure_jobs(hold=False) == {"polls": 1, "hold": False}
    assert requests.get(url, headers=headers, timeout=5).json()["status"] == "succeeded"
    with pytest.raises(EmulatorError, match="'polls' must be a positive integer"):
        client.configure_jobs(polls=0)
    with pytest.raises(EmulatorError, match="unknown job settings"):
        client._call("POST", "jobs", body={"speed": 2})


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ([1], "JSON object"),
        ({"polls": 0}, "'polls'"),
        ({"seconds": "x"}, "'seconds'"),
        ({"fail": 1}, "'fail'"),
    ],
)
def test_job_bad_body_is_400(token_emulator: EmulatorServer, body: Any, match: str) -> None:
    headers = bearer(get_token(token_emulator, "sirv"))
    response = requests.post(token_emulator.url + "/jobs", json=body, headers=headers, timeout=5)
    assert response.status_code == 400
    assert match in response.json()["detail"]


def test_job_api_needs_a_valid_bearer_token(token_emulator: EmulatorServer) -> None:
    token = get_token(token_emulator, "manis")
    job = requests.post(token_emulator.url + "/jobs", json={}, headers=bearer(token), timeout=5).json()
    url = f"{token_emulator.url}/jobs/{job['id']}"
    assert requests.post(token_emulator.url + "/jobs", json={}, timeout=5).status_code == 401
    assert requests.get(url, headers=bearer("unknown-token"), timeout=5).status_code == 401
    token_emulator.client.revoke()
    refused = requests.get(url, headers=bearer(token), timeout=5)
    assert refused.status_code == 401
    assert refused.json()["message"] == "Invalid or expired token"
    fresh = bearer(get_token(token_emulator, "manis"))
    assert requests.get(f"{token_emulator.url}/jobs/job-99", headers=fresh, timeout=5).status_code == 404
    assert token_emulator.client.job_requests() == {"start": 2, "status": 3}
    assert token_emulator.client.stats()["jobs_started"] == 1


# ------------------------------------------------------------------------- stats, log, admin


def test_stats_and_request_log(token_emulator: EmulatorServer) -> None:
    client = token_emulator.client
    get_token(token_emulator, "sirv")
    post(token_emulator, "sirv", json={})
    get_token(token_emulator, "manis")
    get_token(token_emulator, "oauth2")
    token_emulator.client.inject("podero", Fault.status(503))
    post(token_emulator, "podero", **good_request("podero"))
    requests.get(token_emulator.url + "/protected", timeout=5)
    assert client.stats()["token_requests"] == {
        "sirv": 2,
        "learning360": 0,
        "manis": 1,
        "podero": 1,
        "oauth2": 1,
        "custom": 0,
    }
    assert client.resource_requests() == 1
    assert client.token_requests("sirv") == 2
    assert client.stats()["invalid_requests"] == {**dict.fromkeys(VENDORS, 0), "sirv": 1}

    first, second = client.requests("sirv")
    assert {"method", "path", "headers", "body", "json", "form"} <= set(first)
    assert (first["method"], first["path"]) == ("POST", "/v2/token")
    assert first["json"] == {"clientId": ID, "clientSecret": SECRET}
    assert json.loads(first["body"]) == first["json"]
    assert first["headers"]["content-type"] == "application/json"
    assert first["form"] is None
    assert first["valid"] is True
    assert second["json"] == {}
    assert second["valid"] is False
    (manis,) = client.requests("manis")
    assert manis["headers"]["x-merchant-id"] == ID
    assert (manis["body"], manis["json"], manis["form"]) == ("", None, None)
    (oauth,) = client.requests("oauth2")
    assert oauth["form"] == {"grant_type": "client_credentials"}
    assert oauth["headers"]["authorization"].startswith("Basic ")
    assert len(client.requests("podero")) == 1  # faulted requests are logged too
    assert [r["vendor"] for r in client.requests()] == ["sirv", "sirv", "manis", "oauth2", "podero"]

    client.reset()
    assert client.stats()["token_requests"] == dict.fromkeys(VENDORS, 0)
    assert client.requests() == []


def test_issued_tokens_lists_every_token_until_reset(token_emulator: EmulatorServer) -> None:
    client = token_emulator.client
    assert client.issued_tokens() == []
    issued = [get_token(token_emulator, vendor) for vendor in VENDORS]
    post(token_emulator, "sirv", json={"clientId": ID, "clientSecret": "wrong"})  # refused: issues nothing
    assert client.issued_tokens() == issued
    # Revoked and expired tokens were still handed out: an audit must keep looking for them.
    client.revoke()
    client.configure("oauth2", lifetime=0)
    issued.append(get_token(token_emulator, "oauth2"))
    assert client.issued_tokens() == issued
    assert requests.get(f"{token_emulator.url}/_emulator/issued", timeout=5).json() == issued
    client.reset()
    assert client.issued_tokens() == []


def test_admin_validation(token_emulator: EmulatorServer) -> None:
    client = token_emulator.client
    with pytest.raises(EmulatorError, match="unknown vendor"):
        client.requests("nope")
    with pytest.raises(EmulatorError, match="no option"):
        client.configure("sirv", expires_at_unit="s")
    with pytest.raises(EmulatorError, match="expires_at_unit"):
        client.configure("manis", expires_at_unit="minutes")
    with pytest.raises(EmulatorError, match="lifetime"):
        client.configure("sirv", lifetime=-1)
    response = requests.post(token_emulator.url + "/_emulator/faults", data="[]", timeout=5)
    assert response.status_code == 400
    assert client.configure("sirv", lifetime=30)["lifetime"] == 30
    assert post(token_emulator, "sirv", **good_request("sirv")).json()["expiresIn"] == 30


def test_client_against_nothing() -> None:
    port = free_port()
    client = EmulatorClient(f"http://127.0.0.1:{port}/", timeout=1)
    assert client.url == f"http://127.0.0.1:{port}"
    assert client.token_url("podero") == f"http://127.0.0.1:{port}/oauth2/token/"
    with pytest.raises(requests.ConnectionError):
        client.stats()


def test_state_is_thread_safe(token_emulator: EmulatorServer) -> None:
    def hammer() -> None:
        for _ in range(20):
            get_token(token_emulator, "learning360")

    threads = [threading.Thread(target=hammer) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = token_emulator.client.stats()
    assert stats["token_requests"]["learning360"] == 100
    assert stats["tokens_issued"] == 100  # every token distinct


# ------------------------------------------------------------------------------------ __main__


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_main_serves_and_stops_on_signal(sig: signal.Signals) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_tokens.testing", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            assert proc.stdout is not None
            line = pool.submit(proc.stdout.readline).result(timeout=20)
        assert line == f"airflow-tokens emulator listening on http://127.0.0.1:{port}\n"
        response = requests.post(
            f"http://127.0.0.1:{port}/v2/token", json={"clientId": ID, "clientSecret": SECRET}, timeout=5
        )
        assert response.status_code == 200
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    assert "Traceback" not in proc.stderr.read()


def test_main_reports_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        assert main(["--port", str(busy.getsockname()[1])]) == 1
    assert "cannot listen" in capsys.readouterr().err
