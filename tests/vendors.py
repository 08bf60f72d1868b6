"""The vendors under test: hook, emulator name, documented lifetime and response field names."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_tokens.cache import forget_connections
from airflow_tokens.hooks.learning360 import Learning360TokenHook
from airflow_tokens.hooks.manis import ManisTokenHook
from airflow_tokens.hooks.oauth2 import OAuth2ClientCredentialsHook
from airflow_tokens.hooks.podero import PoderoTokenHook
from airflow_tokens.hooks.sirv import SirvTokenHook
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET

if TYPE_CHECKING:
    import pytest

    from airflow_tokens.hooks.base import TokenHook


@dataclass(frozen=True)
class VendorCase:
    """
    One vendor under test.

    :param hook: the hook class.
    :param emulator: the emulator's name for the vendor.
    :param lifetime: the token lifetime the vendor documents (the emulator's default).
    :param host_path: appended to the emulator URL to form the connection host (oauth2: the token URL).
    """

    hook: type[TokenHook]
    emulator: str
    lifetime: float
    host_path: str = ""

    @property
    def token_field(self) -> str:
        return self.hook.response_fields.token

    @property
    def expiry_field(self) -> str:
        fields = self.hook.response_fields
        return fields.expires_in or fields.expires_at or ""

    def conn(self, url: str, **overrides: Any) -> dict[str, Any]:
        """Return the connection JSON pointing at the emulator at ``url``."""
        return {
            "conn_type": self.hook.conn_type,
            "host": url + self.host_path,
            "login": EMULATOR_CLIENT_ID,
            "password": EMULATOR_CLIENT_SECRET,
            **overrides,
        }

    def configure(self, monkeypatch: pytest.MonkeyPatch, url: str, **overrides: Any) -> None:
        """Set ``AIRFLOW_CONN_<default conn id>`` for this vendor."""
        var = f"AIRFLOW_CONN_{self.hook.default_conn_name.upper()}"
        monkeypatch.setenv(var, json.dumps(self.conn(url, **overrides)))
        forget_connections()  # the connection changed: new hooks must see it now


VENDORS = (
    VendorCase(SirvTokenHook, "sirv", 1200),
    VendorCase(Learning360TokenHook, "360learning", 3600),
    VendorCase(ManisTokenHook, "manis", 3600),
    VendorCase(PoderoTokenHook, "podero", 36000),
    VendorCase(OAuth2ClientCredentialsHook, "oauth2", 3600, host_path="/oauth2/token"),
)
