"""The one place where cache entries are encrypted: AES-GCM with a key derived from the connection's secret.

Every entry a shared store keeps (a Variable, an XCom envelope) holds the token and the credential
fingerprint encrypted with a key that HKDF-SHA256 derives from the token request itself (which
carries the connection's secret). Whoever can read the entry but not the connection (a database
dump, a backup, a Variable or XCom reader in the UI or API) learns nothing; a task that can read the
connection derives the same key. The metadata operators need (token type, expiry, when and where it
was obtained, scope) stays in clear and is authenticated: changing it makes the entry unreadable.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_tokens.token import AccessToken

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: Version tag of every entry this package writes; entries of another shape are ignored and replaced.
ENTRY_FORMAT = "airflow-tokens/2"
#: Earlier formats, recognised only to say that such an entry is replaced rather than unreadable.
OLD_FORMATS = frozenset({"airflow-tokens/1", "airflow-tokens/xcom/1"})
#: The fixed, versioned HKDF context; a new context (new format) makes old keys unusable on purpose.
HKDF_INFO = b"airflow-tokens/cache-entry-key/v2"
_CLEAR_FIELDS = ("token_type", "expires_at", "obtained_at", "scope", "obtained_by")
_NONCE_BYTES = 12


class UnusableEntry(ValueError):
    """Say why a stored entry cannot be used (foreign, older format, other credentials, tampered)."""


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """
    Pair a token with the fingerprint of the request that produced it, and the host that fetched it.

    :param token: the cached token.
    :param fingerprint: digest of the request that obtained it (see ``TokenRequest.fingerprint``).
    :param obtained_by: the host name of the process that fetched it.
    """

    token: AccessToken
    fingerprint: str
    obtained_by: str = ""


@dataclass(frozen=True)
class EntrySeal:
    """
    Encrypt and decrypt the cache entries of one connection.

    :param material: the bytes the key is derived from: the token request with its credentials.
    :param cache_key: the cache key; it is bound to every entry, so entries cannot be swapped.
    """

    material: bytes = field(repr=False)
    cache_key: str

    @cached_property
    def _aead(self) -> AESGCM:
        # Derived on first use: a task served from process memory never needs cryptography.
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(self.material)
        return AESGCM(key)

    def _associated_data(self, clear: dict[str, Any]) -> bytes:
        bound = [ENTRY_FORMAT, self.cache_key, *(clear.get(name) for name in _CLEAR_FIELDS)]
        return json.dumps(bound, separators=(",", ":"), ensure_ascii=False).encode()

    def seal(self, entry: CacheEntry) -> dict[str, Any]:
        """Return the storable form: metadata in clear, token and fingerprint encrypted."""
        token = entry.token
        clear: dict[str, Any] = {
            "token_type": token.token_type,
            "expires_at": token.expires_at.timestamp(),
            "obtained_at": token.obtained_at.timestamp(),
            "scope": list(token.scope) if token.scope is not None else None,
            "obtained_by": entry.obtained_by,
        }
        secret = json.dumps({"token": token.token, "fingerprint": entry.fingerprint}).encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, secret, self._associated_data(clear))
        return {"format": ENTRY_FORMAT, **clear, "sealed": base64.b64encode(sealed).decode()}

    def open(self, raw: Any) -> CacheEntry:
        """Return the entry in a stored value; raise :class:`UnusableEntry` saying why it cannot be used."""
        from cryptography.exceptions import InvalidTag

        try:
            data = json.loads(raw) if isinstance(raw, str | bytes) else raw
        except ValueError:
            raise UnusableEntry("not JSON") from None
        if not isinstance(data, dict) or data.get("format") != ENTRY_FORMAT:
            fmt = data.get("format") if isinstance(data, dict) else None
            if fmt in OLD_FORMATS:
                raise UnusableEntry(f"written by an older airflow-tokens ({fmt})")
            raise UnusableEntry("not an airflow-tokens cache entry")
        try:
            sealed = base64.b64decode(str(data.get("sealed", "")), validate=True)
            plain = self._aead.decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], self._associated_data(data)
            )
        except (InvalidTag, ValueError):
            raise UnusableEntry(
                "cannot be decrypted with this connection's credentials (rotated, another connection, "
                "or altered)"
            ) from None
        secret = json.loads(plain)
        try:
            token = AccessToken.from_dict({**data, "token": secret.get("token")})
        except ValueError as exc:
            raise UnusableEntry(str(exc)) from None
        return CacheEntry(token, str(secret.get("fingerprint", "")), str(data.get("obtained_by") or ""))
