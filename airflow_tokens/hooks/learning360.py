"""360Learning: POST {region base}/api/v2/oauth2/token with a JSON client-credentials body."""

from __future__ import annotations

from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.vendors import VENDORS


class Learning360TokenHook(TokenHook):
    """
    Fetch and cache 360Learning API tokens (valid one hour).

    :param learning360_conn_id: the 360Learning connection (login = client ID, password = client secret,
        extra ``region`` EU or US).
    """

    vendor = VENDORS["learning360"]
