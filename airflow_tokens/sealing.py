"""The one place where cache entries are encrypted: AES-GCM with a key derived from the connection's secret.

Every entry a shared store keeps (a Variable, an XCom envelope) holds the token and the credential
fingerprint encrypted with a key that scrypt (memory-hard) derives from the token request itself
(which carries the connection's secret), once per process and connection: a stolen entry makes an
offline guess at a weak secret cost tens of milliseconds, not microseconds. Entries 0.2 wrote (a key
from HKDF-SHA256) are still read. Whoever can read the entry but not the connection (a database
dump, a backup, a Variable or XCom reader in the UI or API) learns nothing; a task that can read the
connection derives the same key. The metadata operators need (token type, expiry, when and where it
was obtained, scope) stays in clear and is authenticated: changing it makes the entry unreadable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_tokens.token import AccessToken

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: Version tag of every entry this package writes; entries of another shape are ignored and replaced.
ENTRY_FORMAT = "airflow-tokens/3"
#: The format 0.2 wrote (its key from HKDF): still read, so an upgrade costs no token request; the
#: next token is written in :data:`ENTRY_FORMAT`.
HKDF_FORMAT = "airflow-tokens/2"
#: Every format this package reads.
READABLE_FORMATS = frozenset({ENTRY_FORMAT, HKDF_FORMAT})
#: Earlier formats, recognised only to say that such an entry is replaced rather than unreadable.
OLD_FORMATS = frozenset({"airflow-tokens/1", "airflow-tokens/xcom/1"})
#: The fixed, versioned HKDF context of :data:`HKDF_FORMAT` entries.
HKDF_INFO = b"airflow-tokens/cache-entry-key/v2"
#: scrypt's cost: 2**14 rounds of 8 blocks (16 MiB, about 40 ms), once per process and
#: connection; an offline guess at a weak secret costs the same, where HKDF cost microseconds.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_CONTEXT = b"airflow-tokens/cache-entry-salt/v3\0"
#: What stays in clear (and is authenticated), by format.
_CLEAR_FIELDS = {
    HKDF_FORMAT: ("token_type", "expires_at", "obtained_at", "scope", "obtained_by"),
    ENTRY_FORMAT: ("token_type", "expires_at", "obtained_at", "scope", "obtained_by", "refresh_after"),
}
_NONCE_BYTES = 12
#: Keys derived in this process, by a digest of (format, material, cache key): derived once, kept.
_KEYS: dict[bytes, AESGCM] = {}
_KEYS_LOCK = threading.Lock()


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
    :param asked: what the call asked for beyond the connection's extras (a scope, an audience): kept in
        clear for ``airflow-tokens status`` and bound to the entry.
    """

    material: bytes = field(repr=False)
    cache_key: str
    asked: Mapping[str, str] | None = None

    def _key_id(self, fmt: str) -> bytes:
        return hashlib.sha256(b"\0".join((fmt.encode(), self.material, self.cache_key.encode()))).digest()

    def _aead(self, fmt: str) -> AESGCM:
        """Return the cipher of ``fmt`` entries, deriving its key on first use in this process."""
        key_id = self._key_id(fmt)
        aead = _KEYS.get(key_id)
        if aead is None:
            # Derived on first use: a task served from process memory never needs cryptography.
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            with _KEYS_LOCK:
                aead = _KEYS.get(key_id)
                if aead is None:
                    aead = _KEYS[key_id] = AESGCM(self._derive(fmt))
        return aead

    def _derive(self, fmt: str) -> bytes:
        if fmt == HKDF_FORMAT:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF

            return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(self.material)
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        # The salt is the connection's cache key: every process that reads the connection derives the
        # same key, and no two connections share one.
        salt = hashlib.sha256(_SALT_CONTEXT + self.cache_key.encode()).digest()
        return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(self.material)

    @property
    def ready(self) -> bool:
        """Say whether this connection's key is derived in this process (opening and sealing are fast)."""
        return self._key_id(ENTRY_FORMAT) in _KEYS

    def prepare(self) -> None:
        """Derive this connection's key now (tens of milliseconds): the async path calls it off the loop."""
        self._aead(ENTRY_FORMAT)

    def _associated_data(self, fmt: str, clear: dict[str, Any]) -> bytes:
        bound = [fmt, self.cache_key, *(clear.get(name) for name in _CLEAR_FIELDS[fmt])]
        if "asked" in clear:  # only entries of a token asked for per call have it: older ones read alike
            bound.append(clear["asked"])
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
            "refresh_after": token.refresh_after.timestamp() if token.refresh_after is not None else None,
        }
        if self.asked:
            clear["asked"] = dict(self.asked)
        secret = json.dumps({"token": token.token, "fingerprint": entry.fingerprint}).encode()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead(ENTRY_FORMAT).encrypt(
            nonce, secret, self._associated_data(ENTRY_FORMAT, clear)
        )
        return {"format": ENTRY_FORMAT, **clear, "sealed": base64.b64encode(sealed).decode()}

    def open(self, raw: Any) -> CacheEntry:
        """Return the entry in a stored value; raise :class:`UnusableEntry` saying why it cannot be used."""
        from cryptography.exceptions import InvalidTag

        try:
            data = json.loads(raw) if isinstance(raw, str | bytes) else raw
        except ValueError:
            raise UnusableEntry("not JSON") from None
        fmt = data.get("format") if isinstance(data, dict) else None
        if not isinstance(data, dict) or fmt not in READABLE_FORMATS:
            if fmt in OLD_FORMATS:
                raise UnusableEntry(f"written by an older airflow-tokens ({fmt})")
            raise UnusableEntry("not an airflow-tokens cache entry")
        try:
            sealed = base64.b64decode(str(data.get("sealed", "")), validate=True)
            plain = self._aead(str(fmt)).decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], self._associated_data(str(fmt), data)
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
