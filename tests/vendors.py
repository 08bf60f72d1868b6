"""The vendors under test, the token the emulator issued, and helpers for the cache Variable."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_tokens.hooks.learning360 import Learning360TokenHook
from airflow_tokens.hooks.manis import ManisTokenHook
from airflow_tokens.hooks.oauth2 import OAuth2ClientCredentialsHook
from airflow_tokens.hooks.podero import PoderoTokenHook
from airflow_tokens.hooks.sirv import SirvTokenHook
from airflow_tokens.hooks.token_endpoint import TokenEndpointHook
from airflow_tokens.memory import forget_connections
from airflow_tokens.stores import VariableStore
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
    from airflow_tokens.testing import EmulatorServer


@dataclass(frozen=True)
class VendorCase:
    """
    One vendor under test; every expected value is written out from the vendor's documentation.

    :param hook: the hook class.
    :param emulator: the emulator's name for the vendor.
    :param conn_type: the connection type.
    :param token_field: the key of the token in the vendor's answer.
    :param expiry_field: the key of the expiry in the vendor's answer.
    :param default_lifetime: the lifetime to assume when the answer states none: the vendor's documented
        lifetime, else one hour.
    :param issued_lifetime: the lifetime of the tokens the emulator issues, unlike every default.
    :param jwt: whether the token is a JWT whose ``exp`` claim states the expiry too.
    :param login_label: what the vendor calls the login (client or merchant id).
    :param password_label: what the vendor calls the secret.
    :param unauthorized: the vendor's own text when the credentials are wrong.
    :param example_dag: the DAG id of the vendor's example in dags_example/.
    :param host_path: appended to the emulator URL to form the connection host (oauth2: the token URL).
    :param extra: the connection's extras (merged under those a test passes).
    """

    hook: type[TokenHook]
    emulator: str
    conn_type: str
    token_field: str
    expiry_field: str
    default_lifetime: float
    issued_lifetime: float
    unauthorized: str
    example_dag: str
    jwt: bool = False
    login_label: str = "Client ID"
    password_label: str = "Client Secret"
    host_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def conn_id(self) -> str:
        return f"{self.conn_type}_default"

    @property
    def lifetime_without_expiry(self) -> float:
        """Return the lifetime a token has when the answer leaves its expiry field out."""
        return self.issued_lifetime if self.jwt else self.default_lifetime

    @property
    def variable_key(self) -> str:
        return VariableStore.variable_key(f"{self.conn_type}.{self.conn_id}")

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


SIRV = VendorCase(
    SirvTokenHook,
    "sirv",
    conn_type="sirv",
    token_field="token",
    expiry_field="expiresIn",
    default_lifetime=1200,  # "Tokens expire after 20 minutes (1200 seconds)"
    issued_lifetime=1500,
    jwt=True,  # the example answer's token is a JWT with an exp claim
    unauthorized="Wrong credentials",
    example_dag="sirv_token_example",
)
LEARNING360 = VendorCase(
    Learning360TokenHook,
    "learning360",
    conn_type="learning360",
    token_field="access_token",
    expiry_field="expires_in",
    default_lifetime=3600,  # "An access token is valid for 1 hour"
    issued_lifetime=2700,
    unauthorized="invalid_client",
    example_dag="learning360_token_example",
)
MANIS = VendorCase(
    ManisTokenHook,
    "manis",
    conn_type="manis",
    token_field="token",
    expiry_field="expiresAt",
    default_lifetime=3600,  # Manis documents no lifetime
    issued_lifetime=5400,
    unauthorized="Invalid merchant credentials",
    example_dag="manis_token_example",
    login_label="Merchant ID",  # "x-merchant-id: the merchant's id"
    password_label="Secret",  # "x-secret: the merchant's secret"
)
PODERO = VendorCase(
    PoderoTokenHook,
    "podero",
    conn_type="podero",
    token_field="access_token",
    expiry_field="expires_in",
    default_lifetime=36000,  # "typically 36000 = 10 hours"
    issued_lifetime=32400,
    unauthorized="invalid_client - Invalid client credentials.",
    example_dag="podero_token_example",
)
OAUTH2 = VendorCase(
    OAuth2ClientCredentialsHook,
    "oauth2",
    conn_type="oauth2_client_credentials",
    token_field="access_token",  # RFC 6749 section 5.1
    expiry_field="expires_in",
    default_lifetime=3600,  # RFC 6749 sets none
    issued_lifetime=4500,
    unauthorized="invalid_client - Client authentication failed.",
    example_dag="oauth2_token_example",
    host_path="/oauth2/token",
)
TOKEN_ENDPOINT = VendorCase(
    TokenEndpointHook,
    "custom",
    conn_type="token_endpoint",
    token_field="data.session.value",  # the emulator's endpoint of no seed vendor: a nested answer
    expiry_field="data.session.expiresAt",  # an ISO 8601 time
    default_lifetime=3600,  # the connection sets no default_lifetime
    issued_lifetime=900,
    unauthorized="Invalid API key or secret.",
    example_dag="token_endpoint_example",
    login_label="Login",
    password_label="Secret",
    host_path=CUSTOM_ENDPOINT_PATH,
    extra=CUSTOM_ENDPOINT_EXTRA,
)
VENDORS = (SIRV, LEARNING360, MANIS, PODERO, OAUTH2, TOKEN_ENDPOINT)


def only_issued(emulator: EmulatorServer) -> str:
    """Return the one token the emulator issued."""
    [token] = emulator.client.issued_tokens()
    return token


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
