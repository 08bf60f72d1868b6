"""The HTTP provider (HttpHook, HttpOperator, HttpSensor) and httpx carry our tokens to the emulator's API."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.triggers.http import deserialize_auth_type, serialize_auth_type

from airflow_tokens.exceptions import TokenConfigError, TokenError
from airflow_tokens.http import (
    TokenAuthNotDeferrable,
    TokenHttpHook,
    TokenHttpOperator,
    TokenHttpSensor,
    httpx_auth,
    token_auth,
)
from airflow_tokens.memory import forget_connections
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer
from tests.vendors import OAUTH2, SIRV, delete_variable

#: The login and password of the separate ``http`` connection: they must never reach the API.
HTTP_LOGIN = "http-conn-login"
HTTP_PASSWORD = "http-conn-password-0451"


@pytest.fixture
def sirv(token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """Point ``sirv_default`` at the emulator, and ``sirv_api`` (an http connection) at its API."""
    SIRV.configure(monkeypatch, token_emulator.url)
    api = {"conn_type": "http", "host": token_emulator.url, "login": HTTP_LOGIN, "password": HTTP_PASSWORD}
    monkeypatch.setenv("AIRFLOW_CONN_SIRV_API", json.dumps(api))
    return token_emulator


def _secret_forms() -> list[str]:
    """Return every form of a credential that must stay off the API: raw and as HTTP Basic."""
    forms = [EMULATOR_CLIENT_SECRET, HTTP_PASSWORD]
    for login, password in ((EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET), (HTTP_LOGIN, HTTP_PASSWORD)):
        forms.append(base64.b64encode(f"{login}:{password}".encode()).decode())
    return forms


def _assert_bearer_only(emulator: EmulatorServer, calls: int) -> list[dict[str, Any]]:
    """Assert the API got ``calls`` requests, each with a bearer token and no credential; return them."""
    logged = emulator.client.api_calls()
    assert len(logged) == calls
    issued = set(emulator.client.issued_tokens())
    for call in logged:
        authorization = call["headers"]["authorization"]
        scheme, _, token = authorization.partition(" ")
        assert scheme == "Bearer"
        assert token in issued
        wire = json.dumps(call)
        for form in _secret_forms():
            assert form not in wire
        assert HTTP_LOGIN not in wire
    return logged


def test_http_hook_with_token_auth_sends_the_token_not_the_http_login(sirv: EmulatorServer) -> None:
    hook = HttpHook(method="GET", http_conn_id="sirv_api", auth_type=token_auth("sirv_default"))
    for _ in range(3):
        assert hook.run("/v2/account").json() == {"ok": True, "vendor": "sirv"}
    assert sirv.client.token_requests("sirv") == 1  # one token for every call
    _assert_bearer_only(sirv, calls=3)


def test_http_operator_with_token_auth_renews_a_revoked_token_once(sirv: EmulatorServer) -> None:
    operator = HttpOperator(
        task_id="account",
        http_conn_id="sirv_api",
        endpoint="/v2/account",
        method="GET",
        auth_type=token_auth("sirv_default"),
    )
    assert json.loads(operator.execute({})) == {"ok": True, "vendor": "sirv"}  # type: ignore[arg-type]
    first = sirv.client.issued_tokens()
    sirv.client.revoke("sirv")
    assert json.loads(operator.execute({})) == {"ok": True, "vendor": "sirv"}  # type: ignore[arg-type]
    assert sirv.client.token_requests("sirv") == 2
    calls = _assert_bearer_only_or_revoked(sirv, first)
    assert [call["path"] for call in calls] == ["/v2/account"] * 3  # ok, 401 with the revoked token, ok


def _assert_bearer_only_or_revoked(emulator: EmulatorServer, revoked: list[str]) -> list[dict[str, Any]]:
    """As :func:`_assert_bearer_only` for three calls, the second carrying the revoked token."""
    logged = emulator.client.api_calls()
    assert len(logged) == 3
    tokens = [call["headers"]["authorization"].removeprefix("Bearer ") for call in logged]
    assert tokens[0] == tokens[1] == revoked[0]
    assert tokens[2] == emulator.client.issued_tokens()[1]
    for form in _secret_forms():
        assert form not in json.dumps(logged)
    return logged


def test_plain_requests_take_a_token_auth_instance(sirv: EmulatorServer) -> None:
    auth = token_auth("sirv_default")()
    response = requests.get(f"{sirv.url}/v2/account", auth=auth, timeout=10)
    assert response.json() == {"ok": True, "vendor": "sirv"}
    _assert_bearer_only(sirv, calls=1)


def test_token_http_hook_calls_the_api_with_the_vendor_connection_alone(sirv: EmulatorServer) -> None:
    hook = TokenHttpHook(method="GET", http_conn_id="sirv_default")
    assert hook.run("/v2/account").json() == {"ok": True, "vendor": "sirv"}
    assert hook.run("/protected").json() == {"ok": True, "vendor": "sirv"}
    sirv.client.revoke()
    assert hook.run("/v2/account").status_code == 200  # renewed once after the 401
    assert sirv.client.token_requests("sirv") == 2
    assert len(sirv.client.api_calls()) == 4


def test_an_api_base_url_extra_names_the_api_when_the_host_is_the_token_url(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    OAUTH2.configure(monkeypatch, token_emulator.url)
    with pytest.raises(TokenConfigError, match="api_base_url: is required"):
        TokenHttpHook(method="GET", http_conn_id=OAUTH2.conn_id).run("/protected")
    assert token_emulator.client.token_requests("oauth2") == 0
    OAUTH2.configure(monkeypatch, token_emulator.url, extra={"api_base_url": token_emulator.url})
    hook = TokenHttpHook(method="GET", http_conn_id=OAUTH2.conn_id)
    assert hook.run("/protected").json() == {"ok": True, "vendor": "oauth2"}
    _assert_bearer_only(token_emulator, calls=1)


def test_the_providers_http_operator_refuses_a_vendor_connection(sirv: EmulatorServer) -> None:
    operator = HttpOperator(task_id="misused", http_conn_id="sirv_default", endpoint="/v2/account")
    with pytest.raises(TokenConfigError) as raised:
        operator.execute({})  # type: ignore[arg-type]
    message = str(raised.value)
    assert "TokenHttpOperator(http_conn_id='sirv_default'" in message
    assert "token_auth('sirv_default')" in message
    assert sirv.client.api_calls() == []
    assert sirv.client.token_requests("sirv") == 0


def test_deferrable_calls_are_refused_before_any_token_is_written_anywhere(sirv: EmulatorServer) -> None:
    for cls in (TokenHttpOperator, TokenHttpSensor):
        with pytest.raises(TokenConfigError, match="deferrable"):
            cls(task_id="t", http_conn_id="sirv_default", endpoint="/v2/account", deferrable=True)
    # The provider's deferrable HttpOperator serializes the auth class by name; the triggerer finds
    # the refusal, and no token went into the trigger's arguments (the class carries none).
    path = serialize_auth_type(token_auth("sirv_default"))
    assert path == "airflow_tokens.http.TokenAuthNotDeferrable"
    refused = deserialize_auth_type(path)
    assert refused is TokenAuthNotDeferrable
    with pytest.raises(TokenError, match="RunJobOperator"):
        refused(HTTP_LOGIN, HTTP_PASSWORD)
    assert sirv.client.token_requests("sirv") == 0


def test_httpx_clients_sync_and_async_send_and_renew_the_token(sirv: EmulatorServer) -> None:
    auth = httpx_auth("sirv_default")
    with httpx.Client(base_url=sirv.url, auth=auth) as client:
        assert client.get("/v2/account").json() == {"ok": True, "vendor": "sirv"}
        sirv.client.revoke()
        assert client.get("/v2/account").status_code == 200

    async def call_async() -> list[int]:
        async with httpx.AsyncClient(base_url=sirv.url, auth=auth) as client:
            statuses = [(await client.get("/protected")).status_code]
            sirv.client.revoke()
            statuses.append((await client.get("/protected")).status_code)
            return statuses

    assert asyncio.run(call_async()) == [200, 200]
    assert sirv.client.token_requests("sirv") == 3  # the first, and one renewal per revocation
    assert len(sirv.client.api_calls()) == 6  # two renewals cost one refused call each


@pytest.mark.airflow_db
def test_token_http_operator_and_sensor_in_a_dag_run(dagbag: Any, sirv: EmulatorServer) -> None:
    try:
        run = dagbag.dags["http_provider_calls"].test()
        assert run.state == "success"
    finally:
        delete_variable(SIRV.variable_key)
        forget_connections()
    assert sirv.client.token_requests("sirv") == 1  # five tasks, one token through the Variable
    calls = _assert_bearer_only(sirv, calls=len(sirv.client.api_calls()))
    paths = [call["path"] for call in calls]
    assert paths[:4] == ["/v2/account", "/v2/account", "/v2/account", "/jobs"]
    assert set(paths[4:]) == {"/jobs/job-1"}
    assert len(paths[4:]) >= 2  # the sensor poked until the job was done
    assert sirv.client.job_requests()["status"] == len(paths[4:])


def test_without_the_http_provider_the_import_names_the_extra_to_install() -> None:
    # A finder that answers for the provider as an environment without it would: no such module.
    script = """
import importlib.abc, sys

class NoHttpProvider(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "airflow.providers.http" or name.startswith("airflow.providers.http."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoHttpProvider())
try:
    import airflow_tokens.http
except ModuleNotFoundError as exc:
    print(exc.name)
    print(exc)
else:
    print("imported")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    name, message = done.stdout.splitlines()
    assert name.startswith("airflow.providers.http")
    assert message == (
        "airflow_tokens.http builds on Airflow's HTTP provider, which is not installed: "
        'pip install "airflow-tokens[http]" (apache-airflow-providers-http)'
    )
