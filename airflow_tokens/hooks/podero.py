"""Podero: POST {environment base}/oauth2/token/ with HTTP Basic and a JSON grant_type body."""

from __future__ import annotations

from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.vendors import VENDORS


class PoderoTokenHook(TokenHook):
    """
    Fetch and cache Podero partner API tokens (valid ten hours).

    :param podero_conn_id: the Podero connection (login = client ID, password = client secret, extra
        ``environment`` production or sandbox).
    """

    vendor = VENDORS["podero"]
