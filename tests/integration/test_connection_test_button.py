"""The UI's Test button (POST /api/v2/connections/test) for every connection type."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.airflow_db

# conn type -> (emulator vendor, path appended to the emulator URL for the host, the emulator's lifetime).
# Not "360learning": Airflow's test endpoint hands the connection to the hook as a URI, and a URI scheme
# cannot start with a digit (RFC 3986), so Airflow itself cannot parse it back; see the README.
CASES = {
    "sirv": ("sirv", "", 1500),
    "manis": ("manis", "", 5400),
    "podero": ("podero", "", 32400),
    "oauth2_client_credentials": ("oauth2", "/oauth2/token", 4500),
}


@pytest.fixture(scope="module")
def api(airflow_db: object) -> Iterator[Any]:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app()) as client:
        yield client


def press_test(
    api: Any, conn_type: str, host: str, password: str, extra: str | None = None
) -> dict[str, Any]:
    body = {
        "connection_id": f"ui_test_{conn_type}",
        "conn_type": conn_type,
        "host": host,
        "login": EMULATOR_CLIENT_ID,
        "password": password,
        "extra": extra,
    }
    response = api.post("/api/v2/connections/test", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize("conn_type", sorted(CASES))
def test_success_shows_type_and_lifetime(api: Any, token_emulator: EmulatorServer, conn_type: str) -> None:
    vendor, path, lifetime = CASES[conn_type]
    result = press_test(api, conn_type, token_emulator.url + path, EMULATOR_CLIENT_SECRET)
    assert result["status"] is True, result
    assert result["message"].startswith(f"Got a Bearer token valid for {lifetime} s")
    assert token_emulator.client.token_requests(vendor) == 1


@pytest.mark.parametrize("conn_type", sorted(CASES))
def test_failure_shows_vendor_message_never_secret(
    api: Any, token_emulator: EmulatorServer, conn_type: str
) -> None:
    _, path, _ = CASES[conn_type]
    result = press_test(api, conn_type, token_emulator.url + path, "wrong-secret-value-42")
    assert result["status"] is False
    assert "HTTP 401 after 1 attempt" in result["message"]
    assert "wrong-secret-value-42" not in result["message"]


@pytest.mark.parametrize("conn_type", sorted(CASES))
def test_an_unknown_extra_fails_the_test_before_any_request(
    api: Any, token_emulator: EmulatorServer, conn_type: str
) -> None:
    vendor, path, _ = CASES[conn_type]
    extra = json.dumps({"refresh_margn": "30", f"extra__{conn_type}__cache": "memory"})
    result = press_test(api, conn_type, token_emulator.url + path, EMULATOR_CLIENT_SECRET, extra)
    assert result["status"] is False
    assert (
        f"extra: 'refresh_margn' is not an extra of {conn_type} connections (did you mean 'refresh_margin'?)"
        in result["message"]
    )
    assert "cache'" not in result["message"].split("; known extras")[0]  # the form's prefixed key is known
    assert token_emulator.client.token_requests(vendor) == 0
