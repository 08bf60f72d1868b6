"""The vendors under test, and helpers for the cache Variable in the session's metadata database."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_tokens.cache import VariableStore, forget_connections
from airflow_tokens.hooks.learning360 import Learning360TokenHook
from airflow_tokens.hooks.manis import ManisTokenHook
from airflow_tokens.hooks.oauth2 import OAuth2ClientCredentialsHook
from airflow_tokens.hooks.podero import PoderoTokenHook
from airflow_tokens.hooks.sirv import SirvTokenHook
from airflow_tokens.hooks.token_endpoint import TokenEndpointHook
from airflow_tokens.response import ResponseFields
from airflow_tokens.testing import (
    CUSTOM_ENDPOINT_EXTRA,
    CUSTOM_ENDPOINT_PATH,
    EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET,
)

if TYPE_CHECKING:
    import pytest

    from airflow_tokens.hooks.base import TokenHook
    from airflow_tokens.sealing import CacheEntry


@dataclass(frozen=True)
class VendorCase:
    """
    One vendor under test.

    :param hook: the hook class.
    :param emulator: the emulator's name for the vendor.
    :param lifetime: the token lifetime the vendor documents (the emulator's default).
    :param unauthorized: the vendor's own text when the credentials are wrong.
    :param example_dag: the DAG id of the vendor's example in dags_example/.
    :param host_path: appended to the emulator URL to form the connection host (oauth2: the token URL).
    :param extra: the connection's extras (merged under those a test passes).
    :param fields: how the connection makes the hook read the answer (default: the hook's own fields).
    """

    hook: type[TokenHook]
    emulator: str
    lifetime: float
    unauthorized: str
    example_dag: str
    host_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    fields: ResponseFields | None = None

    @property
    def conn_type(self) -> str:
        return self.hook.conn_type

    @property
    def conn_id(self) -> str:
        return self.hook.default_conn_name

    @property
    def variable_key(self) -> str:
        return VariableStore.variable_key(f"{self.conn_type}.{self.conn_id}")

    @property
    def response_fields(self) -> ResponseFields:
        return self.fields or self.hook.response_fields

    @property
    def token_field(self) -> str:
        return self.response_fields.token

    @property
    def expiry_field(self) -> str:
        fields = self.response_fields
        return fields.expires_in or fields.expires_at or ""

    def conn(self, url: str, **overrides: Any) -> dict[str, Any]:
        """Return the connection JSON pointing at the emulator at ``url`` (None values are left out)."""
        conn = {
            "conn_type": self.conn_type,
            "host": url + self.host_path,
            "login": EMULATOR_CLIENT_ID,
            "password": EMULATOR_CLIENT_SECRET,
            **overrides,
        }
        if self.extra:
            conn["extra"] = {**self.extra, **(overrides.get("extra") or {})}
        return {key: value for key, value in conn.items() if value is not None}

    def open_entry(self, raw: Any) -> CacheEntry:
        """Return the cache entry sealed in ``raw`` (opened with this vendor's default connection)."""
        return self.hook().seal.open(raw)

    def configure(self, monkeypatch: pytest.MonkeyPatch, url: str, **overrides: Any) -> dict[str, Any]:
        """Set ``AIRFLOW_CONN_<default conn id>`` for this vendor and return the connection JSON."""
        conn = self.conn(url, **overrides)
        monkeypatch.setenv(f"AIRFLOW_CONN_{self.conn_id.upper()}", json.dumps(conn))
        forget_connections()  # the connection changed: new hooks must see it now
        return conn


SIRV = VendorCase(SirvTokenHook, "sirv", 1200, "Wrong credentials", "sirv_token_example")
LEARNING360 = VendorCase(
    Learning360TokenHook, "360learning", 3600, "invalid_client", "learning360_token_example"
)
MANIS = VendorCase(ManisTokenHook, "manis", 3600, "Invalid merchant credentials", "manis_token_example")
PODERO = VendorCase(
    PoderoTokenHook, "podero", 36000, "invalid_client - Invalid client credentials.", "podero_token_example"
)
OAUTH2 = VendorCase(
    OAuth2ClientCredentialsHook,
    "oauth2",
    3600,
    "invalid_client - Client authentication failed.",
    "oauth2_token_example",
    host_path="/oauth2/token",
)
TOKEN_ENDPOINT = VendorCase(
    TokenEndpointHook,
    "custom",
    900,
    "Invalid API key or secret.",
    "token_endpoint_example",
    host_path=CUSTOM_ENDPOINT_PATH,
    extra=CUSTOM_ENDPOINT_EXTRA,
    fields=ResponseFields(
        token="data.session.value",
        token_type="data.session.type",
        expires_in=None,
        expires_at="data.session.expiresAt",
        scope="data.session.scopes",
    ),
)
VENDORS = (SIRV, LEARNING360, MANIS, PODERO, OAUTH2, TOKEN_ENDPOINT)


def variable_row(key: str) -> Any:
    """Return the Variable row of ``key`` in the metadata database, or None."""
    from airflow.models.variable import Variable as VariableRow
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(VariableRow).filter(VariableRow.key == key).one_or_none()
        if row is not None:
            session.expunge(row)
        return row


def set_variable(key: str, value: str) -> None:
    """Write a Variable straight into the metadata database."""
    from airflow.models.variable import Variable as VariableRow

    VariableRow.set(key, value)


def delete_variable(key: str) -> None:
    """Delete a Variable from the metadata database."""
    from airflow.models.variable import Variable as VariableRow

    VariableRow.delete(key)
