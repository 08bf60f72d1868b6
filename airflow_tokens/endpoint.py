"""The one request builder: a vendor's endpoint description and a connection's credentials make the request.

Every vendor is a preset of this builder (:mod:`airflow_tokens.vendors`); the ``token_endpoint`` type
reads the same description from the connection's extras. How the client authenticates is a row of
:data:`CLIENT_AUTH`, a table of name -> method (as Authlib keeps its client authentication methods):
a new method is a new row, not a branch in a vendor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from airflow_tokens.assertion import private_key_assertion, secret_assertion
from airflow_tokens.client_cert import client_certificate
from airflow_tokens.redaction import basic_forms
from airflow_tokens.request import TokenRequest
from airflow_tokens.response import ResponseFields
from airflow_tokens.vendors import (
    ASSERTION_AUDIENCE,
    ASSERTION_CERTIFICATE,
    BODY,
    CLIENT_CERT,
    CREDENTIALS_IN,
    DEFAULT_LIFETIME,
    EXPIRES_AT_FIELD,
    EXPIRES_IN_FIELD,
    HEADERS,
    KEY_ID,
    LOGIN_FIELD,
    PASSWORD_FIELD,
    PRIVATE_KEY,
    PRIVATE_KEY_FILE,
    PRIVATE_KEY_PASSPHRASE,
    SCOPE_FIELD,
    SIGNING_ALGORITHM,
    TOKEN_FIELD,
    TOKEN_TYPE_FIELD,
    Endpoint,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_tokens.assertion import ClientAssertion
    from airflow_tokens.connection import ConnectionSettings
    from airflow_tokens.options import Extra
    from airflow_tokens.vendors import Vendor

    #: What a vendor's code makes of the body: (settings, static fields, credential fields) -> body.
    ComposeBody = Callable[[ConnectionSettings, dict[str, Any], dict[str, str]], dict[str, Any]]

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# RFC 9110 section 5.6.2: the characters of a header name.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MIN_SECRET_SEARCHED = 3


@dataclass(slots=True)
class _Draft:
    """The request while a client authentication method places the credentials in it."""

    url: str
    login: str
    secret: str
    field_names: tuple[str, str]
    body: dict[str, Any]
    headers: dict[str, str]
    secrets: tuple[str, ...]
    auth: tuple[str, str] | None = None
    #: The credential fields that go into the body, after its static fields.
    body_credentials: dict[str, str] = field(default_factory=dict)
    #: The signer of the client assertion each attempt sends (RFC 7523), if the client signs one.
    assertion: ClientAssertion | None = None
    #: Whether the client authenticates with its certificate alone (RFC 8705): one is then required.
    needs_certificate: bool = False


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """
    One way for a client to authenticate to the token endpoint.

    :param place: puts the credentials into the draft request (and refuses what cannot carry them).
    :param in_header: whether the credentials travel in headers (then they must be header-safe).
    :param body: the body's encoding: ``json``, ``form``, or ``either`` (a form when the endpoint says so).
    :param secret: whether the method sends or signs with the secret (the password field is required);
        a method without one refuses a password it would not use.
    :param reads: the extras that only some methods read, which this one reads; another method's
        left set are reported as unused (a warning in a task, an error in ``check`` and **Test**).
    """

    place: Callable[[ConnectionSettings, Vendor, _Draft], None]
    in_header: bool = False
    body: str = "either"
    secret: bool = True
    reads: tuple[str, ...] = ()


def _in_body(where: str) -> Callable[[ConnectionSettings, Vendor, _Draft], None]:
    """Return the method that puts the credentials into a ``where`` (json or form) body."""

    def place(settings: ConnectionSettings, vendor: Vendor, draft: _Draft) -> None:
        _check_field_names(settings, where, draft.field_names, draft.body, draft.headers)
        draft.body_credentials = dict(zip(draft.field_names, (draft.login, draft.secret), strict=True))

    return place


def _in_headers(settings: ConnectionSettings, vendor: Vendor, draft: _Draft) -> None:
    _check_field_names(settings, "headers", draft.field_names, draft.body, draft.headers)
    draft.headers = {
        **draft.headers,
        **dict(zip(draft.field_names, (draft.login, draft.secret), strict=True)),
    }


def _basic_pair(settings: ConnectionSettings, draft: _Draft, login: str, secret: str) -> None:
    if "authorization" in {name.lower() for name in draft.headers}:
        raise settings.error("headers", "Authorization collides with the HTTP Basic credentials")
    draft.auth = (login, secret)
    # An endpoint that echoes the header it got would show the encoded secret: scrub that too.
    draft.secrets += basic_forms(login, secret)


def _basic(settings: ConnectionSettings, vendor: Vendor, draft: _Draft) -> None:
    if ":" in draft.login:
        raise settings.error("login", f"{vendor.login_label} contains ':', which HTTP Basic cannot carry")
    _basic_pair(settings, draft, draft.login, draft.secret)


def encode_basic_credential(value: str) -> str:
    """Percent-encode a client ID or secret for HTTP Basic: every reserved character, a space as ``%20``."""
    # RFC 6749 section 2.3.1 form-urlencodes them, but a form's ``+`` for a space stays ``+`` on servers
    # that decode with plain percent-decoding (``unquote``); ``%20`` reads back alike with ``unquote_plus``.
    return quote(value, safe="")


def _basic_encoded(settings: ConnectionSettings, vendor: Vendor, draft: _Draft) -> None:
    login, secret = encode_basic_credential(draft.login), encode_basic_credential(draft.secret)
    draft.secrets += (secret,)
    _basic_pair(settings, draft, login, secret)


def _client_id(draft: _Draft) -> None:
    """Put the client ID (and nothing else) into the body's credential fields."""
    draft.body_credentials = {draft.field_names[0]: draft.login}


def _assertion_audience(settings: ConnectionSettings, draft: _Draft) -> str:
    return settings.value(ASSERTION_AUDIENCE).strip() or draft.url


def _client_secret_jwt(settings: ConnectionSettings, vendor: Vendor, draft: _Draft) -> None:
    # RFC 7523 section 2.2 with an HMAC of the secret (OpenID Connect Core section 9): the secret
    # itself never travels.
    _client_id(draft)
    draft.assertion = secret_assertion(
        settings,
        draft.login,
        draft.secret,
        _assertion_audience(settings, draft),
        settings.choice(SIGNING_ALGORITHM),
        settings.value(KEY_ID).strip(),
    )


def _private_key_jwt(settings: ConnectionSettings, vendor: Vendor, draft: _Draft) -> None:
    _client_id(draft)
    draft.assertion = private_key_assertion(
        settings,
        draft.login,
        _assertion_audience(settings, draft),
        settings.choice(SIGNING_ALGORITHM),
        settings.value(KEY_ID).strip(),
        settings.value(PRIVATE_KEY_PASSPHRASE),
        ASSERTION_CERTIFICATE.name,
    )


def _tls_client_auth(settings: ConnectionSettings, vendor: Vendor, draft: _Draft) -> None:
    # RFC 8705 section 2: the certificate authenticates; the client ID goes in the body.
    _client_id(draft)
    draft.needs_certificate = True


#: What every JWT client assertion reads.
_SIGNED = (KEY_ID.name, SIGNING_ALGORITHM.name, ASSERTION_AUDIENCE.name)
_KEY = (PRIVATE_KEY, PRIVATE_KEY_FILE, PRIVATE_KEY_PASSPHRASE, ASSERTION_CERTIFICATE)
_SIGNED_WITH_KEY = (*_SIGNED, *(extra.name for extra in _KEY))
#: How a client authenticates, by name: ``credentials_in`` of an :class:`~airflow_tokens.vendors.Endpoint`.
CLIENT_AUTH: dict[str, ClientAuth] = {
    "json": ClientAuth(_in_body("json"), body="json"),
    "form": ClientAuth(_in_body("form"), body="form"),
    "headers": ClientAuth(_in_headers, in_header=True),
    "basic": ClientAuth(_basic),
    # RFC 6749 section 2.3.1: client_secret_basic encodes both parts before HTTP Basic.
    "basic_encoded": ClientAuth(_basic_encoded),
    # RFC 7523 section 2.2: a JWT client assertion, signed anew for every attempt.
    "client_secret_jwt": ClientAuth(_client_secret_jwt, body="form", reads=_SIGNED),
    "private_key_jwt": ClientAuth(_private_key_jwt, body="form", secret=False, reads=_SIGNED_WITH_KEY),
    # RFC 8705 section 2: mutual TLS; tls_client_auth and self_signed_tls_client_auth alike.
    "tls_client_auth": ClientAuth(_tls_client_auth, body="form", secret=False),
}
#: The extras only some methods read.
_METHOD_EXTRAS = frozenset(name for auth in CLIENT_AUTH.values() for name in auth.reads)


def _path(settings: ConnectionSettings, extra: Extra[str]) -> str | None:
    """Return the dotted path in ``extra``, its default when unset; a blank path or part is an error."""
    path = settings.extra(extra.name, str, "")
    if not path:
        return extra.default
    if not path.strip():
        raise settings.error(
            extra.name, "is blank; name the field of the answer, like access_token or data.token"
        )
    if "" in path.strip().split("."):
        raise settings.error(extra.name, f"{path!r} has an empty part between dots")
    return path.strip()


def endpoint_for(vendor: Vendor, settings: ConnectionSettings) -> Endpoint:
    """Return how this connection's endpoint is spoken to: the vendor's row, or what the extras describe."""
    if not vendor.configurable:
        return vendor.endpoint
    token = _path(settings, TOKEN_FIELD)
    assert token is not None  # it has a default
    body: dict[str, Any] = settings.get(BODY) or {}
    headers: dict[str, Any] = settings.get(HEADERS) or {}
    return Endpoint(
        credentials_in=settings.choice(CREDENTIALS_IN),
        login_field=settings.value(LOGIN_FIELD).strip(),
        password_field=settings.value(PASSWORD_FIELD).strip(),
        body=body,
        headers=headers,
        response=ResponseFields(
            token=token,
            token_type=_path(settings, TOKEN_TYPE_FIELD),
            expires_in=_path(settings, EXPIRES_IN_FIELD),
            expires_at=_path(settings, EXPIRES_AT_FIELD),
            scope=_path(settings, SCOPE_FIELD),
            default_lifetime=settings.value(DEFAULT_LIFETIME),
        ),
    )


def default_body(
    settings: ConnectionSettings, static: dict[str, Any], credentials: dict[str, str]
) -> dict[str, Any]:
    """Return the static fields followed by the credential fields."""
    return {**static, **credentials}


def build_request(
    settings: ConnectionSettings, vendor: Vendor, url: str, compose: ComposeBody = default_body
) -> TokenRequest:
    """Return the token request: the endpoint's static body and headers with the credentials in place."""
    endpoint = endpoint_for(vendor, settings)
    option = vendor.auth_option
    method = settings.choice(option) if option else endpoint.credentials_in
    client_auth = CLIENT_AUTH[method]
    if option:
        chosen = settings.value(option).strip().lower()  # as the user named it, for the message
        for name in sorted(_METHOD_EXTRAS.difference(client_auth.reads)):
            settings.leave_unused(name, f"is set, but {option.name} {chosen} does not use it")
    login = settings.credential("login", vendor.login_label, in_header=client_auth.in_header)
    if client_auth.secret:
        secret = settings.credential("password", vendor.password_label, in_header=client_auth.in_header)
    elif settings.conn.password:
        raise settings.error(
            "password", f"is set, but {method.replace('_', ' ')} sends no secret; clear the password field"
        )
    else:
        secret = ""
    field_names = (endpoint.login_field, endpoint.password_field)
    body = dict(endpoint.body)
    headers = _check_headers(settings, dict(endpoint.headers))
    _refuse_credentials_in_url(settings, url, login, secret, field_names)
    media_type = _media_type(headers)
    if client_auth.body == "json" and media_type == FORM_MEDIA_TYPE:
        raise settings.error("headers", f"Content-Type {media_type} contradicts credentials_in json")
    if client_auth.body == "form" and media_type not in ("", FORM_MEDIA_TYPE):
        raise settings.error("headers", f"Content-Type {media_type} contradicts credentials_in form")
    draft = _Draft(url, login, secret, field_names, body, headers, (secret,) if secret else ())
    client_auth.place(settings, vendor, draft)
    cert = client_certificate(settings) if CLIENT_CERT.name in settings.known else None
    if draft.needs_certificate and cert is None:
        raise settings.error(
            "client_cert", f"is required by {method.replace('_', ' ')}: set it and client_key"
        )
    body = compose(settings, draft.body, draft.body_credentials)
    form = client_auth.body == "form" or (
        client_auth.body == "either" and (endpoint.form_body or media_type == FORM_MEDIA_TYPE)
    )
    if form:
        for name, value in body.items():
            if not isinstance(value, str):
                raise settings.error("body", f"value of {name!r} must be a string in a form body")
    return TokenRequest(
        url=url,
        secrets=draft.secrets,
        headers=draft.headers,
        json=body if body and not form else None,
        data=body if body and form else None,
        auth=draft.auth,
        assertion=draft.assertion,
        cert=cert,
    )


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
