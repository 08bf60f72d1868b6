"""Test against a local emulator of every supported vendor's token endpoint.

Importing this package is cheap: the emulator (FastAPI, uvicorn) is only imported when one of
its names (``EmulatorServer``, ``EmulatorClient``, ``Fault``, ...) is first used.

Typical use::

    from airflow_tokens.testing import EmulatorServer, Fault

    with EmulatorServer() as server:
        server.client.inject("sirv", Fault.status(503, retry_after=1))
        ...  # point a connection's host at server.url

or, in pytest, the ``token_emulator`` fixture (function scope, state reset) backed by the
session-scoped ``token_emulator_server`` fixture.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_tokens.testing.emulator import (
        EmulatorClient,
        EmulatorError,
        EmulatorServer,
        EmulatorState,
        Fault,
        create_app,
    )

EMULATOR_CLIENT_ID = "emulator-client-id"
EMULATOR_CLIENT_SECRET = "emulator-client-secret"
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

_LAZY_EXPORTS: dict[str, str] = {
    "EmulatorClient": "emulator",
    "EmulatorError": "emulator",
    "EmulatorServer": "emulator",
    "EmulatorState": "emulator",
    "Fault": "emulator",
    "create_app": "emulator",
}

__all__ = [
    "CUSTOM_ENDPOINT_EXTRA",
    "CUSTOM_ENDPOINT_PATH",
    "EMULATOR_CLIENT_ID",
    "EMULATOR_CLIENT_SECRET",
    "VENDORS",
    "EmulatorClient",
    "EmulatorError",
    "EmulatorServer",
    "EmulatorState",
    "Fault",
    "create_app",
]


def __getattr__(name: str) -> Any:
    """Import the emulator lazily on first access to one of its public names."""
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the module's names, lazy exports included."""
    return sorted(set(globals()) | set(__all__))
