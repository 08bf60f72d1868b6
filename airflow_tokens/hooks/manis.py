"""Manis: POST {host}/api/v1/auth/token with x-merchant-id and x-secret headers and no body."""

from __future__ import annotations

from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.vendors import VENDORS


class ManisTokenHook(TokenHook):
    """
    Fetch and cache Manis unified API tokens; ``expiresAt`` may be epoch seconds or milliseconds.

    :param manis_conn_id: the Manis connection (host required, login = merchant ID, password = secret).
    """

    vendor = VENDORS["manis"]
