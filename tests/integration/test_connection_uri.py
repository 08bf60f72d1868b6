"""Every connection type of the package survives ``Connection.get_uri()`` and back, and still gets a token.

A URI is how Airflow's test endpoint (the UI's Test button) hands a connection to the hook, and how
many deployments write ``AIRFLOW_CONN_*`` variables and secrets-backend entries.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_tokens.get_provider_info import get_provider_info
from airflow_tokens.memory import clear_memory_cache, forget_connections
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer
from tests.vendors import VENDORS

if TYPE_CHECKING:
    from collections.abc import Iterator

TYPES = sorted(entry["connection-type"] for entry in get_provider_info()["connection-types"])
CASES = {vendor.conn_type: vendor for vendor in VENDORS}
# Extras beyond those the emulator needs, to see them survive the trip.
MORE_EXTRAS: dict[str, dict[str, Any]] = {
    "sirv": {"expires_in": 600},
    "learning360": {"region": "US"},
    "podero": {"environment": "sandbox"},
    "oauth2_client_credentials": {"scope": "read write", "client_auth_method": "client_secret_post"},
}
AWKWARD_LOGIN = "id:with@odd/chars ö"


def test_the_table_covers_every_connection_type() -> None:
    assert set(CASES) == set(TYPES)
    assert "learning360" in TYPES  # a URI scheme starts with a letter (RFC 3986)
    assert not [conn_type for conn_type in TYPES if not conn_type[0].isalpha()]


@pytest.fixture
def fresh_hooks() -> Iterator[None]:
    forget_connections()
    clear_memory_cache()
    yield
    forget_connections()
    clear_memory_cache()


@pytest.mark.parametrize("conn_type", TYPES)
def test_the_uri_round_trip_keeps_every_field(conn_type: str, token_emulator: EmulatorServer) -> None:
    from airflow.models.connection import Connection

    vendor = CASES[conn_type]
    extra = {**vendor.extra, **MORE_EXTRAS.get(conn_type, {})}
    original = Connection(
        conn_id=f"{conn_type}_uri",
        conn_type=conn_type,
        host=token_emulator.url + vendor.host_path,
        login=AWKWARD_LOGIN,
        password="secret with: @ % / ? # & = € 秘密",
        extra=json.dumps({**extra, "cache": "memory"}),
    )
    uri = original.get_uri()
    assert uri.startswith(f"{conn_type.replace('_', '-')}://")
    back = Connection(conn_id=original.conn_id, uri=uri)
    assert (back.conn_type, back.host, back.login, back.password) == (
        conn_type,
        original.host,
        original.login,
        original.password,
    )
    assert back.extra_dejson == {**extra, "cache": "memory"}


@pytest.mark.parametrize("conn_type", TYPES)
def test_a_connection_given_as_a_uri_gets_a_token(
    conn_type: str, token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, fresh_hooks: None
) -> None:
    from airflow.models.connection import Connection

    from airflow_tokens.hooks import get_token_hook

    vendor = CASES[conn_type]
    conn_id = f"{conn_type}_from_uri"
    uri = Connection(
        conn_id=conn_id,
        conn_type=conn_type,
        host=token_emulator.url + vendor.host_path,
        login=EMULATOR_CLIENT_ID,
        password=EMULATOR_CLIENT_SECRET,
        extra=json.dumps({**vendor.extra, **MORE_EXTRAS.get(conn_type, {}), "cache": "memory"}),
    ).get_uri()
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", uri)

    hook = get_token_hook(conn_id)
    assert hook.conn_type == conn_type
    token = hook.get_access_token()
    assert token.token in token_emulator.client.issued_tokens()
    assert token_emulator.client.token_requests(vendor.emulator) == 1


def test_a_connection_of_the_former_360learning_type_is_told_its_new_type(
    monkeypatch: pytest.MonkeyPatch, fresh_hooks: None
) -> None:
    from airflow_tokens.exceptions import TokenConfigError
    from airflow_tokens.hooks import get_token_hook

    conn = {"conn_type": "360learning", "login": "id", "password": "old-type-secret"}
    monkeypatch.setenv("AIRFLOW_CONN_OLD_LEARNING", json.dumps(conn))
    with pytest.raises(TokenConfigError) as info:
        get_token_hook("old_learning")
    assert str(info.value) == (
        "Connection 'old_learning': conn_type: '360learning' was renamed to 'learning360' in "
        "airflow-tokens 0.2; set the connection's type to 'learning360' "
        "(its fields and extras stay as they are)"
    )
