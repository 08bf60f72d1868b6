"""The emulator's fixed facts: its credentials, the vendors it emulates, the custom endpoint's description."""

from __future__ import annotations

from typing import Any

EMULATOR_CLIENT_ID = "emulator-client-id"
EMULATOR_CLIENT_SECRET = "emulator-client-secret"
#: The private key the emulator accepts client assertions (``private_key_jwt``) of ``EMULATOR_CLIENT_ID``
#: from: an EC P-256 key made for the emulator and published here, so it protects nothing.
EMULATOR_PRIVATE_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiWiwZa4QktYGSVo1
YhvuUr8xzZ/dqu1EQT6pZ+X6nO2hRANCAAQG8CrBs9x4hZFJmuLvhKSqQ+d4oR7F
oi5ORZA6qUyUPgC9TWD32OL0inS9MFYY+0eWf/PXgStMfbenEfkqppE1
-----END PRIVATE KEY-----
"""
#: The ``kid`` the emulator knows that key by (an assertion may also leave ``kid`` out).
EMULATOR_KEY_ID = "emulator-key-1"
#: The emulated token endpoints: the seed vendors, any OAuth2 server, and a custom endpoint of no vendor
#: (HTTP Basic and a form; a nested answer with an ISO 8601 expiry) for the token_endpoint connection type.
VENDORS: tuple[str, ...] = ("sirv", "learning360", "manis", "podero", "oauth2", "custom")
#: The path of the custom endpoint's token URL on the emulator.
CUSTOM_ENDPOINT_PATH = "/api/v3/auth/sessions"
#: The extras of a ``token_endpoint`` connection that describe the custom endpoint.
CUSTOM_ENDPOINT_EXTRA: dict[str, Any] = {
    "credentials_in": "basic",
    "body": {"grant": "session"},
    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    "token_field": "data.session.value",
    "token_type_field": "data.session.type",
    "expires_at_field": "data.session.expiresAt",
    "scope_field": "data.session.scopes",
}
