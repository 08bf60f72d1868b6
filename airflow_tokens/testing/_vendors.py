"""Define the emulated vendors: one token route per vendor, registered in :data:`VENDOR_TABLE`.

A vendor is two plain functions. Its check ``(TokenRequest) -> Reply | None`` holds the request
against the vendor's documented shape (method, media type, body keys and types, required headers)
and returns the vendor's own rejection of a malformed one. Its route ``(TokenRequest,
VendorContext) -> Reply`` answers a well-formed request: it checks the credentials, issues a token
through the context and answers with the vendor's own success or error body, as the vendor's API
reference shows. The web layer (:mod:`airflow_tokens.testing.emulator`) runs the check on every
request, faults or not, and does the rest: counting, the request log, faults.

Every vendor issues tokens whose lifetime is unlike the lifetime its documentation states and
unlike every hook's default lifetime (1200 s, 3600 s, 36000 s): a client that ignores the expiry
in the answer, or misreads it, and falls back on the documented lifetime is seen to.

Adding a vendor is one decorated function here plus its name in
:data:`airflow_tokens.testing.VENDORS`.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from http import HTTPStatus
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from airflow_tokens.testing.constants import CUSTOM_ENDPOINT_PATH, VENDORS

ExpiresAtUnit = Literal["s", "ms"]
BasicAuthEncoding = Literal["either", "form", "raw"]

#: Options of ``POST /_emulator/config`` every vendor accepts.
COMMON_OPTIONS: Final = frozenset({"lifetime"})


@dataclass(frozen=True)
class VendorConfig:
    """Hold the runtime switches of one emulated vendor.

    :param lifetime: token lifetime in seconds; ``None`` means the vendor's default in the emulator.
    :param expires_in_as_string: send ``expires_in`` as a JSON string (``"3600"``) not a number.
    :param expires_at_unit: unit of Manis ``expiresAt``: ``"ms"`` (epoch milliseconds) or ``"s"``.
    :param basic_auth_encoding: how HTTP Basic credentials may be encoded: ``"form"`` (RFC 6749
        section 2.3.1: form-urlencoded before base64), ``"raw"`` (``id:secret`` as is) or
        ``"either"``.
    """

    lifetime: int | None = None
    expires_in_as_string: bool = False
    expires_at_unit: ExpiresAtUnit = "ms"
    basic_auth_encoding: BasicAuthEncoding = "either"


@dataclass(frozen=True)
class TokenRequest:
    """Carry one received token request, already read from the wire.

    :param method: the HTTP method.
    :param path: the URL path.
    :param headers: the request headers, names lower-cased (repeated headers joined by ``", "``).
    :param body: the raw request body.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    @cached_property
    def text(self) -> str:
        """Return the body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    @cached_property
    def media_type(self) -> str:
        """Return the lower-cased media type of ``Content-Type`` without parameters, or ``""``."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def is_json(self) -> bool:
        """Tell whether the body is declared as JSON (``application/json`` or ``*/*+json``)."""
        return self.media_type == "application/json" or (
            self.media_type.startswith("application/") and self.media_type.endswith("+json")
        )

    @property
    def is_form(self) -> bool:
        """Tell whether the body is declared as ``application/x-www-form-urlencoded``."""
        return self.media_type == "application/x-www-form-urlencoded"

    @cached_property
    def json_value(self) -> tuple[bool, Any]:
        """Return ``(True, value)`` if the body parses as strict JSON, else ``(False, None)``."""
        if not self.body.strip():
            return False, None
        try:
            return True, json.loads(self.body, parse_constant=_reject_constant)
        except ValueError:
            return False, None

    @cached_property
    def form_pairs(self) -> list[tuple[str, str]] | None:
        """Return the form-urlencoded ``(name, value)`` pairs in order, or ``None`` if undecodable."""
        try:
            text = self.body.decode("utf-8")
            return parse_qsl(text, keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            return None

    def log_record(self, vendor: str, *, valid: bool) -> dict[str, Any]:
        """Return the JSON-able record of this request kept in the request log.

        :param vendor: the vendor whose endpoint received the request.
        :param valid: whether the request has the vendor's documented shape.
        """
        parsed, value = self.json_value
        form: dict[str, str | list[str]] | None = None
        if self.is_form and self.form_pairs is not None:
            form = {}
            for name, item in self.form_pairs:
                previous = form.get(name)
                if previous is None:
                    form[name] = item
                elif isinstance(previous, list):
                    previous.append(item)
                else:
                    form[name] = [previous, item]
        return {
            "vendor": vendor,
            "time": time.time(),
            "method": self.method,
            "path": self.path,
            "headers": dict(self.headers),
            "body": self.text,
            "json": value if parsed else None,
            "form": form,
            "valid": valid,
        }


@dataclass
class Reply:
    """Describe a vendor's answer before it is put on the wire.

    :param status: the HTTP status code.
    :param body: a JSON-able value, or ``None`` for an empty body.
    :param headers: extra response headers, names lower-cased.
    """

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Tell whether the status is a success (2xx)."""
        return 200 <= self.status < 300


class VendorContext:
    """Give a vendor route its configuration, the clock, the credential check and token issuing.

    :param vendor: the vendor's name.
    :param config: the vendor's current configuration.
    :param default_lifetime: the vendor's token lifetime in seconds when none is configured.
    :param check_credentials: ``(client_id, client_secret) -> bool``.
    :param register_token: ``(token, expires_at) -> None``, remembers an issued token.
    :param secrets_of: ``client_id -> secrets``, the keys of its ``client_secret_jwt`` assertions.
    :param keys_of: ``client_id -> [(kid, public key PEM)]``, the keys of its ``private_key_jwt`` ones.
    :param claim_jti: ``jti -> bool``, false for an assertion ID seen before (a replay).
    """

    def __init__(
        self,
        vendor: str,
        config: VendorConfig,
        default_lifetime: int,
        check_credentials: Callable[[str, str], bool],
        register_token: Callable[[str, float], None],
        secrets_of: Callable[[str], list[str]] = lambda client_id: [],
        keys_of: Callable[[str], list[tuple[str | None, str]]] = lambda client_id: [],
        claim_jti: Callable[[str], bool] = lambda jti: True,
    ) -> None:
        self.vendor = vendor
        self.config = config
        self.now = time.time()
        self._default_lifetime = default_lifetime
        self._check_credentials = check_credentials
        self._register_token = register_token
        self.secrets_of = secrets_of
        self.keys_of = keys_of
        self.claim_jti = claim_jti

    @property
    def lifetime(self) -> int:
        """Return the configured token lifetime, or the vendor's default, in seconds."""
        return self._default_lifetime if self.config.lifetime is None else self.config.lifetime

    def credentials_valid(self, client_id: str, client_secret: str) -> bool:
        """Tell whether the pair is accepted for this vendor."""
        return self._check_credentials(client_id, client_secret)

    def issue(self, lifetime: int) -> tuple[str, float]:
        """Issue a random token valid for ``lifetime`` seconds from now; return it and its expiry."""
        token = secrets.token_urlsafe(32)
        expires_at = self.now + lifetime
        self._register_token(token, expires_at)
        return token, expires_at

    def remember(self, token: str, expires_at: float) -> None:
        """Remember a token the route built itself (e.g. a JWT) as issued until ``expires_at``."""
        self._register_token(token, expires_at)


Route = Callable[[TokenRequest, VendorContext], Reply]
Check = Callable[[TokenRequest], Reply | None]
ErrorBody = Callable[[int], Any]


@dataclass(frozen=True)
class Vendor:
    """Describe one emulated vendor.

    :param name: the vendor's name (one of :data:`airflow_tokens.testing.VENDORS`).
    :param path: the token endpoint's path (``POST``).
    :param lifetime: the lifetime of the tokens the emulator issues by default, in seconds; unlike
        the vendor's documented lifetime on purpose (see the module's docstring).
    :param check: the function rejecting a request the vendor's documented shape does not allow.
    :param route: the function answering a well-formed token request.
    :param error_body: ``status -> body`` in the vendor's own error shape, used by faults.
    :param options: names of the ``POST /_emulator/config`` options the vendor understands.
    :param defaults: configuration values that differ from :class:`VendorConfig`'s defaults.
    """

    name: str
    path: str
    lifetime: int
    check: Check
    route: Route
    error_body: ErrorBody
    options: frozenset[str]
    defaults: Mapping[str, Any]

    def default_config(self) -> VendorConfig:
        """Return the vendor's configuration after a reset."""
        return VendorConfig(**self.defaults)


VENDOR_TABLE: dict[str, Vendor] = {}


def vendor(
    name: str,
    path: str,
    *,
    lifetime: int,
    check: Check,
    error_body: ErrorBody,
    options: frozenset[str] = frozenset(),
    defaults: Mapping[str, Any] | None = None,
) -> Callable[[Route], Route]:
    """Register the decorated function as the token route of vendor ``name``, ``check`` as its check."""

    def register(route: Route) -> Route:
        VENDOR_TABLE[name] = Vendor(
            name=name,
            path=path,
            lifetime=lifetime,
            check=check,
            route=route,
            error_body=error_body,
            options=COMMON_OPTIONS | options,
            defaults=dict(defaults or {}),
        )
        return route

    return register


# ----------------------------------------------------------------------------------- helpers


def _reject_constant(name: str) -> Any:
    """Refuse ``NaN`` and ``Infinity``, which are not JSON."""
    raise ValueError(f"invalid JSON constant {name}")


def _phrase(status: int) -> str:
    """Return the reason phrase of an HTTP status."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _encode_segment(value: Mapping[str, Any]) -> str:
    """Encode a JWT segment: compact JSON, base64url without padding."""
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class BasicCredentials:
    """Hold what an ``Authorization: Basic`` header carried.

    :param present: whether the request used the Basic scheme at all.
    :param candidates: the ``(client_id, client_secret)`` readings allowed by the configured
        encoding; empty when the header is malformed.
    """

    present: bool
    candidates: tuple[tuple[str, str], ...] = ()


def basic_credentials(headers: Mapping[str, str], encoding: BasicAuthEncoding) -> BasicCredentials:
    """Read HTTP Basic client credentials, as raw ``id:secret`` and/or form-urlencoded pairs."""
    scheme, _, encoded = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return BasicCredentials(present=False)
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return BasicCredentials(present=True)
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")
    user, colon, password = decoded.partition(":")
    if not colon:
        return BasicCredentials(present=True)
    readings: list[tuple[str, str]] = []
    if encoding in ("either", "raw"):
        readings.append((user, password))
    if encoding in ("either", "form"):
        form = (unquote_plus(user), unquote_plus(password))
        if form not in readings:
            readings.append(form)
    return BasicCredentials(present=True, candidates=tuple(readings))


def _expires_in(ctx: VendorContext, seconds: int) -> int | str:
    """Render ``expires_in`` as the vendor is configured to: a number or a string."""
    return str(seconds) if ctx.config.expires_in_as_string else seconds


# --------------------------------------------------------------------------------------- sirv

SIRV_SCOPE: Final = (
    "account:read",
    "account:write",
    "user:read",
    "user:write",
    "billing:read",
    "billing:write",
    "files:read",
    "files:write",
    "videos",
    "images",
)
SIRV_EXPIRES_IN_MIN: Final = 5
SIRV_EXPIRES_IN_MAX: Final = 604800
_SIRV_KEYS: Final = ("clientId", "clientSecret", "expiresIn")


def _sirv_error(status: int, message: str | None = None) -> dict[str, Any]:
    """Build Sirv's error body: ``{"statusCode", "error", "message"}``."""
    return {"statusCode": status, "error": _phrase(status), "message": message or _phrase(status)}


def _sirv_bad_request(message: str) -> Reply:
    """Answer 400 in Sirv's shape."""
    return Reply(400, _sirv_error(400, message))


def _sirv_check(req: TokenRequest) -> Reply | None:
    """Hold the body against Sirv's JSON schema; return the 400 reply if it breaks it."""
    if not req.is_json:
        if not req.media_type:
            return _sirv_bad_request("body must be object")
        return _sirv_bad_request(
            f"Unsupported Media Type: {req.media_type}; the body must be JSON (application/json)"
        )
    parsed, body = req.json_value
    if not parsed:
        if not req.body.strip():
            return _sirv_bad_request("body must be object")
        return _sirv_bad_request("Body is not valid JSON but content-type is set to 'application/json'")
    if not isinstance(body, dict):
        return _sirv_bad_request("body must be object")
    for key in ("clientId", "clientSecret"):
        if key not in body:
            return _sirv_bad_request(f"body must have required property '{key}'")
    extra = sorted(set(body) - set(_SIRV_KEYS))
    if extra:
        return _sirv_bad_request(f"body must NOT have additional properties: '{extra[0]}'")
    for key in ("clientId", "clientSecret"):
        if not isinstance(body[key], str):
            return _sirv_bad_request(f"body/{key} must be string")
    if "expiresIn" in body:
        value = body["expiresIn"]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return _sirv_bad_request("body/expiresIn must be integer")
        if value < SIRV_EXPIRES_IN_MIN:
            return _sirv_bad_request(f"body/expiresIn must be >= {SIRV_EXPIRES_IN_MIN}")
        if value > SIRV_EXPIRES_IN_MAX:
            return _sirv_bad_request(f"body/expiresIn must be <= {SIRV_EXPIRES_IN_MAX}")
    return None


@vendor("sirv", "/v2/token", lifetime=1500, check=_sirv_check, error_body=_sirv_error)
def sirv(req: TokenRequest, ctx: VendorContext) -> Reply:
    """Answer Sirv's ``POST /v2/token``: JSON ``{clientId, clientSecret[, expiresIn]}`` -> JWT."""
    _, body = req.json_value
    if not ctx.credentials_valid(body["clientId"], body["clientSecret"]):
        return Reply(401, _sirv_error(401, "Wrong credentials"))
    expires_in = int(body.get("expiresIn", ctx.lifetime))
    issued_at = int(ctx.now)
    claims = {
        "clientId": body["clientId"],
        "clientName": "airflow-tokens emulator",
        "scope": list(SIRV_SCOPE),
        "iat": issued_at,
        "exp": issued_at + expires_in,
        "aud": "airflowtokensemulator",
    }
    jwt = ".".join(
        (_encode_segment({"alg": "HS256", "typ": "JWT"}), _encode_segment(claims), secrets.token_urlsafe(32))
    )
    ctx.remember(jwt, issued_at + expires_in)
    return Reply(200, {"token": jwt, "expiresIn": expires_in, "scope": list(SIRV_SCOPE)})


# -------------------------------------------------------------------- OAuth-style error bodies

_OAUTH_ERROR_CODES: Final = {
    400: "invalid_request",
    401: "invalid_client",
    403: "unauthorized_client",
    429: "too_many_requests",
    503: "temporarily_unavailable",
}


def _oauth_error_code(status: int) -> str:
    """Return the OAuth ``error`` code that best names an HTTP status."""
    if status in _OAUTH_ERROR_CODES:
        return _OAUTH_ERROR_CODES[status]
    return "server_error" if status >= 500 else "invalid_request"


def _oauth_error(status: int) -> dict[str, Any]:
    """Build an RFC 6749 section 5.2 error body for a status."""
    return {"error": _oauth_error_code(status), "error_description": _phrase(status)}


def _oauth_reply(status: int, body: dict[str, Any], **headers: str) -> Reply:
    """Answer as an RFC 6749 token endpoint does: never cacheable."""
    return Reply(status, body, {"cache-control": "no-store", "pragma": "no-cache", **headers})


# -------------------------------------------------------------------------------- 360learning


def _learning_error(status: int) -> dict[str, Any]:
    """Build 360Learning's error body: ``{"error": code}``."""
    return {"error": _oauth_error_code(status)}


_LEARNING_KEYS: Final = frozenset({"grant_type", "client_id", "client_secret"})


def _learning_check(req: TokenRequest) -> Reply | None:
    """Hold the body to 360Learning's: exactly the three strings of the client credentials grant."""
    invalid = Reply(400, {"error": "invalid_request"})
    parsed, body = req.json_value
    if not req.is_json or not parsed or not isinstance(body, dict):
        return invalid
    if set(body) != _LEARNING_KEYS or not all(isinstance(value, str) for value in body.values()):
        return invalid
    if body["grant_type"] != "client_credentials":
        return Reply(400, {"error": "unsupported_grant_type"})
    return None


@vendor(
    "learning360",
    "/api/v2/oauth2/token",
    lifetime=2700,
    check=_learning_check,
    error_body=_learning_error,
    options=frozenset({"expires_in_as_string"}),
    defaults={"expires_in_as_string": True},
)
def learning360(req: TokenRequest, ctx: VendorContext) -> Reply:
    """Answer 360Learning's ``POST /api/v2/oauth2/token``: JSON client credentials grant."""
    _, body = req.json_value
    client_id, client_secret = body["client_id"], body["client_secret"]
    if not ctx.credentials_valid(client_id, client_secret):
        return Reply(401, {"error": "invalid_client"})
    lifetime = ctx.lifetime
    token, _ = ctx.issue(lifetime)
    return Reply(
        200, {"token_type": "Bearer", "access_token": token, "expires_in": _expires_in(ctx, lifetime)}
    )


# -------------------------------------------------------------------------------------- manis


def _manis_timestamp() -> str:
    """Return now as Manis formats it: ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`` (UTC)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _manis_problem(status: int, detail: str | None = None) -> dict[str, Any]:
    """Build Manis's problem-details error body."""
    return {
        "timestamp": _manis_timestamp(),
        "title": _phrase(status),
        "type": "about:blank",
        "status": status,
        "soaCode": f"AUTH-{status}",
        "detail": detail or _phrase(status),
    }


def _manis_error(status: int) -> dict[str, Any]:
    """Build Manis's error body for a status: 401 ``{message, timestamp}``, else problem details."""
    if status == 401:
        return {"message": "Invalid merchant credentials", "timestamp": _manis_timestamp()}
    return _manis_problem(status)


def _manis_check(req: TokenRequest) -> Reply | None:
    """Require Manis's headers ``x-merchant-id`` and ``x-secret``; return the 400 reply if one is missing."""
    for header in ("x-merchant-id", "x-secret"):
        if not req.headers.get(header):
            detail = f"Required request header '{header}' for method parameter type String is not present"
            return Reply(400, _manis_problem(400, detail))
    return None


@vendor(
    "manis",
    "/api/v1/auth/token",
    lifetime=5400,
    check=_manis_check,
    error_body=_manis_error,
    options=frozenset({"expires_at_unit"}),
)
def manis(req: TokenRequest, ctx: VendorContext) -> Reply:
    """Answer Manis's ``POST /api/v1/auth/token``: headers ``x-merchant-id`` and ``x-secret``."""
    if not ctx.credentials_valid(req.headers["x-merchant-id"], req.headers["x-secret"]):
        return Reply(401, _manis_error(401))
    token, expires_at = ctx.issue(ctx.lifetime)
    epoch = int(expires_at * 1000) if ctx.config.expires_at_unit == "ms" else int(expires_at)
    return Reply(200, {"tokenType": "Bearer", "token": token, "expiresAt": epoch})


# ------------------------------------------------------------------------------------- podero


def _podero_check(req: TokenRequest) -> Reply | None:
    """Hold the request to Podero's: a JSON ``grant_type`` body and an HTTP Basic header."""
    parsed, body = req.json_value
    if not req.is_json or not parsed or not isinstance(body, dict):
        return Reply(
            400, {"error": "invalid_request", "error_description": "The body must be a JSON object."}
        )
    grant_type = body.get("grant_type")
    if not isinstance(grant_type, str) or not grant_type:
        return Reply(
            400, {"error": "invalid_request", "error_description": "Request is missing grant_type parameter."}
        )
    if grant_type != "client_credentials":
        return Reply(
            400,
            {
                "error": "unsupported_grant_type",
                "error_description": f"Unsupported grant type {grant_type!r}.",
            },
        )
    if not basic_credentials(req.headers, "either").present:
        return Reply(401, {"error": "invalid_client", "error_description": "Client authentication required."})
    return None


@vendor(
    "podero",
    "/oauth2/token/",
    lifetime=32400,
    check=_podero_check,
    error_body=_oauth_error,
    options=frozenset({"expires_in_as_string", "basic_auth_encoding"}),
)
def podero(req: TokenRequest, ctx: VendorContext) -> Reply:
    """Answer Podero's ``POST /oauth2/token/``: HTTP Basic client auth, JSON ``grant_type``."""
    basic = basic_credentials(req.headers, ctx.config.basic_auth_encoding)
    if not any(ctx.credentials_valid(cid, secret) for cid, secret in basic.candidates):
        return Reply(401, {"error": "invalid_client", "error_description": "Invalid client credentials."})
    lifetime = ctx.lifetime
    token, _ = ctx.issue(lifetime)
    return Reply(
        200,
        {
            "access_token": token,
            "expires_in": _expires_in(ctx, lifetime),
            "token_type": "Bearer",
            "scope": "read write",
        },
    )


# ------------------------------------------------------------------------------------- oauth2


def _oauth2_params(req: TokenRequest) -> tuple[dict[str, Any], None] | tuple[None, Reply]:
    """Read the parameters of a form-urlencoded or JSON body; return them, or the 400 reply."""

    def invalid(description: str) -> tuple[None, Reply]:
        return None, _oauth_reply(400, {"error": "invalid_request", "error_description": description})

    if req.is_form:
        pairs = req.form_pairs
        if pairs is None:
            return invalid("The request body is not valid application/x-www-form-urlencoded UTF-8.")
        params: dict[str, Any] = {}
        for name, value in pairs:
            if name in params:
                return invalid(f"Parameter '{name}' is included more than once.")
            params[name] = value
        return params, None
    if req.is_json:
        parsed, body = req.json_value
        if not parsed or not isinstance(body, dict):
            return invalid("The request body must be a JSON object.")
        for name in ("grant_type", "client_id", "client_secret", "scope", "audience"):
            if name in body and not isinstance(body[name], str):
                return invalid(f"Parameter '{name}' must be a string.")
        return body, None
    return invalid(
        "Unsupported Content-Type; send application/x-www-form-urlencoded (RFC 6749) or application/json."
    )


def _oauth2_check(req: TokenRequest) -> Reply | None:
    """Hold the request to RFC 6749 section 4.4: readable parameters, the grant, one client authentication."""
    params, error = _oauth2_params(req)
    if error is not None or params is None:
        return error or _oauth_reply(400, _oauth_error(400))
    grant_type = params.get("grant_type")
    if not grant_type:
        return _oauth_reply(
            400, {"error": "invalid_request", "error_description": "Missing required parameter 'grant_type'."}
        )
    if grant_type != "client_credentials":
        return _oauth_reply(
            400,
            {
                "error": "unsupported_grant_type",
                "error_description": f"Grant type {grant_type!r} is not supported; use client_credentials.",
            },
        )
    if "client_secret" in params and basic_credentials(req.headers, "either").present:
        return _oauth_reply(
            400,
            {
                "error": "invalid_request",
                "error_description": "More than one client authentication method was used.",
            },
        )
    return None


#: RFC 7523 section 2.2.
JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_KEY_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def _assertion_problem(req: TokenRequest, ctx: VendorContext, params: dict[str, Any]) -> str | None:
    """Check a JWT client assertion (RFC 7523 section 3) as an OAuth2 server does; say what is wrong."""
    import jwt

    if params.get("client_assertion_type") != JWT_BEARER:
        return f"client_assertion_type must be {JWT_BEARER}"
    assertion = params.get("client_assertion")
    if not isinstance(assertion, str) or not assertion:
        return "client_assertion is missing"
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "client_assertion is not a JWT"
    client_id = claims.get("sub")
    if not isinstance(client_id, str) or claims.get("iss") != client_id:
        return "iss and sub must both be the client ID"
    if params.get("client_id") not in (None, client_id):
        return "client_id differs from the assertion's sub"
    algorithm = header.get("alg")
    if algorithm in _HMAC_ALGORITHMS:
        keys: list[Any] = [secret.encode() for secret in ctx.secrets_of(client_id)]
    elif algorithm in _KEY_ALGORITHMS:
        kid = header.get("kid")
        keys = [
            pem.encode() for key_id, pem in ctx.keys_of(client_id) if kid is None or key_id in (None, kid)
        ]
    else:
        return f"algorithm {algorithm!r} is not accepted"
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not any(isinstance(aud, str) and urlsplit(aud).path == req.path for aud in audiences):
        return "aud must be the token endpoint URL"
    for key in keys:
        try:
            jwt.decode(
                assertion,
                key,
                algorithms=[algorithm],
                options={"require": ["exp", "jti"], "verify_aud": False},
                leeway=5,
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            return f"the assertion is not valid ({type(exc).__name__})"
        if not ctx.claim_jti(str(claims["jti"])):
            return "the assertion's jti was used before"
        return None
    return "no key of the client verifies the assertion"


@vendor(
    "oauth2",
    "/oauth2/token",
    lifetime=4500,
    check=_oauth2_check,
    error_body=_oauth_error,
    options=frozenset({"expires_in_as_string", "basic_auth_encoding"}),
)
def oauth2(req: TokenRequest, ctx: VendorContext) -> Reply:
    """Answer a generic RFC 6749 section 4.4 client credentials grant (basic, post or JSON auth)."""
    params = _oauth2_params(req)[0] or {}
    basic = basic_credentials(req.headers, ctx.config.basic_auth_encoding)
    if basic.present:
        if not any(ctx.credentials_valid(cid, secret) for cid, secret in basic.candidates):
            return _oauth_reply(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed."},
                **{"www-authenticate": 'Basic realm="airflow-tokens-emulator"'},
            )
    elif "client_assertion_type" in params or "client_assertion" in params:
        problem = _assertion_problem(req, ctx, params)
        if problem is not None:
            return _oauth_reply(
                401,
                {"error": "invalid_client", "error_description": f"Client authentication failed: {problem}"},
            )
    else:
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(client_secret, str):
            return _oauth_reply(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "Client authentication failed: no credentials.",
                },
            )
        if not ctx.credentials_valid(client_id, client_secret):
            return _oauth_reply(
                401, {"error": "invalid_client", "error_description": "Client authentication failed."}
            )
    lifetime = ctx.lifetime
    token, _ = ctx.issue(lifetime)
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": _expires_in(ctx, lifetime),
    }
    if params.get("scope"):
        body["scope"] = params["scope"]
    return _oauth_reply(200, body)


# ------------------------------------------------------------------------------------- custom

#: What the custom endpoint grants.
CUSTOM_SCOPES: Final = ("images:read", "images:write")


def _custom_error(status: int, message: str | None = None) -> dict[str, Any]:
    """Build the custom endpoint's error body: ``{"error": {"code", "message"}}``."""
    code = _phrase(status).lower().replace(" ", "_")
    return {"error": {"code": code, "message": message or _phrase(status)}}


def _iso_8601(epoch: float) -> str:
    """Return ``epoch`` as an ISO 8601 UTC time with milliseconds and ``Z``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _custom_check(req: TokenRequest) -> Reply | None:
    """Hold the request to the custom endpoint's: a form ``grant=session`` and an HTTP Basic header."""
    pairs = req.form_pairs if req.is_form else None
    if pairs is None:
        return Reply(400, _custom_error(400, "The body must be application/x-www-form-urlencoded."))
    params = dict(pairs)
    unknown = sorted(set(params) - {"grant"})
    if len(params) != len(pairs) or unknown:
        return Reply(
            400, _custom_error(400, f"Unexpected or repeated parameter: {(unknown or ['grant'])[0]}.")
        )
    if params.get("grant") != "session":
        return Reply(400, _custom_error(400, "The grant must be 'session'."))
    if not basic_credentials(req.headers, "raw").present:
        return Reply(
            401, _custom_error(401, "Authentication required: HTTP Basic with the API key and secret.")
        )
    return None


@vendor("custom", CUSTOM_ENDPOINT_PATH, lifetime=900, check=_custom_check, error_body=_custom_error)
def custom(req: TokenRequest, ctx: VendorContext) -> Reply:
    """Answer a token endpoint of no seed vendor: HTTP Basic and a form ``grant=session`` -> 201, nested."""
    basic = basic_credentials(req.headers, "raw")
    if not any(ctx.credentials_valid(key, secret) for key, secret in basic.candidates):
        return Reply(401, _custom_error(401, "Invalid API key or secret."))
    token, expires_at = ctx.issue(ctx.lifetime)
    session = {
        "value": token,
        "type": "Bearer",
        "expiresAt": _iso_8601(expires_at),
        "scopes": list(CUSTOM_SCOPES),
    }
    return Reply(201, {"data": {"session": session}, "meta": {"requestId": secrets.token_hex(8)}})


if tuple(VENDOR_TABLE) != VENDORS:  # pragma: no cover - a registration mistake
    raise RuntimeError(f"vendor table {tuple(VENDOR_TABLE)} does not match VENDORS {VENDORS}")
