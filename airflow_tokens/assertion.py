"""JWT client assertions (RFC 7523 section 2.2, OpenID Connect Core section 9): the key, then the signature.

A ``client_secret_jwt`` client signs with its secret (HMAC), a ``private_key_jwt`` client with its
private key; either sends a fresh assertion with every token request. The key is loaded and checked
against the algorithm when the connection is read, before any request; no message, log line or repr
ever carries key material (cryptography's and PyJWT's own messages are not passed on).
"""

from __future__ import annotations

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
    """

    client_id: str
    audience: str
    algorithm: str
    key: Any = field(repr=False)
    key_id: str | None = None
    digest: str = field(default="", repr=False)

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
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)

    def form_fields(self) -> dict[str, str]:
        """Return the form fields that carry a newly signed assertion (RFC 7523 section 2.2)."""
        return {"client_assertion_type": JWT_BEARER, "client_assertion": self.sign()}

    def material(self) -> list[str]:
        """Return what of the assertion decides the token: who, for whom, how, and the key's digest."""
        return [self.client_id, self.audience, self.algorithm, self.key_id or "", self.digest]


def _digest(data: bytes) -> str:
    return hashlib.sha256(b"airflow-tokens/assertion-key\0" + data).hexdigest()


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
    settings: ConnectionSettings, client_id: str, audience: str, algorithm: str, key_id: str, passphrase: str
) -> ClientAssertion:
    """Return the signer of a ``private_key_jwt`` connection, its key checked to fit ``algorithm``."""
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
    return ClientAssertion(client_id, audience, chosen, key, key_id or None, _digest(der))


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
