"""The emulator speaks the enterprise methods too: JWT client assertions and a scope per call, offline."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_tokens.exceptions import TokenRequestError
from airflow_tokens.hooks.oauth2 import OAuth2ClientCredentialsHook
from airflow_tokens.http import TokenHttpHook
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.testing import (
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    EMULATOR_KEY_ID,
    EMULATOR_PRIVATE_KEY,
    EmulatorServer,
)
from tests.vendors import OAUTH2

FAIL_FAST = RetryPolicy(max_attempts=1)
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _hook(
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    password: str | None,
    login: str = EMULATOR_CLIENT_ID,
    **extra: Any,
) -> OAuth2ClientCredentialsHook:
    """Point the default OAuth2 connection at the emulator with ``extra``; return a memory-cached hook."""
    OAUTH2.configure(monkeypatch, emulator.url, login=login, password=password, extra=extra)
    return OAuth2ClientCredentialsHook(cache="memory", retry=FAIL_FAST)


def _form(emulator: EmulatorServer) -> dict[str, str]:
    """Return the form fields of the last token request the emulator's OAuth2 endpoint got."""
    body: str = emulator.client.requests("oauth2")[-1]["body"]
    from urllib.parse import parse_qsl

    return dict(parse_qsl(body))


def test_private_key_jwt_with_the_emulators_own_key(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = _hook(
        token_emulator,
        monkeypatch,
        None,
        client_auth_method="private_key_jwt",
        private_key=EMULATOR_PRIVATE_KEY,
        key_id=EMULATOR_KEY_ID,
    )
    token = hook.get_access_token()
    assert token.token in token_emulator.client.issued_tokens()
    form = _form(token_emulator)
    assert form["client_assertion_type"] == JWT_BEARER
    assert form["client_id"] == EMULATOR_CLIENT_ID
    assert "client_secret" not in form
    header = jwt.get_unverified_header(form["client_assertion"])
    claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
    assert (header["alg"], header["kid"]) == ("ES256", EMULATOR_KEY_ID)
    assert claims["iss"] == claims["sub"] == EMULATOR_CLIENT_ID
    assert claims["aud"] == hook.token_request.url
    assert claims["exp"] - claims["iat"] == 60


def test_a_key_pasted_on_one_line_works_too(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A form's password field drops line breaks: the key arrives as one line.
    one_line = EMULATOR_PRIVATE_KEY.replace("\n", "")
    hook = _hook(
        token_emulator, monkeypatch, None, client_auth_method="private_key_jwt", private_key=one_line
    )
    assert hook.get_token() in token_emulator.client.issued_tokens()


def test_client_secret_jwt_never_sends_the_secret(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = _hook(token_emulator, monkeypatch, EMULATOR_CLIENT_SECRET, client_auth_method="client_secret_jwt")
    assert hook.get_token() in token_emulator.client.issued_tokens()
    logged = json.dumps(token_emulator.client.requests("oauth2")[-1])
    assert EMULATOR_CLIENT_SECRET not in logged
    assert jwt.get_unverified_header(_form(token_emulator)["client_assertion"])["alg"] == "HS256"


def test_a_registered_key_is_accepted_and_another_refused(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def pem(private: rsa.RSAPrivateKey) -> str:
        return private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token_emulator.client.add_jwt_key("oauth2", "svc-etl", public.decode(), kid="etl-1")
    extra = {"client_auth_method": "private_key_jwt", "key_id": "etl-1"}
    hook = _hook(token_emulator, monkeypatch, None, login="svc-etl", private_key=pem(key), **extra)
    assert hook.get_token() in token_emulator.client.issued_tokens()
    hook = _hook(token_emulator, monkeypatch, None, login="svc-etl", private_key=pem(other), **extra)
    with pytest.raises(TokenRequestError) as refused:
        hook.get_token()
    assert refused.value.status == 401
    assert "invalid_client" in str(refused.value)
    assert "no key of the client verifies the assertion" in str(refused.value)


def test_two_scopes_are_two_tokens_each_fetched_once_and_granted_as_asked(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = _hook(token_emulator, monkeypatch, EMULATOR_CLIENT_SECRET, scope="default.read")
    reads = {hook.get_access_token(scope="orders.read").token for _ in range(3)}
    writes = {hook.get_access_token(scope=["orders.read", "orders.write"]).token for _ in range(3)}
    default = hook.get_access_token()
    assert len(reads) == len(writes) == 1
    assert len({*reads, *writes, default.token}) == 3
    assert token_emulator.client.token_requests("oauth2") == 3
    scopes = [dict(_parse(r["body"])).get("scope") for r in token_emulator.client.requests("oauth2")]
    assert scopes == ["orders.read", "orders.read orders.write", "default.read"]
    assert hook.get_access_token(scope="orders.read").scope == ("orders.read",)
    assert default.scope == ("default.read",)


def _parse(body: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(body)


def test_a_scope_per_call_on_a_type_without_scopes_is_a_config_error(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_tokens.exceptions import TokenConfigError
    from tests.vendors import SIRV

    SIRV.configure(monkeypatch, token_emulator.url)
    with pytest.raises(TokenConfigError, match="scope: sirv connections take no scope"):
        SIRV.hook(cache="memory").get_token(scope="read")
    assert token_emulator.client.token_requests("sirv") == 0


def test_the_http_hook_asks_for_its_own_scope(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    OAUTH2.configure(monkeypatch, token_emulator.url, extra={"api_base_url": token_emulator.url})
    hook = TokenHttpHook(method="GET", http_conn_id=OAUTH2.conn_id, scope="reports.read")
    assert hook.run("/protected").json() == {"ok": True, "vendor": "oauth2"}
    assert dict(_parse(token_emulator.client.requests("oauth2")[-1]["body"]))["scope"] == "reports.read"


@pytest.mark.airflow_db
def test_status_shows_what_each_entry_was_asked_for(
    airflow_db: Any, token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.session import create_session

    from airflow_tokens.inventory import cached_tokens
    from airflow_tokens.sealing import CacheEntry
    from airflow_tokens.stores import VariableStore
    from tests.vendors import delete_variable

    hook = _hook(token_emulator, monkeypatch, EMULATOR_CLIENT_SECRET)
    profile = hook._profile_for((("scope", "orders.read"),))
    token = hook.get_access_token(scope="orders.read")
    key = VariableStore.variable_key(profile.cache_key)
    from airflow.models.variable import Variable

    Variable.set(key, json.dumps(profile.seal.seal(CacheEntry(token, profile.fingerprint, "host-a"))))
    try:
        with create_session() as session:
            [entry] = [item for item in cached_tokens(session) if item.conn_id == OAUTH2.conn_id]
        assert entry.asked == {"scope": "orders.read"}
        from airflow_tokens.cli import status_text

        [row] = [line for line in status_text([entry]).splitlines() if line.startswith(OAUTH2.conn_id)]
        assert row.startswith(f"{OAUTH2.conn_id} (scope=orders.read)")
        assert entry.problem is None
        assert entry.variables == [key]
        assert profile.cache_key.startswith(f"oauth2_client_credentials.{OAUTH2.conn_id}@")
        # The entry opens with the same connection, asked the same, and with nothing else.
        assert profile.seal.open(Variable.get(key)).token.token == token.token
        assert hook._profile_for(()).seal.cache_key != profile.cache_key
    finally:
        delete_variable(key)
