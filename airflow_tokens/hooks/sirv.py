"""Sirv: POST {base}/v2/token with JSON clientId and clientSecret; tokens live 1200 s by default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.vendors import SIRV_EXPIRES_IN, VENDORS

if TYPE_CHECKING:
    from airflow_tokens.connection import ConnectionSettings


class SirvTokenHook(TokenHook):
    """
    Fetch and cache Sirv REST API tokens.

    :param sirv_conn_id: the Sirv connection (login = client ID, password = client secret).
    """

    vendor = VENDORS["sirv"]

    def request_body(
        self, settings: ConnectionSettings, static: dict[str, Any], credentials: dict[str, str]
    ) -> dict[str, Any]:
        """Return ``{"clientId", "clientSecret"}``, and ``expiresIn`` (whole seconds) if asked for."""
        body = {**static, **credentials}
        expires_in = settings.get(SIRV_EXPIRES_IN)
        if expires_in is not None:
            body["expiresIn"] = int(expires_in)
        return body
