"""The generic OAuth2 hook against Authlib's authorization server: a real OAuth2 server library, real HTTP.

The server is tests/idp.py's (the one the enterprise methods are tested against), with its clients
registered for client_secret_basic and client_secret_post.
"""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest
import requests
import tenacity

from airflow_tokens.endpoint import encode_basic_credential
from airflow_tokens.exceptions import TokenRequestError
from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.retry import RetryPolicy
from tests.idp import TOKEN_LIFETIME, AuthlibIdP

# The fixture idp: pytest finds it in this module's namespace (the alias marks it re-exported for ruff).
from tests.idp import idp_server as idp_server
from tests.vendors import OAUTH2

METHODS = ["client_secret_basic", "client_secret_post"]
#: The scopes the clients here may be given (the server knows more: "admin" and "audit").
CLIENT_SCOPE = "read write"
#: A client prefix with every character that trips naive credential handling.
AWKWARD_PREFIX = "client:ö/+&=%"
# Every character that trips naive credential handling, one at a time, then all together.
CHARACTERS = [" ", "+", "%", ":", "/", "&", "=", "ö", "秘密"]
SECRETS = [
    *(pytest.param(f"s3cret{char}x", id=f"U+{ord(char[0]):04X}") for char in CHARACTERS),
    pytest.param("p:a@s%s w+o/r=d&x=ö 秘密 %20 %2B", id="all"),
]
FAST = RetryPolicy(max_attempts=3).retrying(wait=tenacity.wait_none())


def register(idp: AuthlibIdP, secret: str, method: str, prefix: str = AWKWARD_PREFIX) -> str:
    """Register a client with ``secret`` and ``method`` whose ID starts with ``prefix``; return the ID."""
    return idp.register(method, secret=secret, scope=CLIENT_SCOPE, prefix=prefix)


def hook_for(
    server: AuthlibIdP,
    monkeypatch: pytest.MonkeyPatch,
    client_id: str,
    secret: str,
    method: str,
    scope: str = "read write",
) -> TokenHook:
    """Point the default OAuth2 connection at the Authlib server and return its hook."""
    extra = {"client_auth_method": method, "scope": scope}
    OAUTH2.configure(
        monkeypatch, server.url, host=server.token_url, login=client_id, password=secret, extra=extra
    )
    return OAUTH2.hook(cache="memory", retry=FAST)


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("method", METHODS)
def test_awkward_secret_is_accepted(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, method: str, secret: str
) -> None:
    client_id = register(idp, secret, method)
    hook = hook_for(idp, monkeypatch, client_id, secret, method)
    token = hook.get_access_token()
    assert token.token_type == "Bearer"
    assert token.scope == ("read", "write")
    assert token.lifetime == TOKEN_LIFETIME
    assert hook.get_token() == token.token  # served from the cache
    assert idp.issued[client_id] == 1


@pytest.mark.parametrize("method", METHODS)
def test_awkward_client_id_is_accepted(idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    client_id = register(idp, "s3cret", method, prefix="a client: ö+%/&= 秘密 %20 ")
    assert hook_for(idp, monkeypatch, client_id, "s3cret", method).get_token()
    assert idp.issued[client_id] == 1


@pytest.mark.parametrize("method", METHODS)
def test_wrong_secret_is_the_servers_invalid_client(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    client_id = register(idp, "the right secret", method)
    wrong = "the wrong secret: ö+%/&="
    with pytest.raises(TokenRequestError) as info:
        hook_for(idp, monkeypatch, client_id, wrong, method).get_token()
    error = info.value
    assert error.status == 401
    assert error.vendor_message is not None
    assert error.vendor_message.split(" - ")[0] == "invalid_client"
    assert error.attempts == 1  # a rejected credential is not retried
    assert wrong not in str(error)
    assert encode_basic_credential(wrong) not in str(error)
    assert idp.issued[client_id] == 0


@pytest.mark.parametrize("method", METHODS)
def test_disallowed_scope_is_the_servers_invalid_scope(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    secret = "s3cret ö+%"
    client_id = register(idp, secret, method)
    with pytest.raises(TokenRequestError) as info:
        hook_for(idp, monkeypatch, client_id, secret, method, scope="read delete").get_token()
    error = info.value
    assert error.status == 400
    assert error.vendor_message is not None
    assert error.vendor_message.split(" - ")[0] == "invalid_scope"
    assert error.attempts == 1
    assert secret not in str(error)
    assert idp.issued[client_id] == 0


def basic_status(server: AuthlibIdP, auth: tuple[str, str]) -> tuple[int, str | None]:
    """Send a client-credentials request with ``auth`` as UTF-8 Basic; return the status and ``error``."""
    response = requests.post(
        server.token_url,
        data={"grant_type": "client_credentials"},
        auth=(auth[0].encode(), auth[1].encode()),
        timeout=10,
    )
    return response.status_code, response.json().get("error")


def test_form_encoded_basic_credentials_fail_on_authlib_when_the_secret_has_a_space(
    idp: AuthlibIdP,
) -> None:
    spaced, unspaced = "p:a@s%s w+o/r=d&ö秘密", "p:a@s%s+w/r=d&ö秘密"
    spaced_id = register(idp, spaced, "client_secret_basic")
    unspaced_id = register(idp, unspaced, "client_secret_basic")
    # Form-urlencoding (the previous encoding) works only while the secret has no space: Authlib
    # decodes with plain percent-decoding and reads the form's "+" as a "+".
    form_encoded = (quote_plus(spaced_id), quote_plus(spaced))
    assert basic_status(idp, (quote_plus(unspaced_id), quote_plus(unspaced))) == (200, None)
    assert basic_status(idp, form_encoded) == (401, "invalid_client")
    percent_encoded = (encode_basic_credential(spaced_id), encode_basic_credential(spaced))
    assert basic_status(idp, percent_encoded) == (200, None)
    assert (idp.issued[unspaced_id], idp.issued[spaced_id]) == (1, 1)
