"""Enterprise identity providers on loopback: Authlib with RFC 7523 assertions, an mTLS endpoint, a proxy.

* :func:`serve_authlib_idp`: Authlib's Flask authorization server, client-credentials grant, whose clients
  authenticate with ``client_secret_basic``/``client_secret_post`` or with Authlib's own RFC 7523 client
  assertions (``client_secret_jwt``, ``private_key_jwt``; jti replay, ``aud`` and ``exp`` checked).
* :func:`serve_mtls_idp`: an HTTPS token endpoint that requires a client certificate (RFC 8705
  ``tls_client_auth`` and ``self_signed_tls_client_auth``), issued by a :class:`TestPKI`.
* :func:`serve_forward_proxy`: a forward HTTP proxy (absolute-form requests and ``CONNECT``) that records
  every target and forwards it to loopback, so a token URL whose host does not resolve is reachable only
  through it.

Each ``serve_*`` is a context manager yielding the running server. The module-scoped fixtures at the end
(``idp``, ``mtls``, ``proxy``, ``rsa``, ``decoy``) wrap them: a test module imports them by name.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import hmac
import http.client
import http.server
import ipaddress
import itertools
import json
import secrets
import select
import socket
import socketserver
import ssl
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt as pyjwt
import pytest
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, grants
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from flask import Flask, Response, request
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey, import_key
from werkzeug.serving import make_server

#: RFC 7523 section 2.2.
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = "/token"
#: What the Authlib server supports; a client may be given fewer (see :attr:`IdPClient.scope`).
SCOPES_SUPPORTED = ["read", "write", "admin", "audit"]
DEFAULT_CLIENT_SCOPE = "read write admin"
TOKEN_LIFETIME = 3600
#: Assertion algorithms each JWT method accepts. Authlib alone accepts only joserfc's "recommended" ones
#: (HS256, RS256, ES256); the server widens that to what the spec allows, and never to ``none``.
SECRET_JWT_ALGORITHMS = ["HS256", "HS384", "HS512"]
PRIVATE_KEY_JWT_ALGORITHMS = [
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"),
    *("EdDSA", "Ed25519"),  # joserfc warns that RFC 9864 deprecates "EdDSA" for "Ed25519"; both accepted
]
#: A host under the reserved ``.test`` TLD: it never resolves, so only the proxy reaches it.
UNRESOLVABLE_HOST = "idp.example.test"
SERVER_NAMES = ["localhost", UNRESOLVABLE_HOST]
HEADERS_TO_DROP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te"})

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


# Keys.


@dataclass(frozen=True)
class KeyPair:
    """
    A private key for signing client assertions, with its key ID.

    :param private: the ``cryptography`` private key.
    :param kid: the key ID the server registers its public JWK under.
    """

    private: PrivateKey
    kid: str

    def private_pem(self, passphrase: str | None = None) -> str:
        """Return the private key as PKCS#8 PEM, encrypted with ``passphrase`` if given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase.encode())
            if passphrase
            else serialization.NoEncryption()
        )
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ).decode()

    def public_pem(self) -> str:
        """Return the public key as SubjectPublicKeyInfo PEM."""
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def public_jwk(self) -> dict[str, Any]:
        """Return the public key as a JWK with this pair's ``kid``."""
        key_type: Literal["RSA", "EC", "OKP"]
        if isinstance(self.private, rsa.RSAPrivateKey):
            key_type = "RSA"
        elif isinstance(self.private, ec.EllipticCurvePrivateKey):
            key_type = "EC"
        else:
            key_type = "OKP"
        return dict(import_key(self.public_pem().encode(), key_type, parameters={"kid": self.kid}).as_dict())


def rsa_key(kid: str, size: int = 2048) -> KeyPair:
    """Generate an RSA key pair (about 50 ms at 2048 bits)."""
    return KeyPair(rsa.generate_private_key(public_exponent=65537, key_size=size), kid)


def ec_key(kid: str, curve: ec.EllipticCurve | None = None) -> KeyPair:
    """Generate an EC key pair, P-256 unless told."""
    return KeyPair(ec.generate_private_key(curve or ec.SECP256R1()), kid)


def ed25519_key(kid: str) -> KeyPair:
    """Generate an Ed25519 key pair (for EdDSA)."""
    return KeyPair(ed25519.Ed25519PrivateKey.generate(), kid)


#: A key-pair maker for each private_key_jwt algorithm the tests try beside the defaults, by algorithm.
KEY_MAKERS: dict[str, Callable[[], KeyPair]] = {
    "ES256": lambda: ec_key("ec-256"),
    "ES384": lambda: ec_key("ec-384", ec.SECP384R1()),
    "EdDSA": lambda: ed25519_key("ed"),
    "PS256": lambda: rsa_key("rsa-pss"),
}


def key_params(*algs: str) -> list[Any]:
    """Return ``(make, alg)`` pytest params for ``algs`` (their ids), EdDSA's deprecation warning ignored."""
    return [
        pytest.param(
            KEY_MAKERS[alg],
            alg,
            id=alg,
            marks=pytest.mark.filterwarnings("ignore:EdDSA is deprecated") if alg == "EdDSA" else (),
        )
        for alg in algs
    ]


def jwks(*pairs: KeyPair) -> dict[str, Any]:
    """Return the public JWK Set of ``pairs``."""
    return {"keys": [pair.public_jwk() for pair in pairs]}


def pem_body(pem: str) -> str:
    """Return the base64 body of a PEM text, its lines joined: the key material a message must not hold."""
    return "".join(line.strip() for line in pem.splitlines() if line.strip() and not line.startswith("-----"))


def leaked_material(pem: str, text: str, window: int = 20) -> str | None:
    """Return the first ``window``-character piece of ``pem``'s body that occurs in ``text``, or None."""
    body = pem_body(pem)
    for start in range(max(1, len(body) - window + 1)):
        piece = body[start : start + window]
        if piece in text:
            return piece
    return None


# Requests as a server saw them.


@dataclass
class SeenRequest:
    """
    One request a server received.

    :param method: the HTTP method.
    :param path: the request target (absolute-form for a proxy).
    :param form: the form fields of the body (the last value of each name).
    :param headers: the headers, names lower-cased.
    :param status: the status answered (0 until answered).
    :param peer_cn: the client certificate's subject CN (TLS servers only).
    """

    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]
    status: int = 0
    peer_cn: str | None = None

    @property
    def assertion(self) -> str | None:
        """Return the ``client_assertion`` sent, if any."""
        return self.form.get("client_assertion")

    @property
    def assertion_header(self) -> dict[str, Any]:
        """Return the JOSE header of the client assertion (unverified)."""
        assert self.assertion, "no client_assertion in this request"
        return dict(pyjwt.get_unverified_header(self.assertion))

    @property
    def assertion_claims(self) -> dict[str, Any]:
        """Return the claims of the client assertion (unverified)."""
        assert self.assertion, "no client_assertion in this request"
        return dict(pyjwt.decode(self.assertion, options={"verify_signature": False}))

    @property
    def basic_credentials(self) -> tuple[str, str] | None:
        """Return the client ID and secret of an ``Authorization: Basic`` header, percent-decoded."""
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return unquote(user), unquote(password)

    @property
    def client_id(self) -> str | None:
        """Return the client this request speaks for: form ``client_id``, assertion ``sub``, Basic user."""
        if client_id := self.form.get("client_id"):
            return client_id
        if self.assertion:
            with contextlib.suppress(pyjwt.PyJWTError):
                return str(self.assertion_claims.get("sub"))
        if credentials := self.basic_credentials:
            return credentials[0]
        return None


# What the servers share.


@contextlib.contextmanager
def _serving(server: socketserver.BaseServer, name: str) -> Iterator[None]:
    """Run ``server`` in a daemon thread named ``name`` while the block runs; then stop and close it."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


class _TokenServer:
    """What both token servers share: their URLs and the requests they recorded."""

    url: str
    requests: list[SeenRequest]
    lock: threading.Lock

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    def requests_of(self, client_id: str) -> list[SeenRequest]:
        """Return the requests that spoke for ``client_id``."""
        with self.lock:
            return [seen for seen in self.requests if seen.client_id == client_id]


# 1. Authlib's authorization server.


@dataclass
class IdPClient(ClientMixin):
    """
    A confidential client registered with one token endpoint authentication method (RFC 7591).

    :param client_id: the client ID.
    :param token_endpoint_auth_method: ``client_secret_basic``, ``client_secret_post``,
        ``client_secret_jwt`` or ``private_key_jwt``.
    :param client_secret: the secret (the HMAC key for ``client_secret_jwt``).
    :param jwks: the public JWK Set for ``private_key_jwt``.
    :param scope: the scopes the client may be given.
    :param thumbprint: the ``x5t#S256`` its assertions must carry, as Microsoft Entra ID names a key by
        its certificate's SHA-256 thumbprint.
    """

    client_id: str
    token_endpoint_auth_method: str
    client_secret: str | None = None
    jwks: dict[str, Any] | None = None
    scope: str = DEFAULT_CLIENT_SCOPE
    thumbprint: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = scope_to_list(self.scope)
        return str(list_to_scope([s for s in scope_to_list(scope or "") if s in allowed]))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret is None:
            return False
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class ClientAssertion(JWTBearerClientAssertion):
    """Authlib's RFC 7523 client authentication for one method, with the server's audiences and jti log."""

    def __init__(self, idp: AuthlibIdP, method: str, algorithms: list[str]) -> None:
        super().__init__(validate_jti=True, leeway=5)
        self.idp = idp
        self.CLIENT_AUTH_METHOD = method
        self.algorithms = algorithms

    def __call__(self, query_client: Any, request: Any) -> IdPClient | None:
        """Authenticate the assertion's client, unless it is registered with the other JWT method."""
        assertion = request.form.get("client_assertion")
        if request.form.get("client_assertion_type") == ASSERTION_TYPE and assertion:
            header, claims = self.extract_assertion(assertion)
            client = query_client(claims.get("sub")) if isinstance(claims.get("sub"), str) else None
            if client is not None and client.token_endpoint_auth_method != self.CLIENT_AUTH_METHOD:
                return None  # ClientAuthentication tries every method in turn: leave it to the other one
            if client is not None and client.thumbprint and header.get("x5t#S256") != client.thumbprint:
                raise InvalidClientError(
                    description="The assertion's x5t#S256 names no certificate of the client."
                )
            # RFC 7521 section 4.2: a client_id beside the assertion must name the same client.
            client_id = request.form.get("client_id")
            if client_id is not None and client_id != claims.get("sub"):
                raise InvalidClientError(description="client_id does not match the assertion's subject.")
        result: IdPClient | None = super().__call__(query_client, request)
        return result

    def get_audiences(self) -> list[str]:
        return list(self.idp.audiences)

    def validate_jti(self, claims: Any, jti: str) -> bool:
        key = (str(claims["sub"]), str(jti))
        with self.idp.lock:
            if key in self.idp.jtis:
                return False
            self.idp.jtis.add(key)
            return True

    def resolve_client_public_key(self, client: IdPClient) -> Any:
        if self.CLIENT_AUTH_METHOD == "client_secret_jwt":
            assert client.client_secret is not None
            return OctKey.import_key(client.client_secret.encode())
        assert client.jwks is not None
        return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        """Verify as Authlib does, with this method's algorithms rather than joserfc's recommended three."""
        try:
            token = jose_jwt.decode(assertion, resolve_key, algorithms=self.algorithms)
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from exc
        self.verify_claims(token.claims)
        return token.claims


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """The client-credentials grant, with every client authentication method the server knows."""

    TOKEN_ENDPOINT_AUTH_METHODS = [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    ]


@dataclass
class AuthlibIdP(_TokenServer):
    """
    Authlib's Flask authorization server on a loopback port; ``POST /token`` issues tokens.

    :param url: the server's root URL (also accepted as an assertion audience, as the issuer).
    :param clients: the registered clients by ID.
    :param requests: every request received, in order.
    :param issued: how many tokens each client ID was issued.
    :param jtis: the (client ID, jti) pairs seen, to refuse replays.
    :param audiences: the assertion audiences accepted: the token URL and the root URL by default.
    """

    url: str
    clients: dict[str, IdPClient] = field(default_factory=dict)
    requests: list[SeenRequest] = field(default_factory=list)
    issued: Counter[str] = field(default_factory=Counter)
    jtis: set[tuple[str, str]] = field(default_factory=set)
    audiences: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def register(
        self,
        method: str,
        *,
        secret: str | None = None,
        keys: dict[str, Any] | None = None,
        scope: str = DEFAULT_CLIENT_SCOPE,
        prefix: str = "client",
        thumbprint: str | None = None,
    ) -> str:
        """Register a client with ``method`` and its ``secret`` or public JWK Set ``keys``; return its ID."""
        client_id = f"{prefix}-{method}-{next(self._ids)}"
        self.clients[client_id] = IdPClient(
            client_id, method, client_secret=secret, jwks=keys, scope=scope, thumbprint=thumbprint
        )
        return client_id

    def granted(self, client_id: str, scope: str | None = None) -> int:
        """Return how many of ``client_id``'s requests (for ``scope`` if given) were answered 200."""
        return sum(
            1
            for seen in self.requests_of(client_id)
            if seen.status == 200 and (scope is None or seen.form.get("scope") == scope)
        )


def _authlib_app(idp: AuthlibIdP) -> Flask:
    """Build the Flask app of ``idp``: Authlib's server, the JWT methods registered, every request logged."""
    app = Flask(__name__)
    app.config.update(
        OAUTH2_SCOPES_SUPPORTED=SCOPES_SUPPORTED,
        OAUTH2_TOKEN_EXPIRES_IN={"client_credentials": TOKEN_LIFETIME},
    )

    def save_token(token: dict[str, Any], oauth_request: Any) -> None:
        with idp.lock:
            idp.issued[oauth_request.client.client_id] += 1

    authorization = AuthorizationServer(app, query_client=idp.clients.get, save_token=save_token)
    authorization.register_grant(ClientCredentialsGrant)
    authorization.register_client_auth_method(
        "client_secret_jwt", ClientAssertion(idp, "client_secret_jwt", SECRET_JWT_ALGORITHMS)
    )
    authorization.register_client_auth_method(
        "private_key_jwt", ClientAssertion(idp, "private_key_jwt", PRIVATE_KEY_JWT_ALGORITHMS)
    )

    @app.post(TOKEN_PATH)
    def issue_token() -> Response:
        seen = SeenRequest(
            request.method,
            request.full_path.rstrip("?"),
            dict(request.form.items()),
            {name.lower(): value for name, value in request.headers.items()},
        )
        with idp.lock:
            idp.requests.append(seen)
        response: Response = authorization.create_token_response()
        seen.status = response.status_code
        return response

    # Authlib refuses plain http unless the host is loopback (``InsecureTransportError``); a request that
    # came through the proxy names UNRESOLVABLE_HOST, so it is treated as https, as behind a TLS front end.
    wsgi_app = app.wsgi_app

    def behind_tls(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_HOST", "").partition(":")[0] == UNRESOLVABLE_HOST:
            environ["wsgi.url_scheme"] = "https"
        return wsgi_app(environ, start_response)

    app.wsgi_app = behind_tls  # type: ignore[method-assign]
    return app


@contextlib.contextmanager
def serve_authlib_idp() -> Iterator[AuthlibIdP]:
    """Run Authlib's authorization server on 127.0.0.1 in a thread while the block runs."""
    idp = AuthlibIdP(url="")
    http_server = make_server("127.0.0.1", 0, _authlib_app(idp), threaded=True)
    idp.url = f"http://127.0.0.1:{http_server.server_port}"
    idp.audiences = [idp.token_url, idp.url]
    with _serving(http_server, "authlib-idp"):
        yield idp


# 2. A PKI and an mTLS token endpoint (RFC 8705).


@dataclass(frozen=True)
class CertFiles:
    """
    A certificate and its private key, as PEM texts and as files.

    :param cert_pem: the certificate.
    :param key_pem: the unencrypted PKCS#8 private key.
    :param cert_path: the file holding ``cert_pem``.
    :param key_path: the file holding ``key_pem``.
    """

    cert_pem: str
    key_pem: str
    cert_path: Path
    key_path: Path

    @property
    def der(self) -> bytes:
        """Return the certificate in DER, as a TLS peer presents it."""
        return x509.load_pem_x509_certificate(self.cert_pem.encode()).public_bytes(serialization.Encoding.DER)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: PrivateKey) -> CertFiles:
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_text(cert_pem)
    key_path.write_text(key_pem)
    key_path.chmod(0o600)
    return CertFiles(cert_pem, key_pem, cert_path, key_path)


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: Any,
    signer: PrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


class TestPKI:
    """A test CA (EC P-256, fast) in ``directory``: issues the server's and clients' certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "airflow-tokens test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = _name(name)
        self.ca_cert = _certificate(
            self.ca_name,
            self.ca_name,
            self.ca_key.public_key(),
            self.ca_key,
            [
                (x509.BasicConstraints(ca=True, path_length=0), True),
                (_key_usage(cert_sign=True), True),
                (x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), False),
            ],
        )
        self.ca = _write(directory, "ca", self.ca_cert, self.ca_key)

    @property
    def ca_path(self) -> Path:
        """Return the CA certificate's file: the ``ca_bundle`` of a connection."""
        return self.ca.cert_path

    def issue(self, cn: str, *, server: bool = False, stem: str | None = None) -> CertFiles:
        """Issue a leaf certificate for ``cn``: a TLS server's (127.0.0.1, localhost SANs) or a client's."""
        key = ec.generate_private_key(ec.SECP256R1())
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (_key_usage(), True),
            (
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                False,
            ),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), False),
        ]
        if server:
            names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            names += [x509.DNSName(name) for name in SERVER_NAMES]
            extensions.append((x509.SubjectAlternativeName(names), False))
        cert = _certificate(_name(cn), self.ca_name, key.public_key(), self.ca_key, extensions)
        return _write(self.directory, stem or _stem(cn), cert, key)


def self_signed_client(directory: Path, cn: str) -> CertFiles:
    """Make a self-signed client certificate for ``cn`` (RFC 8705 ``self_signed_tls_client_auth``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(
        _name(cn),
        _name(cn),
        key.public_key(),
        key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ],
    )
    return _write(directory, f"self-signed-{_stem(cn)}", cert, key)


def certificate_for(directory: Path, pair: KeyPair, cn: str) -> CertFiles:
    """Make a self-signed certificate for ``pair``'s key, as an app registration holds one (Entra ID)."""
    cert = _certificate(
        _name(cn),
        _name(cn),
        pair.private.public_key(),
        pair.private,
        [(x509.BasicConstraints(ca=False, path_length=None), True)],
    )
    return _write(directory, f"assertion-{_stem(cn)}", cert, pair.private)


def thumbprint(cert: CertFiles, algorithm: hashes.HashAlgorithm) -> str:
    """Return the certificate's thumbprint under ``algorithm``, base64url without padding (RFC 7515 4.1.7)."""
    digest = x509.load_pem_x509_certificate(cert.cert_pem.encode()).fingerprint(algorithm)
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _key_usage(cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _stem(cn: str) -> str:
    return "".join(char if char.isalnum() or char in "-_" else "_" for char in cn)


@dataclass(frozen=True)
class MtlsClient:
    """
    A client of the mTLS endpoint.

    :param client_id: the client ID (the subject CN of its CA-issued certificate).
    :param method: ``tls_client_auth`` (CA-issued, CN = client ID) or ``self_signed_tls_client_auth``
        (the registered certificate itself, by its DER).
    :param secret: a secret the client must send too (Basic or ``client_secret``), or None.
    :param cert_der: the registered certificate (``self_signed_tls_client_auth`` only).
    """

    client_id: str
    method: str
    secret: str | None = None
    cert_der: bytes | None = None


class _MtlsHandler(http.server.BaseHTTPRequestHandler):
    server: _MtlsHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 10

    def setup(self) -> None:
        self.request.do_handshake()  # in this thread, so one bad client never stalls the accept loop
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""

    def do_POST(self) -> None:
        idp = self.server.idp
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
        der = self.request.getpeercert(binary_form=True)
        peer = x509.load_der_x509_certificate(der) if der else None
        cn = _common_name(peer.subject) if peer else None
        seen = SeenRequest(
            "POST", self.path, form, {name.lower(): value for name, value in self.headers.items()}, peer_cn=cn
        )
        with idp.lock:
            idp.requests.append(seen)
        status, body = idp.answer(self.path, form, seen, peer, der)
        seen.status = status
        if status == 200:
            with idp.lock:
                idp.issued[str(seen.client_id)] += 1
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _common_name(name: x509.Name) -> str | None:
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attributes[0].value) if attributes else None


class _MtlsHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, idp: MtlsIdP, context: ssl.SSLContext) -> None:
        self.idp = idp
        self.context = context
        super().__init__(("127.0.0.1", 0), _MtlsHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record a failed handshake (or any other failure) rather than print it."""
        error = sys.exc_info()[1]
        with self.idp.lock:
            self.idp.failures.append(f"{type(error).__name__}: {error}")


@dataclass
class MtlsIdP(_TokenServer):
    """
    An HTTPS token endpoint that requires a client certificate issued by :attr:`pki` (or registered).

    ``POST /token`` answers a token only when the peer certificate fits the form's ``client_id``
    (RFC 8705 section 2), else 401 ``invalid_client``.

    :param url: the root URL (``https://127.0.0.1:PORT``).
    :param pki: the CA that issued the server's certificate and the clients'.
    :param clients: the registered clients by ID.
    :param requests: every request that got past the TLS handshake.
    :param failures: the connections that failed (a handshake without a certificate, say).
    :param issued: how many tokens each client ID was issued.
    """

    url: str
    pki: TestPKI
    context: ssl.SSLContext
    clients: dict[str, MtlsClient] = field(default_factory=dict)
    requests: list[SeenRequest] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    issued: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    @property
    def ca_path(self) -> Path:
        return self.pki.ca_path

    def register_tls_client(self, secret: str | None = None, prefix: str = "mtls") -> tuple[str, CertFiles]:
        """Register a ``tls_client_auth`` client and issue its certificate (CN = client ID)."""
        client_id = f"{prefix}-client-{next(self._ids)}"
        self.clients[client_id] = MtlsClient(client_id, "tls_client_auth", secret=secret)
        return client_id, self.pki.issue(client_id)

    def register_self_signed_client(self, prefix: str = "self-signed") -> tuple[str, CertFiles]:
        """Register a ``self_signed_tls_client_auth`` client with a new self-signed certificate."""
        client_id = f"{prefix}-client-{next(self._ids)}"
        cert = self_signed_client(self.pki.directory, client_id)
        self.context.load_verify_locations(cadata=cert.cert_pem)  # the handshake must accept it
        self.clients[client_id] = MtlsClient(client_id, "self_signed_tls_client_auth", cert_der=cert.der)
        return client_id, cert

    def answer(
        self,
        path: str,
        form: dict[str, str],
        seen: SeenRequest,
        peer: x509.Certificate | None,
        der: bytes | None,
    ) -> tuple[int, dict[str, Any]]:
        """Return the status and JSON body for one token request."""
        if urlsplit(path).path != TOKEN_PATH:
            return 404, {"error": "not_found"}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        client = self.clients.get(str(seen.client_id))
        if client is None or peer is None or der is None:
            return 401, {"error": "invalid_client", "error_description": "Unknown client."}
        if client.method == "tls_client_auth":
            fits = _common_name(peer.subject) == client.client_id and peer.issuer == self.pki.ca_name
        else:
            fits = client.cert_der is not None and hmac.compare_digest(der, client.cert_der)
        if not fits:
            return 401, {"error": "invalid_client", "error_description": "The certificate does not fit."}
        if client.secret is not None:
            basic = seen.basic_credentials
            sent = basic[1] if basic else form.get("client_secret", "")
            if not hmac.compare_digest(sent.encode(), client.secret.encode()):
                return 401, {"error": "invalid_client", "error_description": "Wrong secret."}
        body: dict[str, Any] = {
            "access_token": f"mtls-{secrets.token_urlsafe(16)}",
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
        }
        if scope := form.get("scope"):
            body["scope"] = scope
        # RFC 8705 section 3: the token is bound to the certificate.
        body["cnf"] = {
            "x5t#S256": base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        }
        return 200, body


@contextlib.contextmanager
def serve_mtls_idp(directory: Path) -> Iterator[MtlsIdP]:
    """Make a test CA in ``directory`` and run the mTLS token endpoint on 127.0.0.1 while the block runs."""
    pki = TestPKI(directory)
    server_cert = pki.issue("127.0.0.1", server=True, stem="server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert.cert_path, server_cert.key_path)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=pki.ca_path)
    idp = MtlsIdP(url="", pki=pki, context=context)
    http_server = _MtlsHTTPServer(idp, context)
    idp.url = f"https://127.0.0.1:{http_server.server_port}"
    with _serving(http_server, "mtls-idp"):
        yield idp


# 3. A forward proxy.


@dataclass(frozen=True)
class ProxiedRequest:
    """
    One request the proxy received.

    :param method: ``POST``, ``GET``... or ``CONNECT``.
    :param target: the absolute URL asked for, or ``host:port`` for ``CONNECT``.
    :param headers: the headers sent to the proxy, names lower-cased.
    """

    method: str
    target: str
    headers: dict[str, str]

    @property
    def host(self) -> str:
        """Return the host asked for."""
        if self.method == "CONNECT":
            return self.target.rpartition(":")[0]
        return str(urlsplit(self.target).hostname)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _ProxyHTTPServer
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""

    def _record(self) -> None:
        seen = ProxiedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        with self.server.proxy.lock:
            self.server.proxy.requests.append(seen)

    def do_POST(self) -> None:
        self._record()
        target = urlsplit(self.path)
        if target.scheme != "http" or not target.port:
            self.send_error(400, "absolute-form http URL with a port expected")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HEADERS_TO_DROP}
        path = target.path + (f"?{target.query}" if target.query else "")
        upstream = http.client.HTTPConnection(self.server.proxy.upstream_host, target.port, timeout=10)
        try:
            upstream.request(self.command, path or "/", body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
        except OSError:
            self.send_error(502, "upstream unreachable")
            return
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in {*HEADERS_TO_DROP, "transfer-encoding", "content-length"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    do_GET = do_POST

    def do_CONNECT(self) -> None:
        self._record()
        _, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((self.server.proxy.upstream_host, int(port)), timeout=10)
        except (OSError, ValueError):
            self.send_error(502, "upstream unreachable")
            return
        self.send_response(200, "Connection Established")
        self.end_headers()
        self.close_connection = True
        with upstream:
            _pipe(self.connection, upstream)


def _pipe(one: socket.socket, other: socket.socket, idle: float = 10.0) -> None:
    """Copy bytes both ways between two sockets until either side closes or ``idle`` seconds pass."""
    sockets = [one, other]
    while True:
        readable, _, _ = select.select(sockets, [], [], idle)
        if not readable:
            return
        for source in readable:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            (other if source is one else one).sendall(data)


class _ProxyHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: ForwardProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


@dataclass
class ForwardProxy:
    """
    A forward proxy on loopback: every target is recorded, then reached at ``upstream_host``, same port.

    :param url: the proxy's URL (``http://127.0.0.1:PORT``), as ``proxies`` or ``HTTP_PROXY`` spell it.
    :param upstream_host: where every target host is reached instead (its port kept).
    :param requests: every request received, in order.
    """

    url: str = ""
    upstream_host: str = "127.0.0.1"
    requests: list[ProxiedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def targets(self) -> list[str]:
        """Return the targets asked for, in order."""
        with self.lock:
            return [seen.target for seen in self.requests]

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self.lock:
            self.requests.clear()


@contextlib.contextmanager
def serve_forward_proxy() -> Iterator[ForwardProxy]:
    """Run the forward proxy on 127.0.0.1 in a thread while the block runs."""
    proxy = ForwardProxy()
    http_server = _ProxyHTTPServer(proxy)
    proxy.url = f"http://127.0.0.1:{http_server.server_port}"
    with _serving(http_server, "forward-proxy"):
        yield proxy


def unresolvable_url(port: int, scheme: str = "http", path: str = TOKEN_PATH) -> str:
    """Return a token URL on :data:`UNRESOLVABLE_HOST` at ``port``: only :class:`ForwardProxy` reaches it."""
    return f"{scheme}://{UNRESOLVABLE_HOST}:{port}{path}"


# Fixtures for the test modules that import them by their function names (``from tests.idp import
# idp_server as idp_server``): each is registered under the short name a test asks for (``idp``...).


@pytest.fixture(scope="module", name="idp")
def idp_server() -> Iterator[AuthlibIdP]:
    """Run Authlib's authorization server for the module."""
    with serve_authlib_idp() as server:
        yield server


@pytest.fixture(scope="module", name="mtls")
def mtls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsIdP]:
    """Run the mTLS token endpoint (and its test CA) for the module."""
    with serve_mtls_idp(tmp_path_factory.mktemp("pki")) as server:
        yield server


@pytest.fixture(scope="module", name="proxy")
def forward_proxy() -> Iterator[ForwardProxy]:
    """Run the forward proxy for the module."""
    with serve_forward_proxy() as server:
        yield server


@pytest.fixture(scope="module", name="rsa")
def rsa_pair() -> KeyPair:
    """Generate the module's registered RSA key."""
    return rsa_key("rsa-2026")


@pytest.fixture(scope="module", name="decoy")
def decoy_pair() -> KeyPair:
    """Generate a second RSA key for the same JWK Set, so the server must choose by ``kid``."""
    return rsa_key("rsa-2025")
