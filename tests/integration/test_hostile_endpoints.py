"""A hostile or broken token endpoint cannot exhaust a worker, stall the caller, or make us print a secret.

Every case runs on both paths (``get_access_token`` and ``aget_access_token``) against the tests' own
hostile server (``tests/hostile.py``), and ends in a typed error, bounded in time and memory, with no
form of the secret in the error's message, its repr, the vendor's message or any log line.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from airflow_tokens.exceptions import TokenConfigError, TokenRequestError, TokenResponseError
from airflow_tokens.hooks import get_token_hook
from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.memory import clear_memory_cache, forget_connections
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.vendors import VENDORS
from tests.hostile import HostileServer, peak_rss_growth

ID = "client-id"
SECRET = 's3cr3t pa$$:wörd/+=&"é'
FAST = RetryPolicy(max_attempts=2, max_seconds=3, initial_wait=0.05, max_wait=0.1)
#: Generous bounds: the machine is shared; the point is "bounded", not "fast".
MAX_MIB = 64
MAX_SECONDS = 10.0


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


#: Every form in which a server could echo the secret, written out here (not taken from the package).
SECRET_FORMS = {
    "raw": SECRET,
    "prefix": SECRET[:6],
    "percent": quote(SECRET, safe=""),
    "percent-path": quote(SECRET),
    "form": quote_plus(SECRET),
    "json": json.dumps(SECRET)[1:-1],
    "json-unicode": json.dumps(SECRET, ensure_ascii=False)[1:-1],
    "basic": _b64(f"{ID}:{SECRET}"),
    "basic-encoded": _b64(f"{quote(ID, safe='')}:{quote(SECRET, safe='')}"),
}


def assert_no_secret(*texts: str | None) -> None:
    for text in texts:
        for name, form in SECRET_FORMS.items():
            assert form not in (text or ""), f"the secret ({name}) in {text!r}"


def sync_call(hook: TokenHook) -> Any:
    return hook.get_access_token()


def async_call(hook: TokenHook) -> Any:
    return asyncio.run(hook.aget_access_token())


PATHS = pytest.mark.parametrize("call", [sync_call, async_call], ids=["sync", "async"])


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with HostileServer(drip_every=0.5) as hostile:
        yield hostile


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., TokenHook]:
    def connect(
        conn_type: str,
        host: str,
        extra: dict[str, Any] | None = None,
        login: str = ID,
        password: str = SECRET,
        retry: RetryPolicy = FAST,
    ) -> TokenHook:
        conn = {"conn_type": conn_type, "host": host, "login": login, "password": password}
        monkeypatch.setenv("AIRFLOW_CONN_HOSTILE", json.dumps({**conn, "extra": json.dumps(extra or {})}))
        forget_connections()
        clear_memory_cache()
        return get_token_hook("hostile", cache="none", retry=retry)

    return connect


def timed(call: Callable[[], Any]) -> tuple[Any, float, float]:
    """Return the outcome of ``call``, its seconds and the RSS growth (MiB) while it ran."""
    started = time.monotonic()
    outcome, growth = peak_rss_growth(call)
    return outcome, time.monotonic() - started, growth


@PATHS
@pytest.mark.parametrize("route", ["bomb", "endless"])
def test_a_body_past_the_size_limit_is_refused_while_it_streams(
    server: HostileServer, connect: Callable[..., TokenHook], call: Callable[[TokenHook], Any], route: str
) -> None:
    hook = connect("token_endpoint", f"{server.url}/{route}")
    outcome, seconds, growth = timed(lambda: call(hook))
    print(f"{route} {call.__name__}: {seconds:.2f} s, RSS +{growth:.1f} MiB")
    assert isinstance(outcome, TokenResponseError), outcome
    assert "larger than 1048576 bytes" in str(outcome)
    assert seconds < MAX_SECONDS
    assert growth < MAX_MIB


@PATHS
def test_the_size_limit_is_an_option(
    server: HostileServer, connect: Callable[..., TokenHook], call: Callable[[TokenHook], Any]
) -> None:
    server.answer(200, {"access_token": "a-token", "expires_in": 3600, "padding": "x" * 2000})
    hook = connect("token_endpoint", f"{server.url}/token", {"max_response_bytes": 1024})
    with pytest.raises(TokenResponseError, match="larger than 1024 bytes"):
        call(hook)
    hook = connect("token_endpoint", f"{server.url}/token", {"max_response_bytes": 4096})
    assert call(hook).token == "a-token"


@PATHS
@pytest.mark.parametrize("route", ["drip", "drip/headers"])
def test_a_dripping_answer_ends_at_the_deadline_as_a_typed_timeout(
    server: HostileServer, connect: Callable[..., TokenHook], call: Callable[[TokenHook], Any], route: str
) -> None:
    # 1 s per attempt in all, 2 attempts within 2 s: the whole fetch ends within 2 s plus one attempt.
    retry = RetryPolicy(max_attempts=2, max_seconds=2, initial_wait=0.05, max_wait=0.1)
    hook = connect("token_endpoint", f"{server.url}/{route}", {"read_timeout": 1}, retry=retry)
    outcome, seconds, _ = timed(lambda: call(hook))
    print(f"{route} {call.__name__}: {seconds:.2f} s")
    assert isinstance(outcome, TokenRequestError), outcome
    assert outcome.transport_error == "ReadTimeout"
    assert outcome.attempts == 2
    assert seconds < 2 + 1 + 1.5  # max_retry_seconds + one attempt + slack for a loaded machine


ECHOES = {
    "oauth2-basic": ("oauth2_client_credentials", "", {}),
    "oauth2-post": ("oauth2_client_credentials", "", {"client_auth_method": "client_secret_post"}),
    "oauth2-json": ("oauth2_client_credentials", "", {"client_auth_method": "client_secret_json"}),
    "podero": ("podero", "", {}),
    "token_endpoint-json": ("token_endpoint", "", {}),
    "token_endpoint-form": ("token_endpoint", "", {"credentials_in": "form"}),
    "token_endpoint-basic": ("token_endpoint", "", {"credentials_in": "basic"}),
    "secret-near-290": ("token_endpoint", "/280", {}),
}


@PATHS
@pytest.mark.parametrize("status", [401, 503])
@pytest.mark.parametrize("case", list(ECHOES))
def test_an_echoed_request_shows_no_form_of_the_secret(
    server: HostileServer,
    connect: Callable[..., TokenHook],
    call: Callable[[TokenHook], Any],
    caplog: pytest.LogCaptureFixture,
    case: str,
    status: int,
) -> None:
    conn_type, pad, extra = ECHOES[case]
    hook = connect(conn_type, f"{server.url}/echo/{status}{pad}", extra)
    before = len(server.requests)
    with caplog.at_level(logging.DEBUG):
        outcome, _, _ = timed(lambda: call(hook))
    assert isinstance(outcome, TokenRequestError), outcome
    assert outcome.status == status
    echoed = server.requests[before]
    seen = json.dumps(echoed["headers"]) + echoed["body"].decode()
    assert any(form in seen for form in SECRET_FORMS.values())  # the server did get (and echo) it
    assert outcome.vendor_message
    assert_no_secret(str(outcome), repr(outcome), outcome.vendor_message, caplog.text)
    if status == 503:
        assert "retrying" in caplog.text  # the retry WARNING line was written, and checked


@pytest.mark.parametrize("conn_type", list(VENDORS))
def test_a_token_url_with_the_secret_is_refused_for_every_type(
    server: HostileServer, connect: Callable[..., TokenHook], conn_type: str
) -> None:
    before = len(server.requests)
    for host in (f"{server.url}/token?key={quote(SECRET, safe='')}", f"{server.url}/token?user={ID}"):
        hook = connect(conn_type, host)
        with pytest.raises(TokenConfigError) as info:
            sync_call(hook)
        assert info.value.field == "host"
        assert_no_secret(str(info.value))
    assert len(server.requests) == before


def _jwt(claims: dict[str, Any]) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{part}.c2ln"


UNUSABLE_ANSWERS = {
    "token_type-with-a-line-break": (
        {"access_token": "abc.def", "token_type": "Bearer\r\nX-Injected: 1", "expires_in": 3600},
        "not an HTTP auth scheme",
    ),
    "token-with-a-space": ({"access_token": "abc def", "expires_in": 3600}, "whitespace"),
    "token-not-ascii": ({"access_token": "abc\u00e9", "expires_in": 3600}, "non-ASCII"),
    "expired-jwt": ({"access_token": _jwt({"exp": math.floor(time.time()) - 3600})}, "exp has passed"),
    "token-of-20-kib": ({"access_token": "a" * 20480, "expires_in": 3600}, "20480 characters long"),
    "token-of-8-mib": ({"access_token": "a" * 8 * 2**20, "expires_in": 3600}, "larger than 1048576"),
}


@PATHS
@pytest.mark.parametrize("case", list(UNUSABLE_ANSWERS))
def test_an_unusable_answer_is_a_typed_error(
    server: HostileServer, connect: Callable[..., TokenHook], call: Callable[[TokenHook], Any], case: str
) -> None:
    payload, problem = UNUSABLE_ANSWERS[case]
    server.answer(200, payload)
    hook = connect("token_endpoint", f"{server.url}/token")
    outcome, seconds, growth = timed(lambda: call(hook))
    assert isinstance(outcome, TokenResponseError), outcome
    assert problem in str(outcome)
    assert seconds < MAX_SECONDS
    assert growth < MAX_MIB


@PATHS
def test_json_nested_too_deeply_is_typed_and_a_503_of_it_is_retried(
    server: HostileServer, connect: Callable[..., TokenHook], call: Callable[[TokenHook], Any]
) -> None:
    with pytest.raises(TokenResponseError, match="not JSON"):
        call(connect("token_endpoint", f"{server.url}/deep/200"))
    with pytest.raises(TokenRequestError) as info:
        call(connect("token_endpoint", f"{server.url}/deep/503"))
    assert info.value.status == 503
    assert info.value.attempts == 2  # retried, as any 503


@PATHS
def test_latin1_credentials_in_headers_are_sent_on_both_paths(
    server: HostileServer, connect: Callable[..., TokenHook], call: Callable[[TokenHook], Any]
) -> None:
    server.answer(200, {"access_token": "latin-1-token", "expires_in": 3600})
    extra = {"credentials_in": "headers", "login_field": "X-Key", "password_field": "X-Secret"}
    hook = connect("token_endpoint", f"{server.url}/token", extra, login="clé-ö", password="sécret-ü")
    assert call(hook).token == "latin-1-token"
    headers = server.requests[-1]["headers"]  # the server reads header bytes as Latin-1
    assert (headers["X-Key"], headers["X-Secret"]) == ("clé-ö", "sécret-ü")


@PATHS
def test_a_token_url_too_long_for_a_server_is_a_config_error(
    server: HostileServer, connect: Callable[..., TokenHook], call: Callable[[TokenHook], Any]
) -> None:
    with pytest.raises(TokenConfigError, match="70018 characters long; a URL has 8000 at most"):
        call(connect("token_endpoint", f"{server.url}/token?{'a' * 70000}"[:70018]))


@PATHS
def test_loopback_token_requests_never_go_through_a_proxy(
    server: HostileServer,
    connect: Callable[..., TokenHook],
    call: Callable[[TokenHook], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with HostileServer() as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        server.answer(200, {"access_token": "direct-token", "expires_in": 3600})
        before = len(server.requests)
        assert call(connect("token_endpoint", f"{server.url}/token")).token == "direct-token"
        assert len(server.requests) == before + 1
        assert proxy.requests == []
