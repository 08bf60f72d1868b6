"""Read a vendor's token response: the token, its type, its scope and one absolute expiry."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

#: No vendor issues tokens that live longer than this; a larger expiry is a malformed response.
MAX_LIFETIME = 366 * 24 * 3600
#: Epoch timestamps above this are taken as milliseconds (1e11 s is the year 5138).
EPOCH_MS_THRESHOLD = 1e11
#: Keys of error bodies that carry the vendor's own explanation, in the order they are shown.
ERROR_MESSAGE_KEYS = ("error", "error_description", "title", "detail", "soaCode", "message")
_MAX_SHOWN = 300
#: A token longer than this is no token a vendor means (a JWT is a few KiB).
MAX_TOKEN_LENGTH = 16384
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
# RFC 9110 section 5.6.2: the characters of a token (an auth scheme is one).
_AUTH_SCHEME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class ResponseProblem(ValueError):
    """Say what is missing or malformed in a token response (no token value in the text)."""


@dataclass(frozen=True, slots=True)
class ResponseFields:
    """
    Name the fields of a vendor's token response; a dotted path (``data.session.value``) reaches nested ones.

    :param token: the path of the token value.
    :param token_type: the path of the token type, or None when the vendor sends none (Bearer).
    :param expires_in: the path of a lifetime in seconds (number or numeric string), if any.
    :param expires_at: the path of an absolute expiry: epoch seconds or milliseconds, or an ISO 8601 time
        with ``Z`` or an offset.
    :param scope: the path of the granted scope (list or space-separated string), if any.
    :param default_lifetime: the lifetime assumed when the response states no expiry at all.
    :param refresh_in: the path of a server-suggested refresh time in seconds (Microsoft Entra ID's
        ``refresh_in``), if any.
    """

    token: str = "access_token"
    token_type: str | None = "token_type"
    expires_in: str | None = "expires_in"
    expires_at: str | None = None
    scope: str | None = "scope"
    default_lifetime: float = 3600.0
    refresh_in: str | None = "refresh_in"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any) -> float | None:
    """Return a finite number from a JSON number or numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def lookup(payload: Any, path: str) -> Any:
    """Return the value at ``path``: keys separated by dots, a number indexing a list; None if absent."""
    value = payload
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _epoch(value: Any) -> float | None:
    """Return epoch seconds from epoch seconds or milliseconds, or from an ISO 8601 time with a zone."""
    epoch = _number(value)
    if epoch is not None:
        return epoch / 1000.0 if epoch > EPOCH_MS_THRESHOLD else epoch
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    # A time without Z or an offset could be any zone's: refuse to guess.
    return moment.timestamp() if moment.tzinfo is not None else None


def jwt_expiry(token: str) -> float | None:
    """Return the ``exp`` claim of a JWT-shaped token as epoch seconds, or None if unreadable."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    return _number(claims.get("exp")) if isinstance(claims, dict) else None


def parse_expiry(payload: dict[str, Any], fields: ResponseFields, token: str, now: datetime) -> datetime:
    """Return the absolute expiry stated by ``payload`` in any supported form, or the vendor default."""
    horizon = now.timestamp() + MAX_LIFETIME
    raw = lookup(payload, fields.expires_in) if fields.expires_in else None
    if raw is not None:
        seconds = _number(raw)
        lifetime = timedelta(seconds=seconds) if seconds is not None and 0 < seconds <= MAX_LIFETIME else None
        if not lifetime:  # also a lifetime under a microsecond, which rounds to zero
            raise ResponseProblem(
                f"{fields.expires_in}={_short(raw)} is not a lifetime in seconds (0 < s <= {MAX_LIFETIME})"
            )
        return now + lifetime
    raw = lookup(payload, fields.expires_at) if fields.expires_at else None
    if raw is not None:
        epoch = _epoch(raw)
        if epoch is None or not now.timestamp() < epoch <= horizon:
            raise ResponseProblem(
                f"{fields.expires_at}={_short(raw)} is not a future time (epoch seconds or milliseconds, "
                "or ISO 8601 with Z or an offset)"
            )
        return datetime.fromtimestamp(epoch, UTC)
    exp = jwt_expiry(token)
    if exp is not None and exp <= now.timestamp():
        # An expired token is no token: a default lifetime would cache it as valid.
        raise ResponseProblem("the token is a JWT whose exp has passed, and the answer states no expiry")
    if exp is not None and exp <= horizon:
        return datetime.fromtimestamp(exp, UTC)
    return now + timedelta(seconds=fields.default_lifetime)


def _scope(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def read_token_fields(payload: Any, fields: ResponseFields, now: datetime) -> dict[str, Any]:
    """Return the keyword arguments of an AccessToken read from ``payload``; raise ResponseProblem."""
    if not isinstance(payload, dict):
        raise ResponseProblem(f"the body is a JSON {type(payload).__name__}, not an object")
    token = lookup(payload, fields.token)
    if token is None:
        raise ResponseProblem(f"{fields.token!r} is missing")
    if not isinstance(token, str):
        raise ResponseProblem(f"{fields.token!r} is a {type(token).__name__}, not a string")
    if not token:
        raise ResponseProblem(f"{fields.token!r} is empty")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ResponseProblem(f"{fields.token!r} is {len(token)} characters long, over {MAX_TOKEN_LENGTH}")
    if not _VISIBLE_ASCII.fullmatch(token):
        # RFC 6750: a bearer token is visible ASCII; anything else could not travel in a header.
        raise ResponseProblem(f"{fields.token!r} contains whitespace, control or non-ASCII characters")
    token_type = lookup(payload, fields.token_type) if fields.token_type else None
    if not isinstance(token_type, str) or not token_type.strip() or token_type.lower() == "bearer":
        token_type = "Bearer"
    elif not _AUTH_SCHEME.fullmatch(token_type) or len(token_type) > 40:
        # RFC 9110 section 11.1: an auth scheme is a token; a line break here would inject a header.
        raise ResponseProblem(f"{fields.token_type!r} is not an HTTP auth scheme: {_short(token_type)}")
    expires_at = parse_expiry(payload, fields, token, now)
    return {
        "token": token,
        "token_type": token_type,
        "expires_at": expires_at,
        "obtained_at": now,
        "scope": _scope(lookup(payload, fields.scope)) if fields.scope else None,
        "refresh_after": _refresh_after(payload, fields, now, expires_at),
    }


def _refresh_after(
    payload: dict[str, Any], fields: ResponseFields, now: datetime, expires_at: datetime
) -> datetime | None:
    """Return the refresh time the server suggests, if it states one within the token's life."""
    seconds = _number(lookup(payload, fields.refresh_in)) if fields.refresh_in else None
    if seconds is None or not 0 < seconds < (expires_at - now).total_seconds():
        return None  # absent or unusable: the margin decides, as for every other token
    return now + timedelta(seconds=seconds)


def describe_error_body(payload: Any, text: str, clean: Callable[[str], str] = str) -> str | None:
    """Return the vendor's own error explanation from an error response, ``clean``-ed, then shortened."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        payload = payload["error"]  # an error object, as many APIs send: {"error": {"code", "message"}}
    if isinstance(payload, dict):
        parts = [
            f"{key}={payload[key]}" if key in {"soaCode"} else str(payload[key])
            for key in ERROR_MESSAGE_KEYS
            if isinstance(payload.get(key), str | int) and str(payload[key]).strip()
        ]
        if parts:
            # One line: a vendor's line breaks would forge log lines.
            return " ".join(clean(" - ".join(parts)).split())[:_MAX_SHOWN]
    stripped = " ".join(text.split())
    if not stripped:
        return None
    if stripped.startswith("<"):
        return f"non-JSON body ({len(text)} characters of HTML/XML)"
    return clean(stripped)[:_MAX_SHOWN]
