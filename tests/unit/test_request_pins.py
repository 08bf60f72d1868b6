"""Every vendor's token request, pinned as 0.2.0 built it, and a 0.2.0 cache entry still served.

``data/request_pins.json`` holds, per connection, the request the 0.2.0 code built (URL, method, headers in
order, JSON or form body, Basic credentials), its ``material()`` (from which the cache key's fingerprint and
the sealing key derive) and that fingerprint. ``data/variable_entry_0.2.0.json`` is a Variable value the
0.2.0 ``VariableStore`` wrote for a Sirv connection. A change in how a vendor is described must leave both
alike: a request that differs by one byte could be refused, and a different material would orphan every
token cached before an upgrade.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_tokens.cache import TokenCache
from airflow_tokens.hooks import get_token_hook
from airflow_tokens.hooks.sirv import SirvTokenHook
from airflow_tokens.memory import clear_memory_cache, forget_connections
from airflow_tokens.retry import RetryPolicy

DATA = Path(__file__).parent / "data"
PINS: dict[str, dict[str, Any]] = json.loads((DATA / "request_pins.json").read_text())
LOGIN = "client-id"
SECRET = "s3cr:et %ö+/=秘"


def _configure(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any]) -> None:
    conn = {"login": LOGIN, "password": SECRET, **conn}
    if "extra" in conn:
        conn["extra"] = json.dumps(conn["extra"])
    monkeypatch.setenv("AIRFLOW_CONN_PIN", json.dumps(conn))
    forget_connections()


def test_every_connection_type_is_pinned() -> None:
    from airflow_tokens.get_provider_info import get_provider_info

    types = {entry["connection-type"] for entry in get_provider_info()["connection-types"]}
    assert {pin["conn"]["conn_type"] for pin in PINS.values()} == types


@pytest.mark.parametrize("name", sorted(PINS))
def test_the_request_is_byte_for_byte_the_0_2_0_request(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    pin = PINS[name]
    _configure(monkeypatch, pin["conn"])
    request = get_token_hook("pin", cache="none").token_request

    assert request.url == pin["url"]
    assert request.method == pin["method"]
    assert [list(item) for item in request.headers.items()] == pin["headers"]  # in order
    assert request.json == pin["json"]
    assert list((request.json or {}).items()) == list((pin["json"] or {}).items())  # in order
    assert request.data == pin["data"]
    assert list((request.data or {}).items()) == list((pin["data"] or {}).items())
    assert (list(request.auth) if request.auth else None) == pin["auth"]
    assert request.material().decode() == pin["material"]
    assert request.fingerprint() == pin["fingerprint"]


class _VariableLike:
    """A store that answers as the Variable store does: the JSON text ``Variable.get`` returns."""

    name = "variable"
    leases = False

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.reads: list[str] = []

    def available(self) -> bool:
        return True

    def load(self, key: str) -> Any:
        self.reads.append(key)
        return self.values.get(f"airflow_tokens.access_token.{key}")

    def save(self, key: str, value: dict[str, Any]) -> None:
        raise AssertionError("a served 0.2.0 entry is not written again")


def test_a_token_cached_by_0_2_0_is_served_after_an_upgrade(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = json.loads((DATA / "variable_entry_0.2.0.json").read_text())
    # The connection the entry was sealed for; its host answers nothing, so any request would fail.
    conn = {"conn_type": "sirv", "host": "http://127.0.0.1:9", "login": LOGIN, "password": SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_SIRV_DEFAULT", json.dumps(conn))
    forget_connections()
    clear_memory_cache()
    store = _VariableLike({stored["key"]: stored["value"]})
    # One attempt: a token request would end in a TokenRequestError (connection refused).
    hook = SirvTokenHook(cache=TokenCache(store, cross_process_lock=False), retry=RetryPolicy(max_attempts=1))
    token = hook.get_access_token()

    assert token.token == "token-sealed-by-0.2.0"
    assert token.scope == ("read",)
    assert store.reads == ["sirv.sirv_default"]
    clear_memory_cache()
