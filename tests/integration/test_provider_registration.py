"""The provider registers its hooks and connection forms where Airflow's CLI and UI look."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from functools import cache
from typing import Any

import pytest

from airflow_tokens.get_provider_info import get_provider_info

INFO = get_provider_info()
CONN_TYPES = {entry["connection-type"]: entry for entry in INFO["connection-types"]}


@cache
def airflow_cli(*args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "airflow", *args, "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    return json.loads(out.stdout)


def test_provider_info_matches_airflow_schema_and_distribution() -> None:
    from airflow.providers_manager import _create_provider_info_schema_validator

    _create_provider_info_schema_validator().validate(INFO)
    from importlib.metadata import distribution

    assert INFO["package-name"] == distribution("airflow-tokens").metadata["Name"]


@pytest.mark.parametrize("conn_type", sorted(CONN_TYPES))
def test_hook_class_declares_what_provider_info_says(conn_type: str) -> None:
    entry = CONN_TYPES[conn_type]
    module, _, name = entry["hook-class-name"].rpartition(".")
    hook = getattr(importlib.import_module(module), name)
    assert hook.conn_type == conn_type
    assert hook.hook_name == entry["hook-name"]
    assert hook.default_conn_name == f"{conn_type}_default"
    assert hook.conn_name_attr.endswith("_conn_id")
    assert "get_connection_form_widgets" not in hook.__dict__
    assert "get_ui_field_behaviour" not in hook.__dict__


# Non-secret fields whose names Airflow masks: the names are the token_endpoint contract (its answer's
# "token" field, the "password" field's name). Their values are shown as *** when read back.
MASKED_NON_SECRETS = {"token_endpoint": {"password_field", "token_field", "token_type_field"}}
# PEM private keys: a text area (a key has lines), masked by its name ("private_key") as Airflow
# masks every private_key, in the UI, the API and the logs.
MASKED_PEM = {"oauth2_client_credentials": {"private_key", "client_private_key"}}
# A key file's path is no secret, but its name holds "private_key": Airflow shows it as ***.
MASKED_PATHS = {"oauth2_client_credentials": {"private_key_file"}}


@pytest.mark.parametrize("conn_type", sorted(CONN_TYPES))
def test_no_non_secret_field_name_would_be_masked(conn_type: str) -> None:
    from airflow.sdk._shared.secrets_masker import should_hide_value_for_key

    for field, spec in CONN_TYPES[conn_type].get("conn-fields", {}).items():
        sensitive = spec["schema"].get("format") == "password"
        if field in MASKED_PEM.get(conn_type, ()) or field in MASKED_PATHS.get(conn_type, ()):
            assert should_hide_value_for_key(field), field
            assert spec["schema"].get("format") == ("multiline" if "file" not in field else None), field
            assert "default" not in spec["schema"], field
        elif field in MASKED_NON_SECRETS.get(conn_type, ()):
            assert should_hide_value_for_key(field), field
            assert not sensitive, field
            # The form would show a default as *** and save that: the description names it instead.
            assert "default" not in spec["schema"], field
            assert "Default: " in spec["description"], field
        else:
            assert should_hide_value_for_key(field) == sensitive, field


def test_ui_hook_meta_shows_no_masked_default(hook_meta: dict[str, Any]) -> None:
    for conn_type, meta in hook_meta.items():
        if conn_type in CONN_TYPES:
            for field, spec in (meta["extra_fields"] or {}).items():
                assert spec.get("value") != "***", (conn_type, field)


def test_cli_lists_hooks_widgets_and_behaviours() -> None:
    hooks = {row["connection_type"]: row for row in airflow_cli("providers", "hooks")}
    widgets = {row["connection_parameter_name"] for row in airflow_cli("providers", "widgets")}
    behaviours = {row["field_behaviours"] for row in airflow_cli("providers", "behaviours")}
    for conn_type, entry in CONN_TYPES.items():
        assert hooks[conn_type]["class"] == entry["hook-class-name"]
        assert hooks[conn_type]["package_name"] == "airflow-tokens"
        for field in entry.get("conn-fields", {}):
            assert f"extra__{conn_type}__{field}" in widgets
        assert conn_type in behaviours


def test_cli_lists_the_trigger_module() -> None:
    rows = [row for row in airflow_cli("providers", "triggers") if row["package_name"] == "airflow-tokens"]
    assert [row["class"] for row in rows] == ["airflow_tokens.triggers.job"]


@pytest.fixture(scope="module")
def hook_meta(airflow_db: object) -> dict[str, Any]:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app()) as client:
        response = client.get("/ui/connections/hook_meta")
    assert response.status_code == 200
    return {row["connection_type"]: row for row in response.json()}


def test_ui_hook_meta_shows_sirv_form(hook_meta: dict[str, Any]) -> None:
    sirv = hook_meta["sirv"]
    assert sirv["hook_name"] == "Sirv"
    fields = sirv["standard_fields"]
    assert fields["login"]["title"] == "Client ID"
    assert fields["password"]["title"] == "Client Secret"
    assert fields["host"]["placeholder"] == "https://api.sirv.com"
    assert fields["url_schema"]["hidden"]
    assert fields["port"]["hidden"]
    lifetime = sirv["extra_fields"]["expires_in"]
    assert lifetime["schema"]["minimum"] == 5
    assert lifetime["schema"]["maximum"] == 604800
    assert lifetime["schema"]["title"]


@pytest.mark.parametrize("conn_type", sorted(CONN_TYPES))
def test_ui_hook_meta_has_every_connection_type(hook_meta: dict[str, Any], conn_type: str) -> None:
    meta = hook_meta[conn_type]
    entry = CONN_TYPES[conn_type]
    assert set(meta["extra_fields"] or {}) == set(entry.get("conn-fields", {}))
    for field, label in entry["ui-field-behaviour"]["relabeling"].items():
        assert meta["standard_fields"][field]["title"] == label


def test_ui_hook_meta_shows_token_endpoint_form(hook_meta: dict[str, Any]) -> None:
    meta = hook_meta["token_endpoint"]
    assert meta["hook_name"] == "Token endpoint (custom)"
    assert meta["standard_fields"]["host"]["title"] == "Token endpoint URL"
    fields = meta["extra_fields"]
    assert set(fields) == {
        "credentials_in",
        "login_field",
        "password_field",
        "body",
        "headers",
        "token_field",
        "expires_in_field",
        "expires_at_field",
        "token_type_field",
        "scope_field",
        "default_lifetime",
    }
    assert fields["credentials_in"]["schema"]["enum"] == ["json", "form", "headers", "basic"]
    assert fields["credentials_in"]["value"] == "json"
    assert fields["default_lifetime"]["value"] == 3600
    assert fields["token_field"]["value"] is None  # no default that the form would show as ***
    for name in fields:
        assert fields[name]["schema"]["title"], name
        assert fields[name]["description"], name
