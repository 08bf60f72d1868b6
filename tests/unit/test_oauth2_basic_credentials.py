"""OAuth2 Basic client credentials read back exactly by both kinds of server-side decoder."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote_plus, unquote, unquote_plus

import pytest
import requests
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from hypothesis import given
from hypothesis import strategies as st

from airflow_tokens.endpoint import encode_basic_credential
from airflow_tokens.hooks.oauth2 import OAuth2ClientCredentialsHook
from airflow_tokens.memory import forget_connections

# Basic's separator, URL and form syntax, a space, a Latin-1 letter and characters outside Latin-1; and
# text that already looks percent- or form-encoded, which must not be decoded a second time.
AWKWARD = [" ", "+", "%", ":", "/", "&", "=", "ö", "秘密", "%20", "%2B", "a+b c"]
DECODERS = [pytest.param(unquote, id="unquote"), pytest.param(unquote_plus, id="unquote_plus")]


def authorization_header(auth: tuple[str, str]) -> str:
    """Return the Authorization header requests builds from Basic credentials sent as UTF-8 (as fetched)."""
    utf8 = (auth[0].encode(), auth[1].encode())
    prepared = requests.Request("POST", "https://auth.example.com/token", auth=utf8).prepare()
    return str(prepared.headers["Authorization"])


def hook_basic_auth(monkeypatch: pytest.MonkeyPatch, client_id: str, secret: str) -> tuple[str, str]:
    """Return the Basic credentials the hook builds for a connection with ``client_id`` and ``secret``."""
    conn = {
        "conn_type": "oauth2_client_credentials",
        "host": "https://auth.example.com/token",
        "login": client_id,
        "password": secret,
    }
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_CLIENT_CREDENTIALS_DEFAULT", json.dumps(conn))
    forget_connections()
    auth = OAuth2ClientCredentialsHook(cache="none").token_request.auth
    assert auth is not None
    return auth


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("text", AWKWARD)
def test_each_awkward_character_reads_back_exactly(decoder: Callable[[str], str], text: str) -> None:
    value = f"x{text}y"
    encoded = encode_basic_credential(value)
    assert decoder(encoded) == value
    assert encoded.isascii()
    assert not {" ", "+", ":"} & set(encoded)  # no form-only meaning, no Basic separator


@pytest.mark.parametrize("decoder", DECODERS)
def test_the_hook_sends_credentials_both_decoders_read_back(
    monkeypatch: pytest.MonkeyPatch, decoder: Callable[[str], str]
) -> None:
    client_id, secret = "my client:" + "".join(AWKWARD), "p:a@s%s w+o/r=d&x=ö 秘密"
    auth = hook_basic_auth(monkeypatch, client_id, secret)
    assert (decoder(auth[0]), decoder(auth[1])) == (client_id, secret)


def test_authlib_reads_back_the_hooks_basic_header(monkeypatch: pytest.MonkeyPatch) -> None:
    client_id, secret = "my client:" + "".join(AWKWARD), "p:a@s%s w+o/r=d&x=ö 秘密"
    header = authorization_header(hook_basic_auth(monkeypatch, client_id, secret))
    assert extract_basic_authorization({"Authorization": header}) == (client_id, secret)


def test_form_encoding_turns_a_space_into_a_plus_for_authlib() -> None:
    # The defect this encoding mends: Authlib decodes with ``unquote``, which keeps a form's ``+``.
    header = authorization_header((quote_plus("client"), quote_plus("two words")))
    assert extract_basic_authorization({"Authorization": header}) == ("client", "two+words")


@given(st.text())
def test_any_text_reads_back_with_unquote_and_unquote_plus(value: str) -> None:
    encoded = encode_basic_credential(value)
    assert unquote(encoded) == value
    assert unquote_plus(encoded) == value


@given(st.text(min_size=1), st.text(min_size=1))
def test_any_credentials_read_back_through_authlibs_basic_decoder(client_id: str, secret: str) -> None:
    auth = (encode_basic_credential(client_id), encode_basic_credential(secret))
    assert extract_basic_authorization({"Authorization": authorization_header(auth)}) == (client_id, secret)
