"""Connection extras: one table of what each type understands; a slip is named, never silently half-used."""

from __future__ import annotations

import itertools
import json
import logging
import re
from typing import Any

import pytest
import tenacity

from airflow_tokens.connection import ConnectionSettings
from airflow_tokens.exceptions import TokenConfigError
from airflow_tokens.extras import COMMON_EXTRAS, EXTRAS, known_extras
from airflow_tokens.hooks import get_token_hook
from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.retry import RetryPolicy
from airflow_tokens.testing import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EmulatorServer

ONCE = RetryPolicy(max_attempts=1).retrying(wait=tenacity.wait_none())
# conn type -> (emulator vendor, path appended to the emulator URL for the host).
VENDORS = {
    "sirv": ("sirv", ""),
    "learning360": ("learning360", ""),
    "manis": ("manis", ""),
    "podero": ("podero", ""),
    "oauth2_client_credentials": ("oauth2", "/oauth2/token"),
}
_IDS = itertools.count()


def connect(
    monkeypatch: pytest.MonkeyPatch,
    conn_type: str,
    host: str,
    extra: Any = None,
    options: dict[str, Any] | None = None,
    **fields: Any,
) -> TokenHook:
    """Define a new connection of ``conn_type`` by AIRFLOW_CONN_ JSON and return its hook."""
    conn_id = f"extras_{next(_IDS)}"
    conn = {"conn_type": conn_type, "host": host, "login": EMULATOR_CLIENT_ID}
    conn |= {"password": EMULATOR_CLIENT_SECRET, "extra": extra, **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return get_token_hook(conn_id, **{"cache": "none", "retry": ONCE, **(options or {})})


def emulated(emulator: EmulatorServer, conn_type: str) -> str:
    """Return the host of a ``conn_type`` connection to the emulator."""
    return emulator.url + VENDORS[conn_type][1]


def unknown_warnings(caplog: pytest.LogCaptureFixture, conn_id: str) -> list[str]:
    """Return the warnings about unknown extras of ``conn_id``."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and f"Connection {conn_id!r}: " in record.getMessage()
    ]


def test_every_connection_type_has_one_table_entry() -> None:
    from airflow_tokens.get_provider_info import CONNECTION_TYPES

    assert {entry["connection-type"] for entry in CONNECTION_TYPES} == set(EXTRAS)
    # token_endpoint's extras describe the endpoint itself: tests/integration/test_token_endpoint.py
    assert set(VENDORS) == set(EXTRAS) - {"token_endpoint"}
    common = {extra.name for extra in COMMON_EXTRAS}
    for extras in EXTRAS.values():
        assert not common & {extra.name for extra in extras}


# The wording of JSON syntax errors varies between Python versions; where the error is does not.
@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("{not json", r"is not valid JSON \(.+ at line 1 column 2\); write a JSON object"),
        # Python 3.13's parser names the comma itself (column 19), earlier ones the brace after it.
        ('{"cache": "memory",}', r"is not valid JSON \(.+ at line 1 column (19|20)\)"),
        ('["cache", "memory"]', "must be a JSON object of settings, not an array"),
        ('"memory"', "must be a JSON object of settings, not a string"),
        ("60", "must be a JSON object of settings, not a number"),
        ("null", "must be a JSON object of settings, not null"),
        ('{"ca_bundle": "/etc/hunter2-secret.pem"', r"is not valid JSON \(.+ at line 1 column 40\)"),
    ],
    ids=["not-json", "trailing-comma", "array", "string", "number", "null", "truncated"],
)
def test_extras_that_are_not_a_json_object_are_a_config_error_before_any_request(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, extra: str, problem: str
) -> None:
    from airflow.sdk import Connection

    with pytest.raises(TokenConfigError) as by_variable:  # AIRFLOW_CONN_*: refused before Airflow reads it
        connect(monkeypatch, "sirv", token_emulator.url, extra).get_token()
    with pytest.raises(TokenConfigError) as by_backend:  # any other source: refused when the hook reads it
        ConnectionSettings("from_db", "sirv", Connection(conn_id="from_db", conn_type="sirv", extra=extra))
    for info in (by_variable, by_backend):
        assert info.value.field == "extra"
        assert re.match(f"Connection {info.value.conn_id!r}: extra: {problem}", str(info.value))
        assert "hunter2" not in str(info.value)
    assert token_emulator.client.token_requests("sirv") == 0


@pytest.mark.parametrize(
    ("conn_type", "key", "suggestion"),
    [
        ("sirv", "refresh_margn", "refresh_margin"),
        ("sirv", "extra__sirv__expiresin", "expires_in"),
        ("learning360", "regoin", "region"),
        ("manis", "Cache", "cache"),
        ("podero", "enviroment", "environment"),
        ("podero", "extra__sirv__expires_in", None),  # another type's form field: the type was changed
        ("oauth2_client_credentials", "scopes", "scope"),
        ("oauth2_client_credentials", "token_url", None),
    ],
)
def test_an_unknown_extra_warns_once_per_process_and_the_token_is_still_fetched(
    token_emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    conn_type: str,
    key: str,
    suggestion: str | None,
) -> None:
    from airflow_tokens.memory import forget_connections

    hook = connect(monkeypatch, conn_type, emulated(token_emulator, conn_type), {key: "30"})
    with caplog.at_level(logging.WARNING):
        assert hook.fetch_access_token()
        forget_connections()  # a new hook resolves the connection again: no second warning
        assert get_token_hook(hook.conn_id, retry=ONCE).fetch_access_token()
    hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
    expected = f"{key!r} is not an extra of {conn_type} connections{hint}, and is ignored"
    assert unknown_warnings(caplog, hook.conn_id) == [f"Connection {hook.conn_id!r}: {expected}"]
    assert token_emulator.client.token_requests(VENDORS[conn_type][0]) == 2


def test_form_fields_stored_empty_and_prefixed_fields_are_known(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    extra = {"extra__sirv__expires_in": "", "extra__sirv__refresh_margin": None, "extra__sirv__cache": "none"}
    hook = connect(monkeypatch, "sirv", token_emulator.url, {**extra, "left_empty": ""})
    with caplog.at_level(logging.WARNING):
        assert hook.get_token()
    assert unknown_warnings(caplog, hook.conn_id) == []
    assert "expiresIn" not in token_emulator.client.requests("sirv")[0]["json"]  # empty: not set


@pytest.mark.parametrize(
    ("extra", "outcome"),
    [
        ({"expires_in": 300, "extra__sirv__expires_in": 300}, 300),
        ({"expires_in": "", "extra__sirv__expires_in": "600"}, 600),
        ({"expires_in": 300, "extra__sirv__expires_in": 600}, "expires_in: is set twice"),
    ],
    ids=["same-value", "plain-empty", "different"],
)
def test_an_extra_set_both_plainly_and_prefixed_is_used_only_when_they_agree(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], outcome: Any
) -> None:
    hook = connect(monkeypatch, "sirv", token_emulator.url, extra)
    if isinstance(outcome, str):
        with pytest.raises(TokenConfigError, match=outcome):
            hook.get_token()
        assert token_emulator.client.token_requests("sirv") == 0
    else:
        assert hook.get_access_token().lifetime == pytest.approx(outcome, abs=1)


KNOWN = [
    pytest.param(conn_type, extra.name, key, id=f"{conn_type}-{key}")
    for conn_type, extras in EXTRAS.items()
    for extra in (*COMMON_EXTRAS, *extras)
    for key in (extra.name, f"extra__{conn_type}__{extra.name}")
]


@pytest.mark.parametrize(("conn_type", "name", "key"), KNOWN)
def test_every_known_extra_is_checked_even_where_nothing_reads_it(
    monkeypatch: pytest.MonkeyPatch, conn_type: str, name: str, key: str
) -> None:
    """A value no extra accepts is refused, even for an extra the hook's options override or skip."""
    options = {"cache": "memory", "refresh_margin": 5, "timeout": 1}
    hook = connect(monkeypatch, conn_type, "https://127.0.0.1:9/token", {key: ["a", "list"]}, options)
    with pytest.raises(TokenConfigError) as info:
        hook.token_request  # noqa: B018
    assert info.value.field == name
    # a JSON-object extra (which may also be given as JSON text) says so; the others name their type
    assert re.fullmatch(r"expected \w+, got list|must be a JSON object, not list", info.value.problem)


def test_reading_an_extra_missing_from_the_table_is_a_bug_caught_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk import Connection

    settings = ConnectionSettings("c", "sirv", Connection(conn_id="c", conn_type="sirv"))
    with pytest.raises(LookupError, match="sirv reads extra 'region' as str: add it to EXTRAS"):
        settings.extra("region", str, "EU")  # a 360Learning extra
    with pytest.raises(LookupError, match="sirv reads extra 'cache' as float"):
        settings.extra("cache", float, 1.0)


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"extra": {"ca_bundle": "/no/such/bundle.pem"}}, "ca_bundle", "'/no/such/bundle.pem' is not a file"),
        ({"port": 70000}, "port", "70000 is not a TCP port (1..65535)"),
        ({"port": 9}, "port", "9 differs from the host's port"),
        ({"host": None, "port": 8443}, "port", "is set without a host"),
        ({"host": "http://127.0.0.1:http"}, "host", "is not a valid URL (Port could not be cast"),
        ({"host": "https://[::1/token"}, "host", "is not a valid URL (Invalid IPv6 URL)"),
        ({"login": "merchant\r\nx-admin: 1"}, "login", "Merchant ID has control characters"),
    ],
    ids=[
        "ca-bundle-missing",
        "port-range",
        "port-conflict",
        "port-without-host",
        "host-port",
        "host-ipv6",
        "crlf",
    ],
)
def test_settings_that_cannot_be_used_as_given_are_config_errors(
    token_emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    fields: dict[str, Any],
    field: str,
    problem: str,
) -> None:
    fields = {"host": token_emulator.url, **fields}
    hook = connect(monkeypatch, "manis", fields.pop("host"), **fields)
    with pytest.raises(TokenConfigError) as info:
        hook.get_token()
    assert info.value.field == field
    assert problem in info.value.problem
    assert token_emulator.client.token_requests("manis") == 0


def test_the_port_field_applies_to_a_host_without_one(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = connect(monkeypatch, "sirv", "http://127.0.0.1", port=token_emulator.port)
    assert hook.base_url == token_emulator.url
    assert hook.get_token()
    assert token_emulator.client.token_requests("sirv") == 1


def test_test_connection_fails_on_an_unknown_extra_without_a_request(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = connect(monkeypatch, "sirv", token_emulator.url, {"refresh_margn": 30, "zzz": 1})
    ok, message = hook.test_connection()
    assert not ok
    assert message == (
        f"Connection {hook.conn_id!r}: extra: 'refresh_margn' is not an extra of sirv connections "
        "(did you mean 'refresh_margin'?); 'zzz' is not an extra of sirv connections; known extras: "
        + ", ".join(sorted(known_extras("sirv")))
    )
    assert "expires_in, " in message
    assert token_emulator.client.token_requests("sirv") == 0


def test_strict_hooks_refuse_an_unknown_extra_before_any_request(
    token_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    hook = connect(monkeypatch, "podero", token_emulator.url, {"enviroment": "sandbox"})
    hook.strict_extras = True
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(TokenConfigError, match="did you mean 'environment'"),
    ):
        hook.get_token()
    assert unknown_warnings(caplog, hook.conn_id) == []  # the error says it all
    assert token_emulator.client.token_requests("podero") == 0
