"""Self-checks of the test identity providers in tests/idp.py, with hand-made requests (no hook involved)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import requests

from tests.idp import (
    ASSERTION_TYPE,
    AuthlibIdP,
    CertFiles,
    ForwardProxy,
    KeyPair,
    MtlsIdP,
    jwks,
    key_params,
    leaked_material,
    unresolvable_url,
)

# The fixtures idp, mtls, proxy, rsa and decoy: pytest finds them in this module's namespace, and the
# redundant aliases tell ruff they are re-exported, not unused (F401).
from tests.idp import decoy_pair as decoy_pair
from tests.idp import forward_proxy as forward_proxy
from tests.idp import idp_server as idp_server
from tests.idp import mtls_server as mtls_server
from tests.idp import rsa_pair as rsa_pair


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """Return a requests session that ignores proxy environment variables."""
    with requests.Session() as http:
        http.trust_env = False
        yield http


def assertion(
    key: Any,
    client_id: str,
    audience: str,
    alg: str,
    kid: str | None = None,
    **claims: Any,
) -> str:
    """Sign a client assertion with PyJWT: iss = sub = client ID, a fresh jti, 60 s of life."""
    now = int(time.time())
    payload = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 60}
    payload["jti"] = secrets.token_urlsafe(16)
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


def grant(**fields: str) -> dict[str, str]:
    """Return the form of a client-credentials request with ``fields``."""
    return {"grant_type": "client_credentials", **fields}


def post_assertion(
    session: requests.Session, idp: AuthlibIdP, signed: str, **form: str
) -> tuple[int, dict[str, Any]]:
    """Post a client-credentials request that authenticates with ``signed``; return status and JSON."""
    data = grant(client_assertion_type=ASSERTION_TYPE, client_assertion=signed, **form)
    response = session.post(idp.token_url, data=data, timeout=10)
    return response.status_code, response.json()


def post_mtls(
    session: requests.Session,
    mtls: MtlsIdP,
    form: dict[str, str],
    cert: CertFiles | None,
    url: str | None = None,
    **options: Any,
) -> requests.Response:
    """Post ``form`` to the mTLS token endpoint (or ``url``) with ``cert``, trusting the test CA."""
    if cert is not None:
        options["cert"] = (str(cert.cert_path), str(cert.key_path))
    return session.post(url or mtls.token_url, data=form, verify=str(mtls.ca_path), timeout=10, **options)


def test_client_secret_jwt_hs256_is_granted_the_scope_asked(
    session: requests.Session, idp: AuthlibIdP
) -> None:
    secret = "a shared secret of some length ö"
    client_id = idp.register("client_secret_jwt", secret=secret)
    signed = assertion(secret.encode(), client_id, idp.token_url, "HS256")
    status, body = post_assertion(session, idp, signed, scope="read admin")
    assert status == 200, body
    assert body["scope"] == "read admin"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert idp.issued[client_id] == 1
    [seen] = idp.requests_of(client_id)
    assert seen.assertion_claims["sub"] == client_id
    assert seen.assertion_header["alg"] == "HS256"
    assert seen.form["grant_type"] == "client_credentials"


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_client_secret_jwt_longer_hashes_are_accepted(
    session: requests.Session, idp: AuthlibIdP, alg: str
) -> None:
    secret = secrets.token_urlsafe(48)
    client_id = idp.register("client_secret_jwt", secret=secret)
    status, body = post_assertion(session, idp, assertion(secret.encode(), client_id, idp.token_url, alg))
    assert status == 200, body


def test_a_replayed_assertion_is_refused(session: requests.Session, idp: AuthlibIdP) -> None:
    secret = secrets.token_urlsafe(32)
    client_id = idp.register("client_secret_jwt", secret=secret)
    signed = assertion(secret.encode(), client_id, idp.token_url, "HS256")
    assert post_assertion(session, idp, signed)[0] == 200
    status, body = post_assertion(session, idp, signed)
    assert (status, body["error"]) == (400, "invalid_client")
    assert "JWT ID is used before" in body["error_description"]
    assert idp.issued[client_id] == 1


def test_private_key_jwt_rsa_key_is_chosen_by_kid(
    session: requests.Session, idp: AuthlibIdP, rsa: KeyPair, decoy: KeyPair
) -> None:
    client_id = idp.register("private_key_jwt", keys=jwks(decoy, rsa))
    signed = assertion(rsa.private, client_id, idp.token_url, "RS256", kid=rsa.kid)
    status, body = post_assertion(session, idp, signed, scope="write", client_id=client_id)
    assert status == 200, body
    assert body["scope"] == "write"
    # Without a kid the server cannot choose among two keys.
    status, body = post_assertion(session, idp, assertion(rsa.private, client_id, idp.token_url, "RS256"))
    assert (status, body["error"]) == (400, "invalid_client")
    assert idp.issued[client_id] == 1


def test_private_key_jwt_wrong_key_is_invalid_client(
    session: requests.Session, idp: AuthlibIdP, rsa: KeyPair, decoy: KeyPair
) -> None:
    client_id = idp.register("private_key_jwt", keys=jwks(rsa))
    signed = assertion(decoy.private, client_id, idp.token_url, "RS256", kid=rsa.kid)
    status, body = post_assertion(session, idp, signed)
    assert (status, body["error"]) == (400, "invalid_client")
    assert idp.issued[client_id] == 0


@pytest.mark.parametrize(("make", "alg"), key_params("ES256", "ES384", "EdDSA", "PS256"))
def test_private_key_jwt_other_algorithms_are_accepted(
    session: requests.Session, idp: AuthlibIdP, make: Callable[[], KeyPair], alg: str
) -> None:
    pair = make()
    client_id = idp.register("private_key_jwt", keys=jwks(pair))
    signed = assertion(pair.private, client_id, idp.token_url, alg, kid=pair.kid)
    status, body = post_assertion(session, idp, signed)
    assert status == 200, body


@pytest.mark.parametrize(
    ("claims", "description"),
    [
        pytest.param({"aud": "https://elsewhere.test/token"}, "aud", id="wrong-aud"),
        pytest.param({"exp": int(time.time()) - 30}, "exp", id="expired"),
        pytest.param({"jti": None}, "JWT ID", id="no-jti"),
        pytest.param({"iss": "someone-else"}, "Issuer and Subject", id="iss-not-sub"),
    ],
)
def test_bad_claims_are_refused(
    session: requests.Session, idp: AuthlibIdP, rsa: KeyPair, claims: dict[str, Any], description: str
) -> None:
    client_id = idp.register("private_key_jwt", keys=jwks(rsa))
    signed = assertion(rsa.private, client_id, idp.token_url, "RS256", kid=rsa.kid, **claims)
    status, body = post_assertion(session, idp, signed)
    assert (status, body["error"]) == (400, "invalid_client")
    assert description in body.get("error_description", ""), body
    assert idp.issued[client_id] == 0


def test_the_issuer_url_is_an_audience_too(session: requests.Session, idp: AuthlibIdP, rsa: KeyPair) -> None:
    client_id = idp.register("private_key_jwt", keys=jwks(rsa))
    signed = assertion(rsa.private, client_id, idp.url, "RS256", kid=rsa.kid)
    assert post_assertion(session, idp, signed)[0] == 200


def test_client_id_must_match_the_subject(session: requests.Session, idp: AuthlibIdP, rsa: KeyPair) -> None:
    client_id = idp.register("private_key_jwt", keys=jwks(rsa))
    signed = assertion(rsa.private, client_id, idp.token_url, "RS256", kid=rsa.kid)
    status, body = post_assertion(session, idp, signed, client_id="another-client")
    assert (status, body["error"]) == (400, "invalid_client")


def test_a_secret_jwt_client_cannot_use_an_rsa_assertion_and_none_is_refused(
    session: requests.Session, idp: AuthlibIdP, rsa: KeyPair
) -> None:
    secret = secrets.token_urlsafe(32)
    client_id = idp.register("client_secret_jwt", secret=secret)
    status, _ = post_assertion(session, idp, assertion(rsa.private, client_id, idp.token_url, "RS256"))
    assert status == 400
    unsigned = assertion(None, client_id, idp.token_url, "none")
    status, body = post_assertion(session, idp, unsigned)
    assert (status, body["error"]) == (400, "invalid_client")
    assert idp.issued[client_id] == 0


def test_secret_methods_and_extra_fields(session: requests.Session, idp: AuthlibIdP) -> None:
    basic = idp.register("client_secret_basic", secret="b-secret")
    post = idp.register("client_secret_post", secret="p-secret")
    form = grant(scope="read", audience="api://x", resource="https://r")
    answer = session.post(idp.token_url, data=form, auth=(basic, "b-secret"), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "read"
    answer = session.post(
        idp.token_url, data={**form, "client_id": post, "client_secret": "p-secret"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    [seen] = idp.requests_of(post)
    assert (seen.form["audience"], seen.form["resource"]) == ("api://x", "https://r")
    assert idp.requests_of(basic)[0].basic_credentials == (basic, "b-secret")
    wrong = session.post(idp.token_url, data=form, auth=(basic, "nope"), timeout=10)
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert idp.granted(basic, "read") == 1
    unsupported = session.post(
        idp.token_url, data={**form, "scope": "root"}, auth=(basic, "b-secret"), timeout=10
    )
    assert (unsupported.status_code, unsupported.json()["error"]) == (400, "invalid_scope")


def test_leaked_material_finds_a_piece_of_the_key(rsa: KeyPair) -> None:
    pem = rsa.private_pem()
    body_line = pem.splitlines()[5]
    assert leaked_material(pem, f"error near {body_line[3:30]}") is not None
    assert leaked_material(pem, "Connection 'idp': private_key: the key does not load") is None


def test_encrypted_private_pem_loads_with_its_passphrase(rsa: KeyPair) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    pem = rsa.private_pem("pass phrase")
    assert "ENCRYPTED" in pem
    assert load_pem_private_key(pem.encode(), b"pass phrase").key_size == 2048  # type: ignore[union-attr]


# mTLS


def test_mtls_tls_client_auth(session: requests.Session, mtls: MtlsIdP) -> None:
    client_id, cert = mtls.register_tls_client()
    answer = post_mtls(session, mtls, grant(client_id=client_id, scope="read"), cert)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read"
    assert "x5t#S256" in body["cnf"]
    [seen] = mtls.requests_of(client_id)
    assert seen.peer_cn == client_id
    assert mtls.issued[client_id] == 1


def test_mtls_certificate_of_another_client_is_invalid_client(
    session: requests.Session, mtls: MtlsIdP
) -> None:
    client_id, _ = mtls.register_tls_client()
    _, other = mtls.register_tls_client()
    answer = post_mtls(session, mtls, grant(client_id=client_id), other)
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client")
    assert mtls.issued[client_id] == 0


def test_mtls_without_a_certificate_fails_the_handshake(session: requests.Session, mtls: MtlsIdP) -> None:
    client_id, _ = mtls.register_tls_client()
    before = len(mtls.failures)
    with pytest.raises(requests.exceptions.RequestException):
        post_mtls(session, mtls, grant(client_id=client_id), None)
    deadline = time.monotonic() + 5
    while len(mtls.failures) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(mtls.failures) > before
    assert mtls.requests_of(client_id) == []


def test_mtls_self_signed_and_secret_combined(session: requests.Session, mtls: MtlsIdP) -> None:
    client_id, cert = mtls.register_self_signed_client()
    form = grant(client_id=client_id)
    answer = post_mtls(session, mtls, form, cert)
    assert answer.status_code == 200, answer.text
    other_id, _ = mtls.register_self_signed_client()
    answer = post_mtls(session, mtls, {**form, "client_id": other_id}, cert)
    assert answer.status_code == 401
    secret_id, secret_cert = mtls.register_tls_client(secret="mtls-secret")
    ok = post_mtls(session, mtls, grant(), secret_cert, auth=(secret_id, "mtls-secret"))
    assert ok.status_code == 200, ok.text
    bad = post_mtls(session, mtls, grant(), secret_cert, auth=(secret_id, "wrong"))
    assert bad.status_code == 401


# Proxy


def test_proxy_forwards_absolute_form_requests(
    session: requests.Session, idp: AuthlibIdP, proxy: ForwardProxy
) -> None:
    proxy.clear()
    client_id = idp.register("client_secret_post", secret="proxied")
    url = unresolvable_url(idp.port)
    form = grant(client_id=client_id, client_secret="proxied")
    answer = session.post(url, data=form, proxies={"http": proxy.url}, timeout=10)
    assert answer.status_code == 200, answer.text
    with httpx.Client(proxy=proxy.url, trust_env=False) as client:
        assert client.post(url, data=form, timeout=10).status_code == 200
    assert proxy.targets() == [url, url]
    assert [seen.host for seen in proxy.requests] == ["idp.example.test"] * 2
    assert idp.issued[client_id] == 2
    with pytest.raises(requests.exceptions.ConnectionError):
        session.post(url, data=form, timeout=5)  # unreachable without the proxy


def test_proxy_tunnels_connect_to_the_mtls_endpoint(
    session: requests.Session, mtls: MtlsIdP, proxy: ForwardProxy
) -> None:
    proxy.clear()
    client_id, cert = mtls.register_tls_client()
    url = unresolvable_url(mtls.port, scheme="https")
    answer = post_mtls(session, mtls, grant(client_id=client_id), cert, url, proxies={"https": proxy.url})
    assert answer.status_code == 200, answer.text
    [seen] = proxy.requests
    assert (seen.method, seen.target, seen.host) == (
        "CONNECT",
        f"idp.example.test:{mtls.port}",
        "idp.example.test",
    )


def test_idp_paths_exist(mtls: MtlsIdP) -> None:
    assert Path(mtls.ca_path).read_text().startswith("-----BEGIN CERTIFICATE-----")
