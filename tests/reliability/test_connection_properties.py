"""Property: any connection ends in a token or a typed error naming the field; no setting dropped unsaid."""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

import pytest
import tenacity
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airflow_tokens.exceptions import TokenConfigError, TokenRequestError, TokenResponseError
from airflow_tokens.extras import COMMON_EXTRAS, EXTRAS
from airflow_tokens.hooks import get_token_hook
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer
from tests.vendors import VENDORS

ONCE = RetryPolicy(max_attempts=1).retrying(wait=tenacity.wait_none())
_IDS = itertools.count()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
# Values a user might well write for some extra: right for one, wrong for another.
PLAUSIBLE = st.sampled_from(
    [
        "memory", "none", "variable", "xcom", "EU", "us", "sandbox", "production", "client_secret_post",
        "client_secret_json", "read write", "", "30", "abc", "true", "yes", 0, 1, 5, 60, 600, 1e9, -1, 2.5,
        True, False, None, {}, {"resource": "https://api.example.com"}, {"n": 1}, [],
    ]
)  # fmt: skip
# Text that is no URL with a scheme, and never blank (a blank host means the vendor's real server).
NOT_A_URL = st.text(min_size=1, max_size=25).filter(lambda text: text.strip() != "" and "://" not in text)
CONN_FIELDS = ("login", "password", "host", "port", "extra")
MALFORMED_HOSTS = [
    "ftp://127.0.0.1",
    "http://[::1",
    "http://127.0.0.1:http",
    "http://127.0.0.1:1",
    "https://127.0.0.1:1/token",
    "127.0.0.1:8080",
]


def mostly(good: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Draw from ``good`` about three times in four, else from ``other``."""
    return st.sampled_from([good, good, good, other]).flatmap(lambda strategy: strategy)


def extra_keys(conn_type: str) -> st.SearchStrategy[str]:
    """Extra names: known ones, plain or as the form stores them, another type's, and anything."""
    names = sorted({extra.name for extras in (COMMON_EXTRAS, *EXTRAS.values()) for extra in extras})
    known = st.sampled_from(names)
    return st.one_of(
        known,
        known.map(lambda name: f"extra__{conn_type}__{name}"),
        st.tuples(st.sampled_from(sorted(EXTRAS)), known).map(lambda pair: f"extra__{pair[0]}__{pair[1]}"),
        st.text(min_size=1, max_size=15),
    )


def endpoints(emulator: EmulatorServer, path: str) -> st.SearchStrategy[tuple[str, int | None]]:
    """(host, port): mostly the emulator, with or without the port field; else a wrong path or no URL."""
    ports = st.one_of(st.none(), st.just(0), st.just(emulator.port), st.integers(-1, 70000))
    emulator_host = st.tuples(st.just(emulator.url + path), st.sampled_from([None, 0, emulator.port]))
    return mostly(
        emulator_host | st.just((f"http://127.0.0.1{path}", emulator.port)),
        st.tuples(st.text(max_size=10).map(lambda tail: emulator.url + path + tail), ports)
        | st.tuples(st.sampled_from(MALFORMED_HOSTS) | NOT_A_URL, ports),
    )


# The emulator fixture serves the whole test: every example uses a new connection id.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_connection_ends_in_a_token_or_an_error_naming_the_field(
    token_emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    data: st.DataObject,
) -> None:
    vendor = data.draw(st.sampled_from(VENDORS))
    host, port = data.draw(endpoints(token_emulator, vendor.host_path))
    extras = data.draw(st.dictionaries(extra_keys(vendor.conn_type), mostly(PLAUSIBLE, JSON), max_size=3))
    conn = {
        "conn_type": vendor.conn_type,
        "host": host,
        "port": port,
        "login": data.draw(mostly(st.just(EMULATOR_CLIENT_ID), st.none() | st.text(max_size=12))),
        "password": data.draw(mostly(st.just(EMULATOR_CLIENT_SECRET), st.none() | st.text(max_size=12))),
    }
    written = data.draw(st.sampled_from(["json", "object", "json", "object", "text"]))  # how extras are set
    if written == "text":
        conn["extra"], extras = data.draw(st.text(max_size=12)), {}
    else:
        conn["extra"] = json.dumps(extras) if written == "json" else extras
    conn_id = f"any_conn_{next(_IDS)}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    requests_before = token_emulator.client.token_requests(vendor.emulator)
    caplog.set_level(logging.WARNING)

    error: TokenConfigError | TokenRequestError | TokenResponseError | None = None
    try:
        token = get_token_hook(conn_id, retry=ONCE).get_access_token()
    except (TokenConfigError, TokenRequestError, TokenResponseError) as exc:  # any other fails the test
        error = exc
    event(type(error).__name__ if error else "token")
    if isinstance(error, TokenConfigError):
        event(f"TokenConfigError on {error.field if error.field in CONN_FIELDS else 'an extra'}")
        named = {*CONN_FIELDS, "xcom_task_id"}  # xcom_task_id: the extra "cache" says "xcom"
        named |= {key.rpartition("__")[2] for key in extras if _known(vendor.conn_type, key)}
        assert error.field in named, error
        assert error.conn_id == conn_id
        assert token_emulator.client.token_requests(vendor.emulator) == requests_before, error
        return
    if error is not None:
        assert str(error).startswith(f"Connection {conn_id!r}: ")
        assert EMULATOR_CLIENT_SECRET not in str(error)
    else:
        assert token.token
        assert token.lifetime > 0
    # The connection was read and used: every extra it does not understand was named in a warning.
    warnings = " ".join(record.getMessage() for record in caplog.records if conn_id in record.getMessage())
    for key, value in extras.items():
        if value not in (None, "") and not _known(vendor.conn_type, key):
            event("warned about an unknown extra")
            assert f"{key!r} is not an extra of {vendor.conn_type} connections" in warnings


def _known(conn_type: str, key: str) -> bool:
    names = {extra.name for extra in (*COMMON_EXTRAS, *EXTRAS[conn_type])}
    return key in names or (key.startswith(f"extra__{conn_type}__") and key.rpartition("__")[2] in names)
