"""JWT client assertions (RFC 7523 section 2.2, OpenID Connect Core section 9): the key, then the signature.

A ``client_secret_jwt`` client signs with its secret (HMAC), a ``private_key_jwt`` client with its
private key; either sends a fresh assertion with every token request. The key is loaded and checked
against the algorithm when the connection is read, before any request; no message, log line or repr
ever carries key material (cryptography's and PyJWT's own messages are not passed on).
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_tokens.connection import ConnectionSettings

#: RFC 7523 section 2.2: the ``client_assertion_type`` of a JWT client assertion.
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: How long an assertion is valid: a minute, as Entra ID and Okta advise (Okta refuses over an hour).
ASSERTION_LIFETIME = 60
#: The algorithms each kind of key signs with, the first being the default.
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS = ("RS256", "PS256", "RS384", "RS512", "PS384", "PS512")
#: EC keys sign with the algorithm of their curve (RFC 7518 section 3.4).
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
EDDSA_ALGORITHMS = ("EdDSA",)


@dataclass(frozen=True, slots=True)
class ClientAssertion:
    """
    Sign the client assertions of one connection.

    :param client_id: the client ID: ``iss`` and ``sub`` of every assertion.
    :param audience: the ``aud`` claim: the token endpoint URL, or what the server asks for.
    :param algorithm: the JWS algorithm.
    :param key: the signing key: the secret's bytes (HMAC) or a cryptography private key.
    :param key_id: the ``kid`` header, if any.
    :param digest: a digest of the key, part of what decides the cache key and the sealing key.
    :param thumbprints: the ``x5t#S256`` and ``x5t`` headers naming the key's certificate, if it has one.
    """

    client_id: str
    audience: str
    algorithm: str
    key: Any = field(repr=False)
    key_id: str | None = None
    digest: str = field(default="", repr=False)
    thumbprints: tuple[tuple[str, str], ...] = ()

    def sign(self, now: float | None = None) -> str:
        """Return a new assertion: ``iss`` = ``sub`` = client ID, ``aud``, a fresh ``jti``, one minute."""
        import jwt

        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.audience,
            "jti": uuid.uuid4().hex,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        headers = dict(self.thumbprints)
        if self.key_id:
            headers["kid"] = self.key_id
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers or None)

    def form_fields(self) -> dict[str, str]:
        """Return the form fields that carry a newly signed assertion (RFC 7523 section 2.2)."""
        return {"client_assertion_type": JWT_BEARER, "client_assertion": self.sign()}

    def material(self) -> list[str]:
        """Return what of the assertion decides the token: who, for whom, how, and the key's digest."""
        who = [self.client_id, self.audience, self.algorithm, self.key_id or "", self.digest]
        return who + [value for _, value in self.thumbprints]


def _digest(data: bytes) -> str:
    return hashlib.sha256(b"airflow-tokens/assertion-key\0" + data).hexdigest()


def read_certificate(settings: ConnectionSettings, name: str) -> tuple[bytes, str | None, Any]:
    """Return the PEM bytes of the certificate in extra ``name`` (PEM text or a path), its path, and it."""
    from cryptography import x509

    value = settings.extra(name, str, "").strip()
    path = None
    if value.startswith("-----BEGIN "):
        pem = normalize_pem(value).encode()
    else:
        path = os.path.expanduser(value)
        try:
            with open(path, "rb") as file:
                pem = file.read()
        except OSError as exc:
            raise settings.error(
                name,
                "is neither PEM text nor a file readable on this host "
                f"({exc.strerror or type(exc).__name__})",
            ) from None
    try:
        return pem, path, x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise settings.error(name, "is not a PEM certificate (BEGIN CERTIFICATE)") from None


def same_public_key(key: Any, certificate: Any) -> bool:
    """Tell whether the private ``key`` is the key of ``certificate``."""
    from cryptography.hazmat.primitives import serialization

    encoding, public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    theirs = certificate.public_key().public_bytes(encoding, public)
    return bool(key.public_key().public_bytes(encoding, public) == theirs)


def _thumbprints(certificate: Any) -> tuple[tuple[str, str], ...]:
    """Return the ``x5t#S256`` and ``x5t`` headers of ``certificate`` (RFC 7515 sections 4.1.7 and 4.1.8)."""
    from cryptography.hazmat.primitives import serialization

    der = certificate.public_bytes(serialization.Encoding.DER)
    return tuple(
        (name, base64.urlsafe_b64encode(digest(der).digest()).rstrip(b"=").decode())
        for name, digest in (("x5t#S256", hashlib.sha256), ("x5t", hashlib.sha1))
    )


def _pem(settings: ConnectionSettings, text_field: str, file_field: str) -> tuple[bytes, str]:
    """Return the PEM text of ``text_field`` or the file ``file_field`` names, and the field it came from."""
    text = settings.extra(text_field, str, "").strip()
    path = settings.extra(file_field, str, "").strip()
    if text and path:
        raise settings.error(text_field, f"is set together with {file_field}; keep one")
    if path:
        try:
            with open(os.path.expanduser(path), "rb") as file:
                return file.read(), file_field
        except OSError as exc:
            raise settings.error(
                file_field, f"cannot be read on this host ({exc.strerror or type(exc).__name__})"
            ) from None
    if not text:
        raise settings.error(
            text_field, f"is missing: set the PEM private key here, or its path in {file_field}"
        )
    return normalize_pem(text).encode(), text_field


def normalize_pem(text: str) -> str:
    """Return PEM text with its line breaks: a one-line paste (a form's password field drops them) works."""
    text = text.strip().replace("\\n", "\n")
    if "\n" in text or not text.startswith("-----BEGIN "):
        return text
    head_end = text.index("-----", len("-----BEGIN ")) + 5
    tail_start = text.rindex("-----END ")
    body = "".join(text[head_end:tail_start].split())
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([text[:head_end], *lines, text[tail_start:]]) + "\n"


def load_private_key(
    settings: ConnectionSettings,
    text_field: str,
    file_field: str,
    passphrase: str,
    passphrase_field: str | None = "private_key_passphrase",
) -> Any:
    """Return the private key of ``text_field`` (PEM text) or ``file_field`` (a path), decrypted if asked."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data, source = _pem(settings, text_field, file_field)
    try:
        return load_pem_private_key(data, password=passphrase.encode() if passphrase else None)
    except TypeError:
        # cryptography: "Password was not given but private key is encrypted", or the reverse.
        if passphrase_field is None:
            raise settings.error(source, "the key is encrypted; give it unencrypted") from None
        if not passphrase:
            raise settings.error(source, f"the key is encrypted: set {passphrase_field}") from None
        raise settings.error(passphrase_field, "is set, but the key is not encrypted") from None
    except ValueError:
        if passphrase and passphrase_field and b"ENCRYPTED" in data:
            raise settings.error(passphrase_field, "does not decrypt the private key") from None
        raise settings.error(
            source,
            "is not a PEM private key that loads (PKCS#8 or traditional RSA/EC, BEGIN ... PRIVATE KEY)",
        ) from None
    except Exception as exc:  # an unsupported key type, a broken structure: never pass its text on
        raise settings.error(source, f"cannot be loaded ({type(exc).__name__})") from None


def _key_algorithms(key: Any) -> tuple[str, ...]:
    """Return the algorithms ``key`` can sign with, the default first."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = EC_ALGORITHMS.get(key.curve.name)
        return (algorithm,) if algorithm else ()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return EDDSA_ALGORITHMS
    return ()


def _key_kind(key: Any) -> str:
    """Name the kind of ``key`` for a message (never its material)."""
    curve = getattr(getattr(key, "curve", None), "name", None)
    name = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
    return f"{name} ({curve})" if curve else name


def private_key_assertion(
    settings: ConnectionSettings,
    client_id: str,
    audience: str,
    algorithm: str,
    key_id: str,
    passphrase: str,
    certificate_field: str | None = None,
) -> ClientAssertion:
    """Return the signer of a ``private_key_jwt`` connection, its key checked to fit ``algorithm``.

    With a certificate in ``certificate_field`` (Microsoft Entra ID names the key by it), the assertion's
    header carries its thumbprints; the certificate must be the key's.
    """
    from cryptography.hazmat.primitives import serialization

    key = load_private_key(settings, "private_key", "private_key_file", passphrase)
    usable = _key_algorithms(key)
    if not usable:
        raise settings.error(
            "private_key", f"a {_key_kind(key)} key cannot sign a client assertion (use RSA, EC or Ed25519)"
        )
    chosen = usable[0] if algorithm == "auto" else algorithm
    if chosen not in usable:
        raise settings.error(
            "signing_algorithm",
            f"{algorithm} does not fit a {_key_kind(key)} key; it signs with {', '.join(usable)}",
        )
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    thumbprints: tuple[tuple[str, str], ...] = ()
    if certificate_field and settings.extra(certificate_field, str, "").strip():
        _, _, certificate = read_certificate(settings, certificate_field)
        if not same_public_key(key, certificate):
            raise settings.error(
                certificate_field, "is not the certificate of private_key (its public key differs)"
            )
        thumbprints = _thumbprints(certificate)
    return ClientAssertion(client_id, audience, chosen, key, key_id or None, _digest(der), thumbprints)


def secret_assertion(
    settings: ConnectionSettings, client_id: str, secret: str, audience: str, algorithm: str, key_id: str
) -> ClientAssertion:
    """Return the assertion signer of a ``client_secret_jwt`` connection (HMAC with the client secret)."""
    chosen = HMAC_ALGORITHMS[0] if algorithm == "auto" else algorithm
    if chosen not in HMAC_ALGORITHMS:
        raise settings.error(
            "signing_algorithm",
            f"{algorithm} does not fit client_secret_jwt, which signs with the secret: "
            f"{', '.join(HMAC_ALGORITHMS)}",
        )
    key = secret.encode()
    return ClientAssertion(client_id, audience, chosen, key, key_id or None, _digest(key))
