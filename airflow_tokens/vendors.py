"""The vendors: each one row of data, from which the provider info, the forms and the hooks derive.

A :class:`Vendor` row names its connection type and form, its default base URL (or an option that picks
one), its token path, and how its token endpoint is spoken to (:class:`Endpoint`: where the credentials
go, the static body and headers, where the answer keeps the token and its expiry). The generic request
builder (:mod:`airflow_tokens.endpoint`) reads a row; the ``token_endpoint`` type reads the same
description from the connection's extras instead. Adding a vendor means adding a row (and its emulator
route). Importing this module is cheap: Airflow reads the provider info, which uses it, without
importing any hook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urlsplit

from airflow_tokens.options import Extra, choice, same
from airflow_tokens.response import MAX_LIFETIME, ResponseFields

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


@dataclass(frozen=True, slots=True)
class Endpoint:
    """
    Say how a token endpoint is spoken to; the defaults describe an OAuth2-style JSON endpoint.

    :param credentials_in: how the client authenticates, a method of
        :data:`~airflow_tokens.endpoint.CLIENT_AUTH` (``json``, ``form``, ``headers``, ``basic``,
        ``basic_encoded``).
    :param login_field: the body field or header that carries the login.
    :param password_field: the body field or header that carries the secret.
    :param body: static fields sent with every request.
    :param headers: static headers sent with every request.
    :param form_body: whether a body beside credentials sent elsewhere (headers, Basic) is a form.
    :param response: where the answer keeps the token, its type, expiry and scope.
    """

    credentials_in: str = "json"
    login_field: str = "client_id"
    password_field: str = "client_secret"
    body: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    form_body: bool = False
    response: ResponseFields = field(default_factory=ResponseFields)


@dataclass(frozen=True, slots=True)
class Vendor:
    """
    One vendor: its connection type and form, where its token endpoint is, and how it is spoken to.

    :param conn_type: the connection type (a URI scheme).
    :param name: the name the connection form and messages show.
    :param hook: the hook class, ``module.Class`` below ``airflow_tokens.hooks``.
    :param conn_name_attr: the hook's keyword for the connection id.
    :param host_label: the form's label of the host field.
    :param placeholders: the form's placeholders of ``login``, ``password`` and (where no default base
        URL shows one) ``host``.
    :param login_label: what the vendor calls the login (the form and messages).
    :param password_label: what the vendor calls the secret.
    :param base_url: the base URL when the connection has no host; None when the host is required.
    :param base_url_option: an option whose choices are base URLs (a region, an environment).
    :param token_path: the token endpoint below the base URL; empty when the host is the whole token URL.
    :param endpoint: how the token endpoint is spoken to.
    :param auth_option: an option whose choices pick :attr:`Endpoint.credentials_in`.
    :param configurable: whether the connection's extras describe the endpoint (``token_endpoint``).
    :param extras: the options of this type beyond the common ones, in the form's order.
    """

    conn_type: str
    name: str
    hook: str
    conn_name_attr: str
    host_label: str
    placeholders: Mapping[str, str]
    login_label: str = "Client ID"
    password_label: str = "Client Secret"
    base_url: str | None = None
    base_url_option: Extra[str] | None = None
    token_path: str = ""
    endpoint: Endpoint = field(default_factory=Endpoint)
    auth_option: Extra[str] | None = None
    configurable: bool = False
    extras: tuple[Extra[Any], ...] = ()

    @property
    def default_conn_name(self) -> str:
        """Return the connection id the hook reads when given none."""
        return f"{self.conn_type}_default"

    @property
    def host_is_token_url(self) -> bool:
        """Say whether the connection's host is the whole token URL (required, used verbatim)."""
        return not self.token_path

    @property
    def default_host(self) -> str | None:
        """Return the base URL used without a host: the default, or the default choice of the option."""
        option = self.base_url_option
        if option is not None and option.choices is not None and option.default is not None:
            return option.choices[option.default]
        return self.base_url


def _hosts(choices: Mapping[str, str]) -> str:
    """Name each choice with the host of its base URL: ``EU (app.360learning.com) or US (...)``."""
    return " or ".join(f"{name} ({urlsplit(url).hostname})" for name, url in choices.items())


SIRV_EXPIRES_IN = Extra(
    "expires_in",
    float,
    "Requested lifetime (seconds)",
    "Optional. How long Sirv should keep each access token valid, 5 to 604800 seconds. "
    "Sirv's default is 1200 (20 minutes).",
    minimum=5,
    maximum=604800,
    whole=True,
)
_REGIONS = {"EU": "https://app.360learning.com", "US": "https://app.us.360learning.com"}
REGION = choice(
    "region", "Region", f"Where your 360Learning platform is hosted: {_hosts(_REGIONS)}.", _REGIONS, "EU"
)
_ENVIRONMENTS = {"production": "https://app.podero.com", "sandbox": "https://sandbox-app.podero.com"}
ENVIRONMENT = choice(
    "environment", "Environment", f"Podero {_hosts(_ENVIRONMENTS)}.", _ENVIRONMENTS, "production"
)
CLIENT_AUTH_METHOD = choice(
    "client_auth_method",
    "Client authentication",
    "How the client authenticates: client_secret_basic (HTTP Basic, the RFC default), "
    "client_secret_post (form fields), client_secret_json (a JSON body), client_secret_jwt (an "
    "assertion signed with the secret), private_key_jwt (an assertion signed with the private key "
    "below), tls_client_auth or self_signed_tls_client_auth (the client certificate below, no secret).",
    # RFC 6749 section 2.3.1: Basic credentials are form-urlencoded first.
    {
        "client_secret_basic": "basic_encoded",
        "client_secret_post": "form",
        "client_secret_json": "json",
        "client_secret_jwt": "client_secret_jwt",
        "private_key_jwt": "private_key_jwt",
        # RFC 8705: the server tells the two apart (a CA-issued or a registered certificate).
        "tls_client_auth": "tls_client_auth",
        "self_signed_tls_client_auth": "tls_client_auth",
    },
    "client_secret_basic",
)
PRIVATE_KEY = Extra(
    "private_key",
    str,
    "Private key (PEM)",
    "private_key_jwt: the client's private key, PEM text (BEGIN PRIVATE KEY), RSA, EC or Ed25519. "
    "Or set private_key_file.",
    "",
    format="multiline",
)
PRIVATE_KEY_FILE = Extra(
    "private_key_file",
    str,
    "Private key file",
    "private_key_jwt: the path of the PEM private key on every worker.",
    "",
)
PRIVATE_KEY_PASSPHRASE = Extra(
    "private_key_passphrase",
    str,
    "Private key passphrase",
    "Optional. The passphrase of an encrypted private key.",
    "",
    format="password",
)
KEY_ID = Extra(
    "key_id",
    str,
    "Key ID (kid)",
    "Optional. The kid of the signing key as the server knows it (the key's ID in its JWKS).",
    "",
)
ASSERTION_CERTIFICATE = Extra(
    "assertion_certificate",
    str,
    "Private key certificate",
    "Optional. private_key_jwt: the certificate of the private key, PEM text or a path; its thumbprints "
    "go in the assertion's header (x5t#S256, x5t), as Microsoft Entra ID asks.",
    "",
    format="multiline",
)
SIGNING_ALGORITHM = choice(
    "signing_algorithm",
    "Signing algorithm",
    "auto: RS256 for RSA keys, ES256 for P-256 (ES384 for P-384), EdDSA for Ed25519, HS256 for "
    "client_secret_jwt.",
    same("auto", "RS256", "PS256", "RS384", "PS384", "RS512", "PS512", "ES256", "ES384", "ES512", "EdDSA")
    | same("HS256", "HS384", "HS512"),
    "auto",
)
ASSERTION_AUDIENCE = Extra(
    "assertion_audience",
    str,
    "Assertion audience",
    "Optional. The aud claim of the assertion, for servers that want their issuer rather than the "
    "token endpoint URL.",
    "",
)
CLIENT_CERT = Extra(
    "client_cert",
    str,
    "Client certificate",
    "Optional. The client certificate for mutual TLS with the token endpoint (RFC 8705): PEM text or a path.",
    "",
    format="multiline",
)
CLIENT_KEY = Extra(
    "client_key",
    str,
    "Client certificate key file",
    "Optional. The path of the client certificate's key.",
    "",
)
CLIENT_PRIVATE_KEY = Extra(
    "client_private_key",
    str,
    "Client certificate key (PEM)",
    "Optional. The client certificate's key as PEM text (instead of a file).",
    "",
    format="multiline",
)
SCOPE = Extra("scope", str, "Scope", "Optional. Space-separated scopes to request, e.g. 'read write'.", "")
AUDIENCE = Extra("audience", str, "Audience", "Optional. The audience parameter some servers require.", "")
RESOURCE = Extra(
    "resource", str, "Resource", "Optional. The resource (RFC 8707) the token is for, an absolute URI.", ""
)
#: The options a caller may give per call (``get_token(scope=...)``), each winning over its extra.
CALL_OPTIONS = ("scope", "audience", "resource")


class CallOptions(TypedDict, total=False):
    """What one call may ask for instead of the connection's extras: a scope, an audience, a resource."""

    scope: str | Sequence[str] | None
    audience: str | None
    resource: str | None


EXTRA_PARAMS = Extra(
    "extra_params",
    dict,
    "Extra request parameters",
    'Optional. More parameters for the request, as JSON: {"resource": "..."}.',
)

# The token_endpoint type's description of its endpoint; the defaults are those of Endpoint().
_GENERIC = Endpoint()
CREDENTIALS_IN = choice(
    "credentials_in",
    "Credentials in",
    "Where the login and secret go: json (a JSON body), form (a form body), headers (two "
    "headers) or basic (HTTP Basic).",
    same("json", "form", "headers", "basic"),
    _GENERIC.credentials_in,
)
LOGIN_FIELD = Extra(
    "login_field",
    str,
    "Login field",
    "The body field or header that carries the login (json, form, headers).",
    _GENERIC.login_field,
)
PASSWORD_FIELD = Extra(
    "password_field",
    str,
    "Secret field",
    "The body field or header that carries the secret (json, form, headers). "
    f"Default: {_GENERIC.password_field}.",
    _GENERIC.password_field,
)
BODY = Extra(
    "body",
    dict,
    "Static body",
    'Optional. A JSON object sent with every request, e.g. {"grant_type": '
    '"client_credentials"}. With headers or basic it is sent as JSON, or as a form when the '
    "headers set Content-Type: application/x-www-form-urlencoded.",
)
HEADERS = Extra(
    "headers",
    dict,
    "Static headers",
    'Optional. A JSON object of headers sent with every request, e.g. {"Accept": "application/json"}.',
)
TOKEN_FIELD = Extra(
    "token_field",
    str,
    "Token field",
    "Where the answer holds the token, a dotted path for nested answers (data.session.value). "
    f"Default: {_GENERIC.response.token}.",
    _GENERIC.response.token,
)
EXPIRES_IN_FIELD = Extra(
    "expires_in_field",
    str,
    "Lifetime field",
    "Where the answer holds the lifetime in seconds (a number or numeric string).",
    _GENERIC.response.expires_in,
)
EXPIRES_AT_FIELD = Extra(
    "expires_at_field",
    str,
    "Expiry time field",
    "Optional. Where the answer holds the expiry time: epoch seconds or milliseconds, or "
    "ISO 8601 with Z or an offset. Read when the lifetime field is absent.",
    _GENERIC.response.expires_at,
)
TOKEN_TYPE_FIELD = Extra(
    "token_type_field",
    str,
    "Token type field",
    f"Where the answer holds the token type. Default: {_GENERIC.response.token_type}; Bearer when absent.",
    _GENERIC.response.token_type,
)
SCOPE_FIELD = Extra(
    "scope_field",
    str,
    "Scope field",
    "Where the answer holds the granted scope (a list or space-separated string).",
    _GENERIC.response.scope,
)
DEFAULT_LIFETIME = Extra(
    "default_lifetime",
    float,
    "Default lifetime (seconds)",
    "The lifetime assumed when the answer states no expiry and the token is no JWT with an exp claim.",
    _GENERIC.response.default_lifetime,
    minimum=1,
    maximum=MAX_LIFETIME,
    whole=True,
)

VENDORS: dict[str, Vendor] = {
    vendor.conn_type: vendor
    for vendor in (
        Vendor(
            "sirv",
            "Sirv",
            "sirv.SirvTokenHook",
            "sirv_conn_id",
            "API base URL (optional)",
            {"login": "Sirv API client ID", "password": "Sirv API client secret"},
            base_url="https://api.sirv.com",
            token_path="/v2/token",
            endpoint=Endpoint(
                login_field="clientId",
                password_field="clientSecret",
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                response=ResponseFields(
                    token="token", token_type=None, expires_in="expiresIn", default_lifetime=1200
                ),
            ),
            extras=(SIRV_EXPIRES_IN,),
        ),
        Vendor(
            "learning360",
            "360Learning",
            "learning360.Learning360TokenHook",
            "learning360_conn_id",
            "Base URL (optional, overrides Region)",
            {"login": "360Learning API client ID", "password": "360Learning API client secret"},
            base_url_option=REGION,
            token_path="/api/v2/oauth2/token",
            endpoint=Endpoint(
                body={"grant_type": "client_credentials"},
                headers={"accept": "application/json", "content-type": "application/json"},
            ),
            extras=(REGION,),
        ),
        Vendor(
            "manis",
            "Manis",
            "manis.ManisTokenHook",
            "manis_conn_id",
            "API base URL (required)",
            {
                "host": "https://your-manis-api-host.example.com",
                "login": "Manis merchant ID (sent as x-merchant-id)",
                "password": "Manis merchant secret (sent as x-secret)",
            },
            login_label="Merchant ID",
            password_label="Secret",
            token_path="/api/v1/auth/token",
            endpoint=Endpoint(
                credentials_in="headers",
                login_field="x-merchant-id",
                password_field="x-secret",
                response=ResponseFields(
                    token="token", token_type="tokenType", expires_in=None, expires_at="expiresAt", scope=None
                ),
            ),
        ),
        Vendor(
            "podero",
            "Podero",
            "podero.PoderoTokenHook",
            "podero_conn_id",
            "Base URL (optional, overrides Environment)",
            {"login": "Podero partner API client ID", "password": "Podero partner API client secret"},
            base_url_option=ENVIRONMENT,
            token_path="/oauth2/token/",
            endpoint=Endpoint(
                credentials_in="basic",
                body={"grant_type": "client_credentials"},
                headers={"Cache-Control": "no-cache", "Content-Type": "application/json"},
                response=ResponseFields(default_lifetime=36000),
            ),
            extras=(ENVIRONMENT,),
        ),
        Vendor(
            "oauth2_client_credentials",
            "OAuth2 Client Credentials",
            "oauth2.OAuth2ClientCredentialsHook",
            "oauth2_conn_id",
            "Token endpoint URL",
            {
                "host": "https://auth.example.com/oauth2/token",
                "login": "OAuth2 client ID",
                "password": "OAuth2 client secret",
            },
            endpoint=Endpoint(
                body={"grant_type": "client_credentials"},
                headers={"Accept": "application/json"},
                form_body=True,
            ),
            auth_option=CLIENT_AUTH_METHOD,
            extras=(
                CLIENT_AUTH_METHOD,
                SCOPE,
                AUDIENCE,
                RESOURCE,
                EXTRA_PARAMS,
                PRIVATE_KEY,
                PRIVATE_KEY_FILE,
                PRIVATE_KEY_PASSPHRASE,
                KEY_ID,
                ASSERTION_CERTIFICATE,
                SIGNING_ALGORITHM,
                ASSERTION_AUDIENCE,
                CLIENT_CERT,
                CLIENT_KEY,
                CLIENT_PRIVATE_KEY,
            ),
        ),
        Vendor(
            "token_endpoint",
            "Token endpoint (custom)",
            "token_endpoint.TokenEndpointHook",
            "token_endpoint_conn_id",
            "Token endpoint URL",
            {
                "host": "https://api.example.com/auth/token",
                "login": "Client ID, key ID or user name (sent as the login field)",
                "password": "Client secret, API secret or password (sent as the password field)",
            },
            login_label="Login",
            password_label="Secret",
            auth_option=CREDENTIALS_IN,
            configurable=True,
            extras=(
                CREDENTIALS_IN,
                LOGIN_FIELD,
                PASSWORD_FIELD,
                BODY,
                HEADERS,
                TOKEN_FIELD,
                EXPIRES_IN_FIELD,
                EXPIRES_AT_FIELD,
                TOKEN_TYPE_FIELD,
                SCOPE_FIELD,
                DEFAULT_LIFETIME,
            ),
        ),
    )
}

#: Connection types an earlier release registered, and the type each is now: an old connection is
#: named in the error with the type to set.
RENAMED_CONNECTION_TYPES = {"360learning": "learning360"}  # 0.2: a URI scheme cannot start with a digit
