"""Any token endpoint, described by its connection: where the credentials go, where the answer has the token.

The host is the whole token URL; login and password are the credentials, sent in a JSON body, a form body,
two headers or HTTP Basic (``credentials_in``). Static ``body`` and ``headers`` objects are merged in.
The answer is read at dotted paths (``token_field``, ``expires_in_field``, ``expires_at_field``,
``token_type_field``, ``scope_field``); without an expiry the token's JWT ``exp`` or ``default_lifetime``
decides. The defaults describe an OAuth2-style JSON endpoint. The request builder
(:mod:`airflow_tokens.endpoint`) is the same one every built-in vendor is a preset of.
"""

from __future__ import annotations

from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.vendors import VENDORS


class TokenEndpointHook(TokenHook):
    """
    Fetch and cache tokens from any token endpoint that the connection describes, without code.

    :param token_endpoint_conn_id: the connection: host = the whole token URL, login and password = the
        credentials; extras ``credentials_in`` (json, form, headers or basic), ``login_field``,
        ``password_field``, ``body``, ``headers``, ``token_field``, ``expires_in_field``,
        ``expires_at_field``, ``token_type_field``, ``scope_field``, ``default_lifetime``.
    """

    vendor = VENDORS["token_endpoint"]
