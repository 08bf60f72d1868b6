"""The UI's Test button (POST /api/v2/connections/test) for every connection type."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens.testing import (
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
    EMULATOR_KEY_ID,
    EMULATOR_PRIVATE_KEY,
    EmulatorServer,
)
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


# Each client authentication method of the OAuth2 type, as the form stores its fields (prefixed).
def _oauth2_form_extra(**fields: str) -> str:
    return json.dumps({f"extra__oauth2_client_credentials__{name}": value for name, value in fields.items()})


@pytest.mark.parametrize(
    ("method", "password", "fields"),
    [
        ("client_secret_basic", EMULATOR_CLIENT_SECRET, {}),
        ("client_secret_post", EMULATOR_CLIENT_SECRET, {}),
        ("client_secret_json", EMULATOR_CLIENT_SECRET, {}),
        ("client_secret_jwt", EMULATOR_CLIENT_SECRET, {}),
        # A password field of the form drops the key's line breaks: one line must work as well.
        (
            "private_key_jwt",
            "",
            {"private_key": EMULATOR_PRIVATE_KEY.replace("\n", ""), "key_id": EMULATOR_KEY_ID},
        ),
        ("private_key_jwt", "", {"private_key": EMULATOR_PRIVATE_KEY}),
    ],
)
def test_every_secret_or_assertion_method_passes_the_test(
    api: Any, token_emulator: EmulatorServer, method: str, password: str, fields: dict[str, str]
) -> None:
    extra = _oauth2_form_extra(client_auth_method=method, **fields)
    result = press_test(
        api, "oauth2_client_credentials", f"{token_emulator.url}/oauth2/token", password, extra
    )
    assert result["status"] is True, result
    assert result["message"].startswith("Got a Bearer token valid for"), result
    assert token_emulator.client.token_requests("oauth2") == 1


@pytest.mark.parametrize("method", ["tls_client_auth", "self_signed_tls_client_auth"])
def test_a_client_certificate_method_passes_the_test(
    api: Any, tmp_path_factory: pytest.TempPathFactory, method: str
) -> None:
    from tests.idp import serve_mtls_idp

    with serve_mtls_idp(tmp_path_factory.mktemp("pki")) as mtls:
        if method == "tls_client_auth":
            client_id, cert = mtls.register_tls_client()
        else:
            client_id, cert = mtls.register_self_signed_client()
        extra = _oauth2_form_extra(
            client_auth_method=method,
            ca_bundle=str(mtls.ca_path),
            client_cert=cert.cert_pem,
            client_private_key=cert.key_pem,
        )
        body = {
            "connection_id": "ui_test_mtls",
            "conn_type": "oauth2_client_credentials",
            "host": mtls.token_url,
            "login": client_id,
            "password": "",
            "extra": extra,
        }
        response = api.post("/api/v2/connections/test", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] is True, response.json()
    assert mtls.issued[client_id] == 1
