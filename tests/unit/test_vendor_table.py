"""The vendor table is the one description of every vendor: provider info, forms and hooks derive from it."""

from __future__ import annotations

import pytest

from airflow_tokens.extras import EXTRAS, form_fields
from airflow_tokens.get_provider_info import get_provider_info
from airflow_tokens.hooks import hook_class_for
from airflow_tokens.vendors import ENVIRONMENT, REGION, VENDORS


def test_provider_info_lists_each_row_once_in_the_tables_order() -> None:
    types = [entry["connection-type"] for entry in get_provider_info()["connection-types"]]
    assert types == list(VENDORS) == list(EXTRAS)


@pytest.mark.parametrize("conn_type", list(VENDORS))
def test_each_hook_class_is_its_row(conn_type: str) -> None:
    vendor = VENDORS[conn_type]
    hook = hook_class_for(conn_type)
    assert hook is not None
    assert hook.vendor is vendor
    assert (hook.conn_type, hook.hook_name, hook.conn_name_attr, hook.default_conn_name) == (
        vendor.conn_type,
        vendor.name,
        vendor.conn_name_attr,
        f"{conn_type}_default",
    )
    entry = next(e for e in get_provider_info()["connection-types"] if e["connection-type"] == conn_type)
    assert entry["hook-class-name"] == f"{hook.__module__}.{hook.__name__}"
    relabeling = entry["ui-field-behaviour"]["relabeling"]
    assert (relabeling["login"], relabeling["password"]) == (hook.login_label, hook.password_label)


def test_a_base_url_choice_is_written_once_for_the_form_and_the_request() -> None:
    learning360 = form_fields("learning360")["region"]["schema"]
    assert learning360 == {"type": "string", "enum": ["EU", "US"], "default": "EU"}
    assert REGION.choices == {"EU": "https://app.360learning.com", "US": "https://app.us.360learning.com"}
    assert "EU (app.360learning.com) or US (app.us.360learning.com)" in REGION.description
    assert VENDORS["learning360"].default_host == "https://app.360learning.com"
    assert VENDORS["podero"].default_host == ENVIRONMENT.choices["production"] == "https://app.podero.com"
    placeholders = {
        e["connection-type"]: e["ui-field-behaviour"]["placeholders"]["host"]
        for e in get_provider_info()["connection-types"]
    }
    assert placeholders["learning360"] == "https://app.360learning.com"
    assert placeholders["podero"] == "https://app.podero.com"
    assert placeholders["sirv"] == "https://api.sirv.com"


def test_a_form_shows_no_default_for_a_field_airflow_would_mask() -> None:
    fields = form_fields("token_endpoint")
    assert fields["login_field"]["schema"]["default"] == "client_id"
    for masked in ("password_field", "token_field", "token_type_field"):
        assert "default" not in fields[masked]["schema"], masked
    assert fields["default_lifetime"]["schema"] == {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": 31622400,
        "default": 3600,
    }
