"""An operator that fetches a token once and hands it to downstream tasks, encrypted, through XCom."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_tokens.hooks import get_token_hook
from airflow_tokens.sealing import CacheEntry
from airflow_tokens.stores import HOSTNAME

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class FetchTokenOperator(BaseOperator):
    """
    Fetch or reuse a connection's token and push it to XCom, encrypted, for ``cache="xcom"`` hooks.

    The XCom value holds the token type, expiry and scope in clear and the token (with the credential
    fingerprint) encrypted with a key derived from the connection's secret (see
    :mod:`airflow_tokens.sealing`): only tasks that can read the connection can read the token.

    :param conn_id: any airflow-tokens connection; its type picks the vendor.
    :param cache: where this task looks for a token before fetching one (``"variable"`` by default).
    """

    template_fields: Sequence[str] = ("conn_id",)
    ui_color = "#e8f4ea"

    def __init__(self, *, conn_id: str, cache: str = "variable", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.cache = cache

    def execute(self, context: Context) -> dict[str, Any]:
        """Return the encrypted token envelope (pushed to XCom as the task's return value)."""
        hook = get_token_hook(self.conn_id, cache=self.cache)
        token = hook.get_access_token()
        self.log.info(
            "Pushing an encrypted %s token for %s, valid until %s",
            token.token_type,
            self.conn_id,
            token.expires_at.isoformat(timespec="seconds"),
        )
        return {"conn_id": self.conn_id, **hook.seal.seal(CacheEntry(token, hook.fingerprint, HOSTNAME))}
