"""Property-based tests: whatever a vendor answers, the hook gives a token or a typed error."""

from __future__ import annotations

import json
import string

import pytest
import tenacity
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from airflow_tokens.exceptions import TokenError
from airflow_tokens.retry import RetryPolicy, parse_retry_after
from airflow_tokens.testing import EmulatorServer
from tests.vendors import VENDORS

ONCE = RetryPolicy(max_attempts=1).retrying(wait=tenacity.wait_none())
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=5)
    ),
    max_leaves=15,
)
HEADER_TEXT = st.text(alphabet=string.printable.strip() + " ", max_size=40)


def _token_like(vendor_index: int) -> st.SearchStrategy[object]:
    """Bodies shaped like the vendor's success answer, with any values in its fields."""
    vendor = VENDORS[vendor_index]
    return st.fixed_dictionaries(
        {},
        optional={vendor.token_field: JSON | st.text(max_size=40), vendor.expiry_field: JSON},
    )


@given(value=st.text(max_size=60))
@example(value="²")  # a digit to str.isdigit(), not to float()
def test_any_retry_after_header_gives_a_wait_or_none(value: str) -> None:
    wait = parse_retry_after(value)
    assert wait is None or wait >= 0


# The emulator fixture serves the whole test; each example injects its own answer, so sharing it is safe.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    vendor_index=st.integers(min_value=0, max_value=len(VENDORS) - 1),
    status=st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 418, 429, 500, 503]),
    data=st.data(),
    content_type=st.sampled_from(["application/json", "text/html", "text/plain", ""]),
    retry_after=HEADER_TEXT,
)
def test_any_answer_gives_a_token_or_a_typed_error(
    token_emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    vendor_index: int,
    status: int,
    data: st.DataObject,
    content_type: str,
    retry_after: str,
) -> None:
    vendor = VENDORS[vendor_index]
    payload = data.draw(st.one_of(JSON, _token_like(vendor_index)).map(json.dumps) | st.text(max_size=120))
    vendor.configure(monkeypatch, token_emulator.url)
    headers = {"Retry-After": retry_after}
    if content_type:
        headers["Content-Type"] = content_type
    token_emulator.client.inject(vendor.emulator, {"status": status, "body": payload, "headers": headers})
    error: TokenError | None = None
    try:
        token = vendor.hook(cache="none", retry=ONCE).get_access_token()
    except TokenError as exc:  # any other exception fails the test
        error = exc
    event("token" if error is None else type(error).__name__)
    if error is not None:
        assert "emulator-client-secret" not in str(error)
    else:
        assert 200 <= status < 300
        assert token.token == json.loads(payload)[vendor.token_field]
        assert token.lifetime > 0
    assert token_emulator.client.invalid_requests(vendor.emulator) == 0
