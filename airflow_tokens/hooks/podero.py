"""Podero: POST {environment base}/oauth2/token/ with HTTP Basic and a JSON grant_type body."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_tokens.fetch import TokenRequest
from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.response import ResponseFields

if TYPE_CHECKING:
    from airflow_tokens.hooks.base import ConnectionSettings

ENVIRONMENTS = {"production": "https://app.podero.com", "sandbox": "https://sandbox-app.podero.com"}


class PoderoTokenHook(TokenHook):
    """
    Fetch and cache Podero partner API tokens (valid ten hours).

    :param podero_conn_id: the Podero connection (login = client ID, password = client secret, extra
        ``environment`` production or sandbox).
    """

    conn_name_attr = "podero_conn_id"
    default_conn_name = "podero_default"
    conn_type = "podero"
    hook_name = "Podero"
    token_path = "/oauth2/token/"
    base_url_choice = ("environment", ENVIRONMENTS, "production")
    response_fields = ResponseFields(default_lifetime=36000)

    def build_request(self, settings: ConnectionSettings, base_url: str) -> TokenRequest:
        """Return Podero's token request."""
        client_secret = settings.credential("password", self.password_label)
        return TokenRequest(
            url=base_url + self.token_path,
            secrets=(client_secret,),
            headers={"Cache-Control": "no-cache", "Content-Type": "application/json"},
            json={"grant_type": "client_credentials"},
            auth=(settings.credential("login", self.login_label), client_secret),
        )
