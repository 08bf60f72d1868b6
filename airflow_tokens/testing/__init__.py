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

from airflow_tokens.testing.constants import (
    CUSTOM_ENDPOINT_EXTRA,
    CUSTOM_ENDPOINT_PATH,
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    EMULATOR_KEY_ID,
    EMULATOR_PRIVATE_KEY,
    VENDORS,
)

if TYPE_CHECKING:
    from airflow_tokens.testing.emulator import (
        EmulatorClient,
        EmulatorError,
        EmulatorServer,
        EmulatorState,
        Fault,
        create_app,
    )

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
    "EMULATOR_KEY_ID",
    "EMULATOR_PRIVATE_KEY",
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
