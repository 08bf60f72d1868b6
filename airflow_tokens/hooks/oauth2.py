"""Any OAuth2 client-credentials endpoint (RFC 6749 section 4.4); the host is the token URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_tokens.fetch import TokenRequest
from airflow_tokens.hooks.base import TokenHook

if TYPE_CHECKING:
    from airflow_tokens.hooks.base import ConnectionSettings

AUTH_METHODS = {name: name for name in ("client_secret_basic", "client_secret_post", "client_secret_json")}


def encode_basic_credential(value: str) -> str:
    """Percent-encode a client ID or secret for HTTP Basic: every reserved character, a space as ``%20``."""
    # RFC 6749 section 2.3.1 form-urlencodes them, but a form's ``+`` for a space stays ``+`` on servers
    # that decode with plain percent-decoding (``unquote``); ``%20`` reads back alike with ``unquote_plus``.
    return quote(value, safe="")


class OAuth2ClientCredentialsHook(TokenHook):
    """
    Fetch and cache tokens from any OAuth2 client-credentials token endpoint.

    :param oauth2_conn_id: the connection (host = token endpoint URL, login = client ID, password = client
        secret; extras ``client_auth_method``, ``scope``, ``audience``, ``extra_params``).
    """

    conn_name_attr = "oauth2_conn_id"
    default_conn_name = "oauth2_client_credentials_default"
    conn_type = "oauth2_client_credentials"
    hook_name = "OAuth2 Client Credentials"
    host_is_token_url = True

    def build_request(self, settings: ConnectionSettings, base_url: str) -> TokenRequest:
        """Return the RFC 6749 section 4.4 request in the configured client authentication style."""
        client_id = settings.credential("login", self.login_label)
        client_secret = settings.credential("password", self.password_label)
        method = settings.choice("client_auth_method", AUTH_METHODS, "client_secret_basic")
        params: dict[str, str] = {"grant_type": "client_credentials"}
        for name in ("scope", "audience"):
            if value := settings.extra(name, str, ""):
                params[name] = value
        extra_params: dict[str, Any] = settings.extra("extra_params", dict, {})
        for name, value in extra_params.items():
            if not isinstance(value, str):
                raise settings.error("extra_params", f"value of {name!r} must be a string")
            params[name] = value
        headers = {"Accept": "application/json"}
        if method == "client_secret_basic":
            auth = (encode_basic_credential(client_id), encode_basic_credential(client_secret))
            # The encoded secret is scrubbed from error texts too, in case a server echoes the header.
            return TokenRequest(base_url, (client_secret, auth[1]), headers=headers, data=params, auth=auth)
        credentials = {"client_id": client_id, "client_secret": client_secret}
        if method == "client_secret_post":
            return TokenRequest(base_url, (client_secret,), headers=headers, data={**params, **credentials})
        return TokenRequest(base_url, (client_secret,), headers=headers, json={**params, **credentials})
