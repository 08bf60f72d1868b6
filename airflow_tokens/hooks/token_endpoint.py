"""Any token endpoint, described by its connection: where the credentials go, where the answer has the token.

The host is the whole token URL; login and password are the credentials, sent in a JSON body, a form body,
two headers or HTTP Basic (``credentials_in``). Static ``body`` and ``headers`` objects are merged in.
The answer is read at dotted paths (``token_field``, ``expires_in_field``, ``expires_at_field``,
``token_type_field``, ``scope_field``); without an expiry the token's JWT ``exp`` or ``default_lifetime``
decides. The defaults describe an OAuth2-style JSON endpoint.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from airflow_tokens.fetch import TokenRequest
from airflow_tokens.hooks.base import TokenHook
from airflow_tokens.response import MAX_LIFETIME, ResponseFields

if TYPE_CHECKING:
    from airflow_tokens.hooks.base import ConnectionSettings

CREDENTIALS_IN = {name: name for name in ("json", "form", "headers", "basic")}
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
#: Defaults of the extras, those of an OAuth2-style JSON endpoint.
DEFAULTS: dict[str, Any] = {
    "credentials_in": "json",
    "login_field": "client_id",
    "password_field": "client_secret",
    "token_field": "access_token",
    "expires_in_field": "expires_in",
    "expires_at_field": None,
    "token_type_field": "token_type",
    "scope_field": "scope",
    "default_lifetime": 3600.0,
}
# RFC 9110 section 5.6.2: the characters of a header name.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MIN_SECRET_SEARCHED = 3


def _json_object(settings: ConnectionSettings, name: str) -> dict[str, Any]:
    """Return extra ``name``: a JSON object, given as an object or as the text of one."""
    value: dict[str, Any] = settings.extra(name, dict, {})
    return value


def _path(settings: ConnectionSettings, name: str) -> str | None:
    """Return the dotted path in extra ``name``, its default when unset; a blank path or part is an error."""
    path = settings.extra(name, str, "")
    if not path:
        default: str | None = DEFAULTS[name]
        return default
    if not path.strip():
        raise settings.error(name, "is blank; name the field of the answer, like access_token or data.token")
    if "" in path.strip().split("."):
        raise settings.error(name, f"{path!r} has an empty part between dots")
    return path.strip()


def _header_names(settings: ConnectionSettings, field: str, names: list[str]) -> None:
    """Refuse header names HTTP cannot carry (``field`` is where they were configured)."""
    for name in names:
        if not _HEADER_NAME.fullmatch(name):
            raise settings.error(field, f"{name!r} is not a valid HTTP header name")


def _check_headers(settings: ConnectionSettings, headers: dict[str, Any]) -> dict[str, str]:
    """Return the static headers, each a valid name with a string value a header can carry."""
    _header_names(settings, "headers", list(headers))
    for name, value in headers.items():
        if not isinstance(value, str):
            raise settings.error("headers", f"value of {name!r} must be a string")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise settings.error(
                "headers", f"value of {name!r} has characters a header cannot carry"
            ) from None
        if value != value.strip() or "\r" in value or "\n" in value:
            raise settings.error("headers", f"value of {name!r} has surrounding spaces or a line break")
    return headers


def _media_type(headers: dict[str, str]) -> str:
    """Return the media type of the Content-Type among ``headers`` (lower case, no parameters), or ''."""
    for name, value in headers.items():
        if name.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return ""


def _refuse_credentials_in_url(
    settings: ConnectionSettings, url: str, login: str, secret: str, field_names: tuple[str, str]
) -> None:
    """Refuse a token URL that carries the secret anywhere, or a credential in its query string."""
    decoded = unquote(url)
    if len(secret) >= _MIN_SECRET_SEARCHED and (secret in url or secret in decoded):
        raise settings.error("host", "contains the connection's password; credentials never go into a URL")
    names = {name.lower() for name in field_names}
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name.lower() in names or value in (login, secret):
            raise settings.error(
                "host",
                f"the query parameter {name!r} carries a credential; credentials never go into a URL "
                "(credentials_in says where they go)",
            )


def _check_field_names(
    settings: ConnectionSettings,
    where: str,
    field_names: tuple[str, str],
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    """Refuse empty or clashing credential field names, and static fields a credential would overwrite."""
    for extra, name in zip(("login_field", "password_field"), field_names, strict=True):
        if not name:
            raise settings.error(extra, f"is empty; name the {where} field that carries the credential")
    if where == "headers":
        _header_names(settings, "password_field", [field_names[1]])
        _header_names(settings, "login_field", [field_names[0]])
        taken = {name.lower() for name in headers}
        clash = [name for name in field_names if name.lower() in taken]
        same = field_names[0].lower() == field_names[1].lower()
        where_taken = "headers"
    else:
        clash = [name for name in field_names if name in body]
        same = field_names[0] == field_names[1]
        where_taken = "body"
    if same:
        raise settings.error("password_field", f"{field_names[1]!r} is also the login_field")
    if clash:
        raise settings.error(
            where_taken, f"{clash[0]!r} collides with a credential field (login_field or password_field)"
        )


class TokenEndpointHook(TokenHook):
    """
    Fetch and cache tokens from any token endpoint that the connection describes, without code.

    :param token_endpoint_conn_id: the connection: host = the whole token URL, login and password = the
        credentials; extras ``credentials_in`` (json, form, headers or basic), ``login_field``,
        ``password_field``, ``body``, ``headers``, ``token_field``, ``expires_in_field``,
        ``expires_at_field``, ``token_type_field``, ``scope_field``, ``default_lifetime``.
    """

    conn_name_attr = "token_endpoint_conn_id"
    default_conn_name = "token_endpoint_default"
    conn_type = "token_endpoint"
    hook_name = "Token endpoint (custom)"
    host_is_token_url = True
    login_label = "Login"
    password_label = "Secret"

    def build_request(self, settings: ConnectionSettings, base_url: str) -> TokenRequest:
        """Return the token request: the static body and headers with the credentials where configured."""
        where = settings.choice("credentials_in", CREDENTIALS_IN, DEFAULTS["credentials_in"])
        login = settings.credential("login", self.login_label, in_header=where == "headers")
        secret = settings.credential("password", self.password_label, in_header=where == "headers")
        field_names = (
            settings.extra("login_field", str, DEFAULTS["login_field"]).strip(),
            settings.extra("password_field", str, DEFAULTS["password_field"]).strip(),
        )
        body = _json_object(settings, "body")
        headers = _check_headers(settings, _json_object(settings, "headers"))
        _refuse_credentials_in_url(settings, base_url, login, secret, field_names)
        media_type = _media_type(headers)
        if where == "json" and media_type == FORM_MEDIA_TYPE:
            raise settings.error("headers", f"Content-Type {media_type} contradicts credentials_in json")
        if where == "form" and media_type not in ("", FORM_MEDIA_TYPE):
            raise settings.error("headers", f"Content-Type {media_type} contradicts credentials_in form")
        secrets: tuple[str, ...] = (secret,)
        auth = None
        if where == "basic":
            if ":" in login:
                raise settings.error(
                    "login", f"{self.login_label} contains ':', which HTTP Basic cannot carry"
                )
            if "authorization" in {name.lower() for name in headers}:
                raise settings.error("headers", "Authorization collides with the HTTP Basic credentials")
            auth = (login, secret)
            # An endpoint that echoes the header it got would show the encoded secret: scrub that too.
            secrets += (base64.b64encode(f"{login}:{secret}".encode()).decode(),)
        else:
            _check_field_names(settings, where, field_names, body, headers)
            credentials = dict(zip(field_names, (login, secret), strict=True))
            if where == "headers":
                headers = {**headers, **credentials}
            else:
                body = {**body, **credentials}
        form = where == "form" or (where != "json" and media_type == FORM_MEDIA_TYPE)
        if form:
            for name, value in body.items():
                if not isinstance(value, str):
                    raise settings.error("body", f"value of {name!r} must be a string in a form body")
        return TokenRequest(
            url=base_url,
            secrets=secrets,
            headers=headers,
            json=body if body and not form else None,
            data=body if body and form else None,
            auth=auth,
        )

    def resolve_response_fields(self, settings: ConnectionSettings) -> ResponseFields:
        """Return where this connection's answer keeps the token, its type, expiry and scope."""
        token = _path(settings, "token_field")
        assert token is not None  # it has a default
        return ResponseFields(
            token=token,
            token_type=_path(settings, "token_type_field"),
            expires_in=_path(settings, "expires_in_field"),
            expires_at=_path(settings, "expires_at_field"),
            scope=_path(settings, "scope_field"),
            default_lifetime=settings.number(
                "default_lifetime", DEFAULTS["default_lifetime"], 1, MAX_LIFETIME
            ),
        )
