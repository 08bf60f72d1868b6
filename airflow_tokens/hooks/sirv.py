"""Sirv: POST {base}/v2/token with JSON clientId and clientSecret; tokens live 1200 s by default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_tokens.fetch import TokenRequest
from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.response import ResponseFields

if TYPE_CHECKING:
    from airflow_tokens.hooks.base import ConnectionSettings


class SirvTokenHook(TokenHook):
    """
    Fetch and cache Sirv REST API tokens.

    :param sirv_conn_id: the Sirv connection (login = client ID, password = client secret).
    """

    conn_name_attr = "sirv_conn_id"
    default_conn_name = "sirv_default"
    conn_type = "sirv"
    hook_name = "Sirv"
    default_base_url = "https://api.sirv.com"
    token_path = "/v2/token"
    response_fields = ResponseFields(
        token="token", token_type=None, expires_in="expiresIn", scope="scope", default_lifetime=1200
    )

    def build_request(self, settings: ConnectionSettings, base_url: str) -> TokenRequest:
        """Return Sirv's token request: ``{"clientId", "clientSecret"}`` plus ``expiresIn`` if set."""
        client_id = settings.credential("login", self.login_label)
        client_secret = settings.credential("password", self.password_label)
        body: dict[str, Any] = {"clientId": client_id, "clientSecret": client_secret}
        expires_in = settings.number("expires_in", None, 5, 604800)
        if expires_in is not None:
            if not expires_in.is_integer():
                raise settings.error("expires_in", f"{expires_in:g} is not a whole number of seconds")
            body["expiresIn"] = int(expires_in)
        return TokenRequest(
            url=base_url + self.token_path,
            secrets=(client_secret,),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            json=body,
        )
