"""Enterprise OAuth2 against real servers: RFC 7523 assertions, RFC 8705 mTLS, per-call scopes, proxies.

The identity providers are in tests/idp.py (their own checks: tests/unit/test_idp_servers.py): Authlib's
authorization server verifying client assertions with Authlib's RFC 7523 code, an HTTPS token endpoint
that requires a client certificate from a test CA, and a forward proxy. Every hook fails fast (one
attempt) and caches in memory.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

from airflow_tokens.exceptions import TokenConfigError, TokenRequestError
from airflow_tokens.hooks.oauth2 import OAuth2ClientCredentialsHook
from airflow_tokens.memory import clear_memory_cache, forget_connections
from airflow_tokens.retry import RetryPolicy
from tests.idp import (
    ASSERTION_TYPE,
    TOKEN_LIFETIME,
    UNRESOLVABLE_HOST,
    AuthlibIdP,
    CertFiles,
    ForwardProxy,
    KeyPair,
    MtlsIdP,
    SeenRequest,
    certificate_for,
    ec_key,
    jwks,
    key_params,
    leaked_material,
    rsa_key,
    thumbprint,
    unresolvable_url,
)

# The fixtures idp, mtls, proxy, rsa and decoy: pytest finds them in this module's namespace, and the
# redundant aliases tell ruff they are re-exported, not unused (F401).
from tests.idp import decoy_pair as decoy_pair
from tests.idp import forward_proxy as forward_proxy
from tests.idp import idp_server as idp_server
from tests.idp import mtls_server as mtls_server
from tests.idp import rsa_pair as rsa_pair

CONN_ID = "idp"
FAIL_FAST = RetryPolicy(max_attempts=1)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
PASSPHRASE = "correct horse battery staple"
#: The fields a key problem may be reported under (never ``client_auth_method``: the method is valid).
KEY_FIELDS = {"private_key", "private_key_file", "private_key_passphrase", "signing_algorithm", "key_id"}
CERT_FIELDS = {"client_cert", "client_key", "client_private_key"}


# Keys, shared by the module (the servers, rsa and decoy: tests/idp.py).


@pytest.fixture(scope="module")
def wrong_rsa(rsa: KeyPair) -> KeyPair:
    """Generate an RSA key no client is registered with, under the registered key's kid."""
    return rsa_key(rsa.kid)


@pytest.fixture(scope="module")
def p256() -> KeyPair:
    """Generate an EC P-256 key."""
    return ec_key("ec-2026")


@pytest.fixture
def rsa_client(idp: AuthlibIdP, rsa: KeyPair, decoy: KeyPair) -> str:
    """Register a private_key_jwt client whose JWK Set holds the decoy and the RSA key; return its ID."""
    return jwt_client(idp, decoy, rsa)


@pytest.fixture(autouse=True)
def _no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test without proxy environment variables (a test sets the ones it needs)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every log record, DEBUG included."""
    caplog.set_level(logging.DEBUG)
    return caplog


# Helpers.


def connect(
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    login: str,
    password: str | None = None,
    **extra: Any,
) -> OAuth2ClientCredentialsHook:
    """Set ``AIRFLOW_CONN_IDP`` (an oauth2_client_credentials connection) and return a fresh hook for it."""
    conn: dict[str, Any] = {"conn_type": "oauth2_client_credentials", "host": host, "login": login}
    if password is not None:
        conn["password"] = password
    conn["extra"] = {name: value for name, value in extra.items() if value is not None}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    forget_connections()
    clear_memory_cache()
    return OAuth2ClientCredentialsHook(oauth2_conn_id=CONN_ID, cache="memory", retry=FAIL_FAST)


def jwt_client(idp: AuthlibIdP, *pairs: KeyPair) -> str:
    """Register a private_key_jwt client whose JWK Set holds ``pairs``; return its ID."""
    return idp.register("private_key_jwt", keys=jwks(*pairs))


def jwt_hook(
    monkeypatch: pytest.MonkeyPatch,
    idp: AuthlibIdP,
    client_id: str,
    key: KeyPair | None = None,
    *,
    url: str | None = None,
    **extra: Any,
) -> OAuth2ClientCredentialsHook:
    """Return a private_key_jwt hook for ``client_id``: ``key``'s PEM and kid unless ``extra`` says else."""
    if key is not None:
        extra = {"private_key": key.private_pem(), "key_id": key.kid, **extra}
    return connect(
        monkeypatch, url or idp.token_url, client_id, client_auth_method="private_key_jwt", **extra
    )


def secret_hook(
    monkeypatch: pytest.MonkeyPatch,
    idp: AuthlibIdP,
    method: str,
    secret: str,
    *,
    url: str | None = None,
    **extra: Any,
) -> tuple[OAuth2ClientCredentialsHook, str]:
    """Register a ``method`` client with ``secret``; return a hook for it (at ``url`` if given) and its ID."""
    client_id = idp.register(method, secret=secret)
    hook = connect(monkeypatch, url or idp.token_url, client_id, secret, client_auth_method=method, **extra)
    return hook, client_id


def fetch(hook: OAuth2ClientCredentialsHook, driver: str) -> str:
    """Return a token from ``hook``'s sync or async path, as ``driver`` says."""
    return hook.get_token() if driver == "sync" else asyncio.run(hook.aget_token())


DRIVERS = pytest.mark.parametrize("driver", ["sync", "async"])


def use_proxy(monkeypatch: pytest.MonkeyPatch, proxy: ForwardProxy, *variables: str) -> None:
    """Forget what ``proxy`` has seen and point the environment ``variables`` (``HTTP_PROXY``...) at it."""
    proxy.clear()
    for name in variables:
        monkeypatch.setenv(name, proxy.url)


def check_assertion(
    seen: SeenRequest, client_id: str, audience: str, alg: str, kid: str | None = None
) -> dict[str, Any]:
    """Assert ``seen`` authenticated with an RFC 7523 assertion in its form body; return the claims."""
    assert seen.status == 200
    assert seen.form["grant_type"] == "client_credentials"
    assert seen.form["client_assertion_type"] == ASSERTION_TYPE
    assert seen.form.get("client_id", client_id) == client_id  # MAY be present, then names the client
    assert "client_secret" not in seen.form
    assert "authorization" not in seen.headers
    assert seen.headers["content-type"].startswith("application/x-www-form-urlencoded")
    header, claims = seen.assertion_header, seen.assertion_claims
    assert header["alg"] == alg
    assert header.get("kid") == kid
    assert claims["iss"] == claims["sub"] == client_id
    assert claims["aud"] in (audience, [audience])
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16
    now = time.time()
    assert abs(claims["iat"] - now) < 30
    assert 30 <= claims["exp"] - claims["iat"] <= 120  # about 60 s
    return claims


def assert_no_key_material(pem: str, *texts: str) -> None:
    """Assert no 20-character piece of the PEM's body appears in any of ``texts``."""
    for text in texts:
        assert leaked_material(pem, text) is None, "key material leaked"


def garbage_pem() -> str:
    """Return a PEM-armoured block of random bytes: it looks like a key and does not load."""
    body = base64.b64encode(os.urandom(1190)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN PRIVATE KEY-----", *lines, "-----END PRIVATE KEY-----", ""])


def sent(idp: AuthlibIdP | MtlsIdP) -> int:
    """Return how many requests ``idp`` has received so far."""
    with idp.lock:
        return len(idp.requests)


def config_error(
    server: AuthlibIdP | MtlsIdP, call: Callable[[], object], match: str | None = None
) -> TokenConfigError:
    """Return the TokenConfigError ``call`` raises, asserting ``server`` received no request meanwhile."""
    before = sent(server)
    with pytest.raises(TokenConfigError, match=match) as info:
        call()
    assert sent(server) == before
    return info.value


def invalid_client(hook: OAuth2ClientCredentialsHook, status: int) -> TokenRequestError:
    """Return the TokenRequestError ``hook`` raises: the server's ``status`` and ``invalid_client``."""
    with pytest.raises(TokenRequestError) as info:
        hook.get_token()
    error = info.value
    assert error.status == status
    assert error.vendor_message is not None
    assert error.vendor_message.split(" - ")[0] == "invalid_client"
    return error


# private_key_jwt and client_secret_jwt (RFC 7523), verified by Authlib.


def test_private_key_jwt_rsa_with_kid(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair, rsa_client: str
) -> None:
    hook = jwt_hook(monkeypatch, idp, rsa_client, rsa, scope="read write")
    token = hook.get_access_token()
    assert token.token_type == "Bearer"
    assert token.scope == ("read", "write")
    assert token.lifetime == TOKEN_LIFETIME
    assert hook.get_token() == token.token  # from the cache
    assert idp.issued[rsa_client] == 1
    [seen] = idp.requests_of(rsa_client)
    check_assertion(seen, rsa_client, idp.token_url, "RS256", kid=rsa.kid)
    assert seen.form["scope"] == "read write"


def test_private_key_jwt_rsa_async(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair, rsa_client: str
) -> None:
    hook = jwt_hook(monkeypatch, idp, rsa_client, rsa)

    async def twice() -> tuple[str, str]:
        return await hook.aget_token(), await hook.aget_token()

    first, second = asyncio.run(twice())
    assert first == second
    assert idp.issued[rsa_client] == 1
    [seen] = idp.requests_of(rsa_client)
    check_assertion(seen, rsa_client, idp.token_url, "RS256", kid=rsa.kid)


def test_private_key_jwt_ec_p256_defaults_to_es256(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, p256: KeyPair
) -> None:
    client_id = jwt_client(idp, p256)
    token = jwt_hook(monkeypatch, idp, client_id, p256, scope="admin").get_access_token()
    assert token.scope == ("admin",)
    [seen] = idp.requests_of(client_id)
    check_assertion(seen, client_id, idp.token_url, "ES256", kid=p256.kid)


@pytest.mark.parametrize(("make", "alg"), key_params("PS256", "ES384", "EdDSA"))
def test_private_key_jwt_other_algorithms(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, make: Callable[[], KeyPair], alg: str
) -> None:
    pair = make()
    client_id = jwt_client(idp, pair)
    assert jwt_hook(monkeypatch, idp, client_id, pair, signing_algorithm=alg).get_token()
    [seen] = idp.requests_of(client_id)
    check_assertion(seen, client_id, idp.token_url, alg, kid=pair.kid)


def test_private_key_jwt_without_key_id_sends_no_kid(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair
) -> None:
    client_id = jwt_client(idp, rsa)  # one key: no kid needed
    assert jwt_hook(monkeypatch, idp, client_id, rsa, key_id=None).get_token()
    [seen] = idp.requests_of(client_id)
    check_assertion(seen, client_id, idp.token_url, "RS256", kid=None)


@pytest.mark.parametrize("form", ["pem", "path"])
def test_private_key_jwt_names_its_certificate_by_thumbprint_as_entra_id_asks(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair, tmp_path: Path, form: str
) -> None:
    # Entra ID's certificate credential: no kid, the certificate's thumbprint in x5t#S256 (x5t, SHA-1,
    # for older tenants), PS256.
    cert = certificate_for(tmp_path, rsa, "reports-app")
    sha256 = thumbprint(cert, hashes.SHA256())
    client_id = idp.register("private_key_jwt", keys=jwks(rsa), thumbprint=sha256)
    hook = jwt_hook(
        monkeypatch,
        idp,
        client_id,
        rsa,
        key_id=None,
        signing_algorithm="PS256",
        assertion_certificate=cert.cert_pem if form == "pem" else str(cert.cert_path),
    )
    assert hook.get_token()
    [seen] = idp.requests_of(client_id)
    check_assertion(seen, client_id, idp.token_url, "PS256", kid=None)
    assert seen.assertion_header["x5t#S256"] == sha256
    assert seen.assertion_header["x5t"] == thumbprint(cert, hashes.SHA1())


def test_an_assertion_without_the_registered_thumbprint_is_the_servers_invalid_client(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair, tmp_path: Path
) -> None:
    cert = certificate_for(tmp_path, rsa, "reports-app")
    client_id = idp.register("private_key_jwt", keys=jwks(rsa), thumbprint=thumbprint(cert, hashes.SHA256()))
    invalid_client(jwt_hook(monkeypatch, idp, client_id, rsa, key_id=None), 400)
    assert idp.issued[client_id] == 0


def test_a_certificate_of_another_key_is_refused_before_any_request(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair, p256: KeyPair, tmp_path: Path
) -> None:
    other = certificate_for(tmp_path, p256, "another-app")
    hook = jwt_hook(monkeypatch, idp, jwt_client(idp, rsa), rsa, assertion_certificate=other.cert_pem)
    error = config_error(idp, hook.get_token, match="assertion_certificate")
    assert "is not the certificate of private_key" in str(error)
    hook = jwt_hook(monkeypatch, idp, jwt_client(idp, rsa), rsa, assertion_certificate="BEGIN nothing")
    error = config_error(idp, hook.get_token, match="assertion_certificate")
    assert "neither PEM text nor a file" in str(error)


def test_a_key_left_beside_a_method_that_signs_nothing_is_warned_about_and_refused_by_checks(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    # Switched from private_key_jwt back to a secret, the key and its kid still set: not silently ignored.
    secret = secrets.token_urlsafe(32)
    extra = {"private_key": rsa.private_pem(), "key_id": rsa.kid}
    hook, client_id = secret_hook(monkeypatch, idp, "client_secret_basic", secret, **extra)
    with caplog.at_level(logging.WARNING, logger="airflow_tokens"):
        assert hook.get_token()
    warned = [r.getMessage() for r in caplog.records if "does not use it" in r.getMessage()]
    assert warned == [
        f"Connection {CONN_ID!r}: {name!r} is set, but client_auth_method client_secret_basic "
        "does not use it, and is ignored"
        for name in ("key_id", "private_key")
    ]
    assert idp.requests_of(client_id)[0].basic_credentials == (client_id, secret)
    assert_no_key_material(rsa.private_pem(), caplog.text)
    ok, message = hook.test_connection()  # the Test button and airflow-tokens check refuse it
    assert not ok
    assert message == (
        f"Connection {CONN_ID!r}: key_id: is set, but client_auth_method client_secret_basic "
        "does not use it; clear it"
    )


@pytest.mark.parametrize("alg", [None, "HS256", "HS384", "HS512"])
def test_client_secret_jwt(idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, alg: str | None) -> None:
    secret = secrets.token_urlsafe(48)
    hook, client_id = secret_hook(
        monkeypatch, idp, "client_secret_jwt", secret, signing_algorithm=alg, scope="read"
    )
    token = hook.get_access_token()
    assert token.scope == ("read",)
    assert hook.get_token() == token.token
    [seen] = idp.requests_of(client_id)
    check_assertion(seen, client_id, idp.token_url, alg or "HS256")
    # The secret is the HMAC key: it never travels.
    assert all(secret not in value for value in [*seen.form.values(), *seen.headers.values()])


def test_private_key_file_and_passphrase(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair, rsa_client: str, tmp_path: Path
) -> None:
    plain, encrypted = tmp_path / "client.pem", tmp_path / "client-encrypted.pem"
    plain.write_text(rsa.private_pem())
    encrypted.write_text(rsa.private_pem(PASSPHRASE))
    extras: list[dict[str, Any]] = [
        {"private_key_file": str(plain)},
        {"private_key_file": str(encrypted), "private_key_passphrase": PASSPHRASE},
        {"private_key": rsa.private_pem(PASSPHRASE), "private_key_passphrase": PASSPHRASE},
    ]
    for extra in extras:
        assert jwt_hook(monkeypatch, idp, rsa_client, key_id=rsa.kid, **extra).get_token()
    assert idp.issued[rsa_client] == 3
    for seen in idp.requests_of(rsa_client):
        check_assertion(seen, rsa_client, idp.token_url, "RS256", kid=rsa.kid)


def test_assertion_audience_extra(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair, rsa_client: str
) -> None:
    hook = jwt_hook(monkeypatch, idp, rsa_client, rsa, assertion_audience=idp.url)  # the issuer
    assert hook.get_token()
    [seen] = idp.requests_of(rsa_client)
    check_assertion(seen, rsa_client, idp.url, "RS256", kid=rsa.kid)


def test_every_assertion_is_fresh(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair, rsa_client: str
) -> None:
    hook = jwt_hook(monkeypatch, idp, rsa_client, rsa)
    first = hook.get_access_token(force_refresh=True)
    second = hook.get_access_token(force_refresh=True)
    assert first.token != second.token
    assert idp.issued[rsa_client] == 2  # Authlib refuses a replayed jti: both were accepted, so both fresh
    one, two = idp.requests_of(rsa_client)
    assert (
        check_assertion(one, rsa_client, idp.token_url, "RS256", rsa.kid)["jti"]
        != check_assertion(two, rsa_client, idp.token_url, "RS256", rsa.kid)["jti"]
    )
    assert one.assertion != two.assertion


def test_wrong_key_is_the_servers_invalid_client(
    idp: AuthlibIdP,
    monkeypatch: pytest.MonkeyPatch,
    wrong_rsa: KeyPair,
    rsa_client: str,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    # Authlib answers a failed assertion with 400 (RFC 6749 5.2: 400 or 401).
    error = invalid_client(jwt_hook(monkeypatch, idp, rsa_client, wrong_rsa), 400)
    assert error.attempts == 1
    assert idp.issued[rsa_client] == 0
    assert len(idp.requests_of(rsa_client)) == 1
    assert_no_key_material(wrong_rsa.private_pem(), str(error), repr(error), debug_logs.text)


def bad_key_cases(rsa: KeyPair, p256: KeyPair, tmp_path: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Return private_key_jwt extras that cannot sign, by name, each with the key text that must not leak."""
    garbage = garbage_pem()
    encrypted = rsa.private_pem(PASSPHRASE)
    return {
        "garbage-pem": ({"private_key": garbage}, garbage),
        "garbage-file": ({"private_key_file": str(_write(tmp_path / "garbage.pem", garbage))}, garbage),
        "missing-file": ({"private_key_file": str(tmp_path / "no-such-key.pem")}, rsa.private_pem()),
        "ec-with-rs256": (
            {"private_key": p256.private_pem(), "signing_algorithm": "RS256"},
            p256.private_pem(),
        ),
        "rsa-with-es256": (
            {"private_key": rsa.private_pem(), "signing_algorithm": "ES256"},
            rsa.private_pem(),
        ),
        "rsa-with-hs256": (
            {"private_key": rsa.private_pem(), "signing_algorithm": "HS256"},
            rsa.private_pem(),
        ),
        "alg-none": ({"private_key": rsa.private_pem(), "signing_algorithm": "none"}, rsa.private_pem()),
        "encrypted-no-passphrase": ({"private_key": encrypted}, encrypted),
        "encrypted-wrong-passphrase": (
            {"private_key": encrypted, "private_key_passphrase": "not the passphrase"},
            encrypted,
        ),
        "no-key": ({}, rsa.private_pem()),
    }


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_KEYS = [
    "garbage-pem",
    "garbage-file",
    "missing-file",
    "ec-with-rs256",
    "rsa-with-es256",
    "rsa-with-hs256",
    "alg-none",
    "encrypted-no-passphrase",
    "encrypted-wrong-passphrase",
    "no-key",
]


@pytest.mark.parametrize("case", BAD_KEYS)
def test_key_that_cannot_sign_is_a_config_error_before_any_request(
    idp: AuthlibIdP,
    monkeypatch: pytest.MonkeyPatch,
    rsa: KeyPair,
    p256: KeyPair,
    tmp_path: Path,
    debug_logs: pytest.LogCaptureFixture,
    case: str,
) -> None:
    extra, pem = bad_key_cases(rsa, p256, tmp_path)[case]
    client_id = jwt_client(idp, rsa, p256)
    # Nothing is sent.
    error = config_error(
        idp, lambda: jwt_hook(monkeypatch, idp, client_id, key_id=rsa.kid, **extra).get_token()
    )
    assert error.conn_id == CONN_ID
    assert error.field in KEY_FIELDS, error
    assert idp.requests_of(client_id) == []
    assert_no_key_material(pem, str(error), repr(error), debug_logs.text)
    assert PASSPHRASE not in str(error) + repr(error) + debug_logs.text
    assert "not the passphrase" not in str(error) + repr(error) + debug_logs.text


@pytest.mark.parametrize("alg", ["RS256", "ES256", "none"])
def test_client_secret_jwt_refuses_a_non_hmac_algorithm(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, debug_logs: pytest.LogCaptureFixture, alg: str
) -> None:
    secret = secrets.token_urlsafe(48)
    error = config_error(
        idp,
        lambda: secret_hook(monkeypatch, idp, "client_secret_jwt", secret, signing_algorithm=alg)[
            0
        ].get_token(),
    )
    assert error.field in KEY_FIELDS, error
    assert secret not in str(error) + repr(error) + debug_logs.text


def test_async_key_that_cannot_sign_is_a_config_error(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair, debug_logs: pytest.LogCaptureFixture
) -> None:
    client_id = jwt_client(idp, rsa)
    garbage = garbage_pem()

    async def fetch_async() -> str:
        return await jwt_hook(monkeypatch, idp, client_id, private_key=garbage).aget_token()

    error = config_error(idp, lambda: asyncio.run(fetch_async()))
    assert error.field in KEY_FIELDS, error
    assert_no_key_material(garbage, str(error), repr(error), debug_logs.text)


# tls_client_auth and self_signed_tls_client_auth (RFC 8705).


def cert_extras(cert: CertFiles, form: str) -> dict[str, str]:
    """Return the client certificate extras as PEM text (the key in ``client_private_key``) or as paths."""
    if form == "pem":
        return {"client_cert": cert.cert_pem, "client_private_key": cert.key_pem}
    return {"client_cert": str(cert.cert_path), "client_key": str(cert.key_path)}


def mtls_hook(
    monkeypatch: pytest.MonkeyPatch,
    mtls: MtlsIdP,
    client_id: str,
    cert: CertFiles | None = None,
    form: str = "pem",
    *,
    method: str = "tls_client_auth",
    password: str | None = None,
    url: str | None = None,
    **extra: Any,
) -> OAuth2ClientCredentialsHook:
    """Return a ``method`` hook for ``client_id`` at the mTLS endpoint (or ``url``), ``cert`` in ``form``."""
    if cert is not None:
        extra = {**cert_extras(cert, form), **extra}
    return connect(
        monkeypatch,
        url or mtls.token_url,
        client_id,
        password,
        client_auth_method=method,
        ca_bundle=str(mtls.ca_path),
        **extra,
    )


def check_mtls_request(mtls: MtlsIdP, client_id: str) -> None:
    """Assert ``client_id``'s one request carried its ID in the form, no secret, and its certificate."""
    [seen] = mtls.requests_of(client_id)
    assert seen.status == 200
    assert seen.form["grant_type"] == "client_credentials"
    assert seen.form["client_id"] == client_id
    assert "client_secret" not in seen.form
    assert "client_assertion" not in seen.form
    assert "authorization" not in seen.headers
    assert seen.peer_cn == client_id


@pytest.mark.parametrize("form", ["pem", "path"])
def test_tls_client_auth(mtls: MtlsIdP, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    client_id, cert = mtls.register_tls_client()
    hook = mtls_hook(monkeypatch, mtls, client_id, cert, form, scope="read")
    token = hook.get_access_token()
    assert token.token.startswith("mtls-")
    assert token.scope == ("read",)
    assert token.lifetime == TOKEN_LIFETIME
    assert hook.get_token() == token.token
    check_mtls_request(mtls, client_id)


def test_tls_client_auth_async(mtls: MtlsIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    client_id, cert = mtls.register_tls_client()
    assert asyncio.run(mtls_hook(monkeypatch, mtls, client_id, cert).aget_token()).startswith("mtls-")
    check_mtls_request(mtls, client_id)


def test_self_signed_tls_client_auth(mtls: MtlsIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    client_id, cert = mtls.register_self_signed_client()
    hook = mtls_hook(monkeypatch, mtls, client_id, cert, "path", method="self_signed_tls_client_auth")
    assert hook.get_token().startswith("mtls-")
    check_mtls_request(mtls, client_id)


def test_client_certificate_with_client_secret_basic(mtls: MtlsIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    client_id, cert = mtls.register_tls_client(secret="both factors ö")
    hook = mtls_hook(
        monkeypatch, mtls, client_id, cert, method="client_secret_basic", password="both factors ö"
    )
    assert hook.get_token().startswith("mtls-")
    [seen] = mtls.requests_of(client_id)
    assert seen.status == 200
    assert seen.peer_cn == client_id
    assert seen.basic_credentials == (client_id, "both factors ö")


def test_certificate_of_another_client_is_invalid_client(
    mtls: MtlsIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, _ = mtls.register_tls_client()
    _, other = mtls.register_tls_client()
    invalid_client(mtls_hook(monkeypatch, mtls, client_id, other, "path"), 401)
    assert mtls.issued[client_id] == 0


def test_no_client_certificate_fails_the_tls_handshake(
    mtls: MtlsIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, _ = mtls.register_tls_client(secret="s3cret")
    hook = mtls_hook(monkeypatch, mtls, client_id, method="client_secret_post", password="s3cret")
    with pytest.raises(TokenRequestError) as info:
        hook.get_token()
    error = info.value
    assert error.status is None  # no answer: the handshake failed
    assert error.transport_error
    assert error.attempts == 1
    assert "s3cret" not in str(error)
    assert mtls.requests_of(client_id) == []


def test_client_key_that_does_not_load_is_a_config_error(
    mtls: MtlsIdP, monkeypatch: pytest.MonkeyPatch, debug_logs: pytest.LogCaptureFixture
) -> None:
    client_id, cert = mtls.register_tls_client()
    garbage = garbage_pem()
    error = config_error(
        mtls,
        lambda: mtls_hook(
            monkeypatch, mtls, client_id, client_cert=cert.cert_pem, client_private_key=garbage
        ).get_token(),
    )
    assert error.field in CERT_FIELDS, error
    assert_no_key_material(garbage, str(error), repr(error), debug_logs.text)


def test_pem_text_in_client_key_is_refused_because_airflow_would_show_it(
    mtls: MtlsIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow._shared.secrets_masker import should_hide_value_for_key

    # Airflow masks an extra by its name: a private key under "client_key" would be shown in clear.
    assert not should_hide_value_for_key("client_key")
    assert should_hide_value_for_key("client_private_key")
    client_id, cert = mtls.register_tls_client()
    error = config_error(
        mtls,
        lambda: mtls_hook(
            monkeypatch, mtls, client_id, client_cert=cert.cert_pem, client_key=cert.key_pem
        ).get_token(),
        match="move it to client_private_key",
    )
    assert error.field == "client_key"
    assert_no_key_material(cert.key_pem, str(error), repr(error))


def test_a_key_of_another_certificate_is_refused_before_any_request(
    mtls: MtlsIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, cert = mtls.register_tls_client()
    _, other = mtls.register_tls_client()
    config_error(
        mtls,
        lambda: mtls_hook(
            monkeypatch, mtls, client_id, client_cert=cert.cert_pem, client_private_key=other.key_pem
        ).get_token(),
        match="does not belong to client_cert",
    )


# Per-call scope, audience and resource.


def test_two_scopes_on_one_connection_are_two_tokens(
    idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, client_id = secret_hook(monkeypatch, idp, "client_secret_basic", "scoped", scope="read write")
    reads = [hook.get_token(scope="read") for _ in range(3)]
    writes = [hook.get_token(scope="write") for _ in range(3)]
    defaults = [hook.get_token() for _ in range(2)]
    assert len(set(reads)) == len(set(writes)) == len(set(defaults)) == 1
    assert len({reads[0], writes[0], defaults[0]}) == 3
    read, write = hook.get_access_token(scope="read"), hook.get_access_token(scope="write")
    assert (read.token, read.scope) == (reads[0], ("read",))
    assert (write.token, write.scope) == (writes[0], ("write",))
    assert hook.get_access_token().scope == ("read", "write")  # the connection's scope stays the default
    assert idp.granted(client_id, "read") == 1
    assert idp.granted(client_id, "write") == 1
    assert idp.granted(client_id, "read write") == 1
    assert idp.issued[client_id] == 3
    assert len(idp.requests_of(client_id)) == 3


def test_per_call_scope_async(idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    hook, client_id = secret_hook(monkeypatch, idp, "client_secret_post", "scoped")

    async def calls() -> list[str]:
        return [
            *await asyncio.gather(*(hook.aget_token(scope="admin") for _ in range(3))),
            *await asyncio.gather(*(hook.aget_token(scope="read") for _ in range(3))),
        ]

    tokens = asyncio.run(calls())
    assert len(set(tokens[:3])) == len(set(tokens[3:])) == 1
    assert tokens[0] != tokens[3]
    assert hook.get_token(scope="admin") == tokens[0]  # the same cache entry for the sync path
    assert idp.granted(client_id, "admin") == idp.granted(client_id, "read") == 1
    assert idp.issued[client_id] == 2


def test_per_call_audience_and_resource(idp: AuthlibIdP, monkeypatch: pytest.MonkeyPatch) -> None:
    hook, client_id = secret_hook(
        monkeypatch, idp, "client_secret_post", "aimed", scope="read", audience="api://default"
    )
    asked = [
        {},
        {"audience": "api://orders"},
        {"audience": "api://orders", "resource": "https://orders.example.test/"},
        {"scope": "write", "audience": "api://orders"},
    ]
    tokens = [hook.get_access_token(**options).token for options in asked]
    again = [hook.get_access_token(**options).token for options in asked]
    assert tokens == again
    assert len(set(tokens)) == len(asked)
    assert idp.issued[client_id] == len(asked)
    forms = [seen.form for seen in idp.requests_of(client_id)]
    sent_fields = [{name: form.get(name) for name in ("scope", "audience", "resource")} for form in forms]
    assert sent_fields == [
        {"scope": "read", "audience": "api://default", "resource": None},
        {"scope": "read", "audience": "api://orders", "resource": None},
        {"scope": "read", "audience": "api://orders", "resource": "https://orders.example.test/"},
        {"scope": "write", "audience": "api://orders", "resource": None},
    ]


# Proxies: the proxies extra, the standard variables, loopback never proxied.


def proxied_hook(
    monkeypatch: pytest.MonkeyPatch, idp: AuthlibIdP, **extra: Any
) -> tuple[OAuth2ClientCredentialsHook, str, str]:
    """Return a hook whose token URL only the proxy can reach (client_secret_post), its client and URL."""
    url = unresolvable_url(idp.port)
    hook, client_id = secret_hook(
        monkeypatch, idp, "client_secret_post", "through the proxy", url=url, allow_http=True, **extra
    )
    return hook, client_id, url


@DRIVERS
@pytest.mark.parametrize("via", ["proxies-extra", "HTTP_PROXY"])
def test_proxies_extra_and_http_proxy_variable(
    idp: AuthlibIdP, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, via: str, driver: str
) -> None:
    use_proxy(monkeypatch, proxy)
    extra: dict[str, Any] = {}
    if via == "HTTP_PROXY":
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
    else:
        extra["proxies"] = {"http": proxy.url, "https": proxy.url}
    hook, client_id, url = proxied_hook(monkeypatch, idp, **extra)
    assert fetch(hook, driver)
    assert proxy.targets() == [url]
    assert idp.issued[client_id] == 1
    [seen] = idp.requests_of(client_id)
    assert seen.headers["host"] == f"{UNRESOLVABLE_HOST}:{idp.port}"


@DRIVERS
def test_https_proxy_variable_tunnels_to_the_mtls_endpoint(
    mtls: MtlsIdP, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    use_proxy(monkeypatch, proxy, "HTTPS_PROXY")
    client_id, cert = mtls.register_tls_client()
    hook = mtls_hook(
        monkeypatch, mtls, client_id, cert, "path", url=unresolvable_url(mtls.port, scheme="https")
    )
    assert fetch(hook, driver).startswith("mtls-")
    [tunnel] = proxy.requests
    assert (tunnel.method, tunnel.target) == ("CONNECT", f"{UNRESOLVABLE_HOST}:{mtls.port}")
    check_mtls_request(mtls, client_id)


def test_private_key_jwt_through_the_proxy(
    idp: AuthlibIdP, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, rsa: KeyPair, rsa_client: str
) -> None:
    use_proxy(monkeypatch, proxy)
    url = unresolvable_url(idp.port)
    monkeypatch.setattr(idp, "audiences", [*idp.audiences, url])  # the server is known by this URL too
    hook = jwt_hook(monkeypatch, idp, rsa_client, rsa, url=url, allow_http=True, proxies={"http": proxy.url})
    assert hook.get_token()
    assert proxy.targets() == [url]
    [seen] = idp.requests_of(rsa_client)
    check_assertion(seen, rsa_client, url, "RS256", kid=rsa.kid)


@DRIVERS
def test_no_proxy_variable_bypasses_the_proxy(
    idp: AuthlibIdP, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    use_proxy(monkeypatch, proxy, "HTTP_PROXY")
    monkeypatch.setenv("NO_PROXY", UNRESOLVABLE_HOST)
    hook, client_id, _ = proxied_hook(monkeypatch, idp)
    with pytest.raises(TokenRequestError) as info:
        fetch(hook, driver)
    assert info.value.status is None  # the name does not resolve without the proxy
    assert proxy.targets() == []
    assert idp.requests_of(client_id) == []


@DRIVERS
def test_loopback_token_url_is_never_proxied(
    idp: AuthlibIdP, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    use_proxy(monkeypatch, proxy, "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    hook, client_id = secret_hook(monkeypatch, idp, "client_secret_post", "direct")
    assert fetch(hook, driver)
    assert proxy.targets() == []
    assert idp.issued[client_id] == 1
