"""The UI's Test button (POST /api/v2/connections/test) for every connection type."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer
from tests.vendors import VENDORS

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.airflow_db

# Every connection type of the package: Airflow's test endpoint hands the connection to the hook as
# a URI, and each type survives that.
CASES = {vendor.conn_type: vendor for vendor in VENDORS}


def test_every_connection_type_of_the_package_is_tested() -> None:
    from airflow_tokens.get_provider_info import get_provider_info

    types = {entry["connection-type"] for entry in get_provider_info()["connection-types"]}
    assert types == set(CASES)


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
    vendor = CASES[conn_type]
    url = token_emulator.url + vendor.host_path
    result = press_test(api, conn_type, url, EMULATOR_CLIENT_SECRET, json.dumps(vendor.extra))
    assert result["status"] is True, result
    valid_for = re.match(r"Got a Bearer token valid for (\d+) s", result["message"])
    assert valid_for is not None, result
    # An absolute expiry time (the custom endpoint's expiresAt) may read a second short.
    assert vendor.issued_lifetime - 2 <= int(valid_for.group(1)) <= vendor.issued_lifetime, result
    assert token_emulator.client.token_requests(vendor.emulator) == 1


@pytest.mark.parametrize("conn_type", sorted(CASES))
def test_failure_shows_vendor_message_never_secret(
    api: Any, token_emulator: EmulatorServer, conn_type: str
) -> None:
    vendor = CASES[conn_type]
    url = token_emulator.url + vendor.host_path
    result = press_test(api, conn_type, url, "wrong-secret-value-42", json.dumps(vendor.extra))
    assert result["status"] is False
    assert "HTTP 401 after 1 attempt" in result["message"]
    assert "wrong-secret-value-42" not in result["message"]


@pytest.mark.parametrize("conn_type", sorted(CASES))
def test_an_unknown_extra_fails_the_test_before_any_request(
    api: Any, token_emulator: EmulatorServer, conn_type: str
) -> None:
    vendor = CASES[conn_type]
    extra = json.dumps({**vendor.extra, "refresh_margn": "30", f"extra__{conn_type}__cache": "memory"})
    result = press_test(api, conn_type, token_emulator.url + vendor.host_path, EMULATOR_CLIENT_SECRET, extra)
    assert result["status"] is False
    assert (
        f"extra: 'refresh_margn' is not an extra of {conn_type} connections (did you mean 'refresh_margin'?)"
        in result["message"]
    )
    assert "cache'" not in result["message"].split("; known extras")[0]  # the form's prefixed key is known
    assert token_emulator.client.token_requests(vendor.emulator) == 0
