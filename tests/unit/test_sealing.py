from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from airflow_tokens.sealing import CacheEntry, EntrySeal, UnusableEntry
from airflow_tokens.token import AccessToken

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TOKEN = AccessToken("tok-9b1f33c4a2", "Bearer", NOW + timedelta(hours=1), NOW, ("read", "write"))
ENTRY = CacheEntry(TOKEN, "fingerprint-123", "worker-1")
SEAL = EntrySeal(b'["POST","https://api.example.com/token",{"clientSecret":"s3cr3t"}]', "sirv.sirv_default")


def test_round_trip_keeps_everything_and_shows_no_secret() -> None:
    sealed = SEAL.seal(ENTRY)
    text = json.dumps(sealed)
    assert "tok-9b1f33c4a2" not in text
    assert "fingerprint-123" not in text
    assert "s3cr3t" not in text
    # what operators need stays readable
    assert sealed["token_type"] == "Bearer"
    assert sealed["expires_at"] == TOKEN.expires_at.timestamp()
    assert sealed["obtained_by"] == "worker-1"
    assert sealed["scope"] == ["read", "write"]
    assert SEAL.open(text) == ENTRY
    assert SEAL.open(sealed) == ENTRY


def test_each_seal_uses_a_new_nonce() -> None:
    assert SEAL.seal(ENTRY)["sealed"] != SEAL.seal(ENTRY)["sealed"]


def test_another_secret_cannot_open_it() -> None:
    rotated = EntrySeal(
        b'["POST","https://api.example.com/token",{"clientSecret":"n3w"}]', "sirv.sirv_default"
    )
    with pytest.raises(UnusableEntry, match="cannot be decrypted with this connection's credentials"):
        rotated.open(SEAL.seal(ENTRY))


def test_an_entry_cannot_be_moved_to_another_cache_key() -> None:
    other_key = EntrySeal(SEAL.material, "sirv.other")
    with pytest.raises(UnusableEntry, match="cannot be decrypted"):
        other_key.open(SEAL.seal(ENTRY))


@pytest.mark.parametrize(
    ("field", "value"),
    [("expires_at", 4102444800.0), ("token_type", "MAC"), ("scope", ["admin"]), ("obtained_by", "evil")],
)
def test_tampered_metadata_is_detected(field: str, value: object) -> None:
    sealed = SEAL.seal(ENTRY)
    sealed[field] = value
    with pytest.raises(UnusableEntry, match="altered"):
        SEAL.open(sealed)


def test_tampered_ciphertext_is_detected() -> None:
    sealed = SEAL.seal(ENTRY)
    raw = bytearray(base64.b64decode(sealed["sealed"]))
    raw[-1] ^= 1
    sealed["sealed"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(UnusableEntry, match="cannot be decrypted"):
        SEAL.open(sealed)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not JSON"),
        ("[1]", "not an airflow-tokens cache entry"),
        ('{"format": "airflow-tokens/1", "token": "x"}', r"older airflow-tokens \(airflow-tokens/1\)"),
        ('{"format": "airflow-tokens/xcom/1"}', "older airflow-tokens"),
        ('{"format": "airflow-tokens/2", "sealed": "%%%"}', "cannot be decrypted"),
    ],
)
def test_foreign_and_old_entries_say_why(raw: str, reason: str) -> None:
    with pytest.raises(UnusableEntry, match=reason):
        SEAL.open(raw)


def test_new_entries_are_sealed_with_a_memory_hard_key_derived_once_per_process() -> None:
    import hashlib

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    material, cache_key = b'["POST", "https://idp.example.com", "a weak secret: summer2024"]', "sirv.scrypt"
    seal = EntrySeal(material, cache_key)
    assert not seal.ready
    now = datetime.now(UTC)
    sealed = seal.seal(CacheEntry(AccessToken("tok-v3", "Bearer", now + timedelta(hours=1), now), "fp"))
    assert sealed["format"] == "airflow-tokens/3"
    assert seal.ready
    assert EntrySeal(material, cache_key).ready  # kept for the process, not per object
    # The key is scrypt's (N=2**14, r=8, p=1), salted with the cache key: derived here independently.
    salt = hashlib.sha256(b"airflow-tokens/cache-entry-salt/v3\0" + cache_key.encode()).digest()
    key = Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(material)
    blob = base64.b64decode(sealed["sealed"])
    names = ("token_type", "expires_at", "obtained_at", "scope", "obtained_by", "refresh_after")
    clear = {name: sealed[name] for name in names}
    bound = json.dumps(["airflow-tokens/3", cache_key, *clear.values()], separators=(",", ":")).encode()
    assert json.loads(AESGCM(key).decrypt(blob[:12], blob[12:], bound))["token"] == "tok-v3"
    assert seal.open(sealed).token.token == "tok-v3"
