"""The Sirv hook against the emulator: a real local server, real HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import tenacity

from airflow_tokens.exceptions import TokenConfigError, TokenRequestError, TokenResponseError
from airflow_tokens.hooks.sirv import SirvTokenHook
from airflow_tokens.memory import forget_connections
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer, Fault
from tests.vendors import SIRV, only_issued

FAST = RetryPolicy(max_attempts=4, max_seconds=20).retrying(wait=tenacity.wait_none())
HookFactory = Callable[..., SirvTokenHook]


@pytest.fixture
def sirv(token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> HookFactory:
    """Configure ``sirv_default`` by AIRFLOW_CONN_ JSON and return a hook factory."""

    def make(conn: dict[str, Any] | None = None, **options: Any) -> SirvTokenHook:
        settings = {
            "conn_type": "sirv",
            "host": token_emulator.url,
            "login": EMULATOR_CLIENT_ID,
            "password": EMULATOR_CLIENT_SECRET,
            **(conn or {}),
        }
        monkeypatch.setenv("AIRFLOW_CONN_SIRV_DEFAULT", json.dumps(settings))
        forget_connections()  # the connection changed: new hooks must see it now
        options.setdefault("retry", FAST)
        return SirvTokenHook(**options)

    return make


def test_request_is_exactly_what_sirv_documents(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token = sirv().get_access_token()
    [request] = token_emulator.client.requests("sirv")
    assert request["method"] == "POST"
    assert request["path"] == "/v2/token"
    assert request["headers"]["content-type"] == "application/json"
    assert request["json"] == {"clientId": EMULATOR_CLIENT_ID, "clientSecret": EMULATOR_CLIENT_SECRET}
    assert token.token == only_issued(token_emulator)
    assert token.token_type == "Bearer"
    assert token.lifetime == pytest.approx(SIRV.issued_lifetime, abs=1)
    assert "files:read" in (token.scope or ())


def test_expires_in_is_sent_only_when_configured(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token = sirv({"extra": {"expires_in": 300}}).get_access_token()
    assert token_emulator.client.requests("sirv")[0]["json"]["expiresIn"] == 300
    assert token.lifetime == pytest.approx(300, abs=1)


def test_prefixed_extra_from_the_ui_form_is_read(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    sirv({"extra": {"extra__sirv__expires_in": "600"}}).get_token()
    assert token_emulator.client.requests("sirv")[0]["json"]["expiresIn"] == 600


def test_token_is_cached_across_hooks(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    first = sirv().get_token()
    assert sirv().get_token() == first
    assert token_emulator.client.token_requests("sirv") == 1
    assert sirv().get_token(force_refresh=True) != first
    assert token_emulator.client.token_requests("sirv") == 2


def test_cache_none_keeps_nothing_and_fetches_on_every_call(
    sirv: HookFactory, token_emulator: EmulatorServer
) -> None:
    from airflow_tokens.memory import MEMORY

    memory = sirv(cache="memory").get_token()  # a token another hook keeps in this process's memory
    hook = sirv({"extra": {"cache": "none"}})
    tokens = [hook.get_token(), hook.get_token(), asyncio.run(hook.aget_token())]
    assert token_emulator.client.token_requests("sirv") == 4
    assert len({memory, *tokens}) == 4  # none was served from memory, however fresh
    assert MEMORY.entries[hook.cache_key].entry.token.token == memory  # and none replaced it there


def test_cache_none_calls_run_at_once_with_no_cache_in_between(
    sirv: HookFactory, token_emulator: EmulatorServer
) -> None:

    from airflow_tokens.memory import MEMORY

    token_emulator.client.inject("sirv", Fault.delay(2.0), Fault.delay(2.0))
    hook = sirv(cache="none")
    assert hook.cache is None  # no cache object at all: nothing to queue on
    calls = [threading.Thread(target=hook.get_token) for _ in range(2)]
    for call in calls:
        call.start()
    while token_emulator.client.token_requests("sirv") < 2 and all(call.is_alive() for call in calls):
        time.sleep(0.02)
    # Both requests reached the endpoint while both calls were still waiting for their answer.
    assert token_emulator.client.token_requests("sirv") == 2
    assert all(call.is_alive() for call in calls)
    for call in calls:
        call.join(timeout=30)
    assert hook.cache_key not in MEMORY.entries


@pytest.mark.parametrize(("field", "conn"), [("login", {"login": None}), ("password", {"password": ""})])
def test_missing_credential_fails_before_any_request(
    sirv: HookFactory, token_emulator: EmulatorServer, field: str, conn: dict[str, Any]
) -> None:
    with pytest.raises(TokenConfigError, match=f"'sirv_default': {field}: Client (ID|Secret) is missing"):
        sirv(conn).get_token()
    assert token_emulator.client.token_requests("sirv") == 0


@pytest.mark.parametrize(
    ("conn", "match"),
    [
        ({"host": "127.0.0.1:8080"}, "needs a scheme"),
        ({"host": "ftp://127.0.0.1"}, "not supported"),
        ({"host": "http://api.example.com"}, "unencrypted"),
        ({"extra": {"expires_in": 3}}, "expires_in: 3 is outside 5..604800"),
        ({"extra": {"expires_in": 604801}}, "outside"),
        ({"extra": {"expires_in": "soon"}}, "not a number"),
        ({"extra": {"cache": "disk"}}, "cache: 'disk' is not one of"),
        ({"extra": {"refresh_margin": -1}}, "refresh_margin"),
        ({"login": " id "}, "whitespace"),
    ],
)
def test_bad_configuration_is_a_typed_error_before_any_request(
    sirv: HookFactory, token_emulator: EmulatorServer, conn: dict[str, Any], match: str
) -> None:
    with pytest.raises(TokenConfigError, match=match) as info:
        sirv(conn).get_token()
    assert EMULATOR_CLIENT_SECRET not in str(info.value)
    assert token_emulator.client.token_requests("sirv") == 0


def test_http_to_remote_host_allowed_only_by_opt_in(sirv: HookFactory) -> None:
    hook = sirv({"host": "http://sirv.internal.example:8080", "extra": {"allow_http": True}})
    assert hook.token_request.url == "http://sirv.internal.example:8080/v2/token"


def test_host_overrides_default_and_default_is_sirv(sirv: HookFactory) -> None:
    assert sirv({"host": None}).token_request.url == "https://api.sirv.com/v2/token"
    assert (
        sirv({"host": "https://proxy.example/sirv/"}).token_request.url
        == "https://proxy.example/sirv/v2/token"
    )


@pytest.mark.parametrize("status", [502, 503, 500, 504, 408])
def test_transient_errors_then_success(
    sirv: HookFactory, token_emulator: EmulatorServer, status: int
) -> None:
    token_emulator.client.inject("sirv", Fault.status(status), Fault.status(503))
    assert sirv().get_token() == only_issued(token_emulator)
    assert token_emulator.client.token_requests("sirv") == 3


def test_429_retry_after_is_honoured(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.status(429, retry_after="1"))
    started = time.monotonic()
    assert sirv().get_token() == only_issued(token_emulator)
    assert time.monotonic() - started >= 0.9  # a lower bound: a slow machine only adds to it
    assert token_emulator.client.token_requests("sirv") == 2


def test_wrong_credentials_401_is_not_retried(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    with pytest.raises(TokenRequestError) as info:
        sirv({"password": "wrong-secret-value"}).get_token()
    assert info.value.status == 401
    assert info.value.attempts == 1
    assert "Wrong credentials" in str(info.value)
    assert "wrong-secret-value" not in str(info.value)
    assert token_emulator.client.token_requests("sirv") == 1


def test_exhausted_retries_report_attempts(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", *[Fault.status(503)] * 4)
    with pytest.raises(TokenRequestError, match="HTTP 503 after 4 attempts") as info:
        sirv().get_token()
    assert info.value.attempts == 4


# The delayed answers take 600 s; the read timeout (3 s) leaves a loaded machine ample time for a
# normal answer, so the request counts below hold however slow the machine is.
STALLED = Fault.delay(600)


def test_read_timeout_is_retried(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", STALLED)
    started = time.monotonic()
    assert sirv(timeout=(3, 3)).get_token() == only_issued(token_emulator)
    assert time.monotonic() - started < 60  # the stalled answer was not waited for
    assert token_emulator.client.token_requests("sirv") == 2


def test_timeout_on_every_attempt_is_bounded(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", *[STALLED] * 5)
    started = time.monotonic()
    with pytest.raises(TokenRequestError, match="ReadTimeout after 4 attempts") as info:
        sirv(timeout=(3, 0.3)).get_token()
    assert time.monotonic() - started < 60  # four 0.3 s read timeouts, far from one stalled answer
    assert info.value.attempts == 4
    assert token_emulator.client.token_requests("sirv") == 4
    assert token_emulator.client.issued_tokens() == []


def test_html_body_is_a_response_error(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.html())
    with pytest.raises(TokenResponseError, match=r"not JSON \(text/html"):
        sirv().get_token()
    assert token_emulator.client.token_requests("sirv") == 1


def test_truncated_body_is_a_response_error(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.truncated())
    with pytest.raises(TokenResponseError, match="not JSON"):
        sirv().get_token()


def test_missing_token_field_is_a_response_error(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.patch(token=None))
    with pytest.raises(TokenResponseError, match="'token' is missing"):
        sirv().get_token()


def test_missing_expiry_falls_back_to_the_jwt_exp(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.patch(expiresIn=None))
    token = sirv().get_access_token()
    # The JWT's exp says 1500 s; Sirv's documented lifetime, the hook's default, is 1200 s.
    assert token.lifetime == pytest.approx(SIRV.issued_lifetime, abs=2)
    assert token.token == only_issued(token_emulator)


def test_expires_in_wins_over_the_jwt_exp(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.patch(expiresIn=600))  # the JWT's exp still says 1500 s
    assert sirv().get_access_token().lifetime == pytest.approx(600, abs=2)


def test_neither_expires_in_nor_a_jwt_gives_sirvs_documented_lifetime(
    sirv: HookFactory, token_emulator: EmulatorServer
) -> None:
    token_emulator.client.inject("sirv", Fault.patch(expiresIn=None, token="an-opaque-token"))
    token = sirv().get_access_token()
    assert token.token == "an-opaque-token"
    assert token.lifetime == pytest.approx(SIRV.default_lifetime, abs=2)


def test_32_threads_cause_one_request(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    token_emulator.client.inject("sirv", Fault.delay(0.3))
    hooks = [sirv() for _ in range(32)]
    barrier = threading.Barrier(32)
    tokens: list[str] = []

    def ask(hook: SirvTokenHook) -> None:
        barrier.wait()
        tokens.append(hook.get_token())

    threads = [threading.Thread(target=ask, args=(hook,)) for hook in hooks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tokens == [only_issued(token_emulator)] * 32
    assert token_emulator.client.token_requests("sirv") == 1


def test_session_sends_token_and_renews_once_on_401(
    sirv: HookFactory, token_emulator: EmulatorServer
) -> None:
    hook = sirv()
    session = hook.get_conn()
    first = session.get(f"{hook.base_url}/v2/account", timeout=10)
    assert first.status_code == 200
    token_emulator.client.revoke()
    second = session.get(f"{hook.base_url}/v2/account", timeout=10)
    assert second.status_code == 200
    assert [r.status_code for r in second.history] == [401]
    assert token_emulator.client.token_requests("sirv") == 2
    assert hook.get_token() == second.request.headers["Authorization"].removeprefix("Bearer ")


def test_session_gives_up_after_one_renewal(sirv: HookFactory, token_emulator: EmulatorServer) -> None:
    hook = sirv()
    session = hook.get_conn()
    assert session.get(f"{hook.base_url}/v2/account", timeout=10).status_code == 200
    token_emulator.client.revoke()
    token_emulator.client.inject("sirv", Fault.patch(token="unknown-to-the-emulator"))
    refused = session.get(f"{hook.base_url}/v2/account", timeout=10)
    assert refused.status_code == 401
    assert len(refused.history) == 1
    assert token_emulator.client.token_requests("sirv") == 2


def test_auth_header(sirv: HookFactory) -> None:
    header = sirv().get_auth_header()
    assert header["Authorization"].startswith("Bearer ")


def test_test_connection(sirv: HookFactory) -> None:
    ok, message = sirv().test_connection()
    assert ok
    assert message.startswith("Got a Bearer token valid for 1500 s")
    ok, message = sirv({"password": "bad-secret-xyz"}).test_connection()
    assert not ok
    assert "HTTP 401" in message
    assert "bad-secret-xyz" not in message


def test_token_is_masked_in_this_process(sirv: HookFactory) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    token = sirv().get_token()
    assert redact(f"token is {token}") == "token is ***"


def test_undefined_connection_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_tokens.hooks import get_token_hook

    monkeypatch.delenv("AIRFLOW_CONN_SIRV_NOWHERE", raising=False)
    with pytest.raises(TokenConfigError, match="'sirv_nowhere': conn_id: is not defined"):
        SirvTokenHook(sirv_conn_id="sirv_nowhere").get_token()
    with pytest.raises(TokenConfigError, match="is not defined"):
        get_token_hook("sirv_nowhere")


def test_new_hooks_reuse_the_resolved_connection_until_told(
    sirv: HookFactory, token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = sirv().get_token()
    monkeypatch.delenv("AIRFLOW_CONN_SIRV_DEFAULT")  # the connection is gone
    assert SirvTokenHook().get_token() == first  # served without reading the connection again
    forget_connections()
    with pytest.raises(TokenConfigError, match="is not defined"):
        SirvTokenHook().get_token()


@pytest.mark.parametrize(
    ("conn", "options", "match"),
    [
        ({"extra": {"allow_http": "yes"}, "host": "http://sirv.example"}, {}, "allow_http: expected bool"),
        ({"extra": {"max_attempts": "many"}}, {"retry": None}, "max_attempts: 'many' is not a number"),
        ({"extra": {"max_attempts": 0}}, {"retry": None}, "max_attempts: 0 is outside 1..100"),
        ({"extra": {"read_timeout": -1}}, {}, "read_timeout: -1 is outside"),
        ({"extra": {"connect_timeout": [1]}}, {}, "connect_timeout: expected float, got list"),
        ({"extra": {"cache": 5}}, {}, "cache: expected str, got int"),
        ({"extra": {"refresh_margin": True}}, {}, "refresh_margin: expected float, got bool"),
        ({"extra": {"ca_bundle": 7}}, {}, "ca_bundle: expected str"),
        ({}, {"refresh_margin": -5}, "refresh_margin: must not be negative"),
        ({}, {"timeout": -1}, "timeout: must be positive"),
        ({}, {"timeout": (5, 0)}, "timeout: must be positive"),
        ({"password": "secret-with-trailing-space "}, {}, "password: Client Secret has leading or trailing"),
    ],
)
def test_wrong_types_and_ranges_are_config_errors_before_any_request(
    sirv: HookFactory,
    token_emulator: EmulatorServer,
    conn: dict[str, Any],
    options: dict[str, Any],
    match: str,
) -> None:
    with pytest.raises(TokenConfigError, match=match) as info:
        sirv(conn, **options).get_token()
    assert "secret-with-trailing-space" not in str(info.value)
    assert token_emulator.client.token_requests("sirv") == 0


def test_a_uri_with_a_digit_scheme_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_tokens.hooks.learning360 import Learning360TokenHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_LEARNING360_DEFAULT", "360learning://id:secret-in-uri@app.360learning.com"
    )
    with pytest.raises(TokenConfigError, match=r"scheme starts with a digit \(360learning://\)") as info:
        Learning360TokenHook().get_token()
    assert "write it as learning360://..., the type's name since 0.2" in str(info.value)
    assert "secret-in-uri" not in str(info.value)


def test_a_token_fetched_directly_is_masked_too(sirv: HookFactory) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    token = sirv().fetch_access_token().token
    assert redact(f"token is {token}") == "token is ***"
