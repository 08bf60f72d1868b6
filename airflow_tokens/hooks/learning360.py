"""360Learning: POST {region base}/api/v2/oauth2/token with a JSON client-credentials body."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_tokens.fetch import TokenRequest
from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.response import ResponseFields

if TYPE_CHECKING:
    from airflow_tokens.hooks.base import ConnectionSettings

REGIONS = {"eu": "https://app.360learning.com", "us": "https://app.us.360learning.com"}


class Learning360TokenHook(TokenHook):
    """
    Fetch and cache 360Learning API tokens (valid one hour).

    :param learning360_conn_id: the 360Learning connection (login = client ID, password = client secret,
        extra ``region`` EU or US).
    """

    conn_name_attr = "learning360_conn_id"
    default_conn_name = "learning360_default"
    conn_type = "learning360"
    hook_name = "360Learning"
    token_path = "/api/v2/oauth2/token"
    base_url_choice = ("region", REGIONS, "EU")
    response_fields = ResponseFields(default_lifetime=3600)

    def build_request(self, settings: ConnectionSettings, base_url: str) -> TokenRequest:
        """Return 360Learning's token request."""
        client_secret = settings.credential("password", self.password_label)
        return TokenRequest(
            url=base_url + self.token_path,
            secrets=(client_secret,),
            headers={"accept": "application/json", "content-type": "application/json"},
            json={
                "grant_type": "client_credentials",
                "client_id": settings.credential("login", self.login_label),
                "client_secret": client_secret,
            },
        )
