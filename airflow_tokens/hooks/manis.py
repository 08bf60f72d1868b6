"""Manis: POST {host}/api/v1/auth/token with x-merchant-id and x-secret headers and no body."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_tokens.fetch import TokenRequest
from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.response import ResponseFields

if TYPE_CHECKING:
    from airflow_tokens.hooks.base import ConnectionSettings


class ManisTokenHook(TokenHook):
    """
    Fetch and cache Manis unified API tokens; ``expiresAt`` may be epoch seconds or milliseconds.

    :param manis_conn_id: the Manis connection (host required, login = merchant ID, password = secret).
    """

    conn_name_attr = "manis_conn_id"
    default_conn_name = "manis_default"
    conn_type = "manis"
    hook_name = "Manis"
    token_path = "/api/v1/auth/token"
    login_label = "Merchant ID"
    password_label = "Secret"
    response_fields = ResponseFields(
        token="token", token_type="tokenType", expires_in=None, expires_at="expiresAt", scope=None
    )

    def build_request(self, settings: ConnectionSettings, base_url: str) -> TokenRequest:
        """Return Manis's token request: credentials in headers, no body."""
        merchant_id = settings.credential("login", self.login_label, in_header=True)
        secret = settings.credential("password", self.password_label, in_header=True)
        return TokenRequest(
            url=base_url + self.token_path,
            secrets=(secret,),
            headers={"x-merchant-id": merchant_id, "x-secret": secret},
        )
