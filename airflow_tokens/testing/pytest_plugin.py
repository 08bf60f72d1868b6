"""Provide pytest fixtures that run the token endpoint emulator.

Registered through the ``pytest11`` entry point ``airflow_tokens``. The module imports nothing
heavy: FastAPI and uvicorn are only imported when a fixture is first used.

- ``token_emulator_server`` (session scope): one :class:`~airflow_tokens.testing.EmulatorServer`
  on ``127.0.0.1`` and a free port, started once and stopped at the end of the session.
- ``token_emulator`` (function scope): the same server, its state (counts, request log, faults,
  issued tokens, extra credentials, configuration) reset before the test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_tokens.testing.emulator import EmulatorServer


@pytest.fixture(scope="session")
def token_emulator_server() -> Iterator[EmulatorServer]:
    """Run one emulator server for the whole test session."""
    from airflow_tokens.testing.emulator import EmulatorServer

    server = EmulatorServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def token_emulator(token_emulator_server: EmulatorServer) -> EmulatorServer:
    """Return the session's emulator server with its state reset to the defaults."""
    token_emulator_server.state.reset()
    return token_emulator_server
