"""The one redaction step: every form in which our own request carried a secret is cut out of a text.

A vendor that echoes what it received can show a secret raw, percent-encoded (a URL, a form body),
form-encoded (``+`` for a space), JSON-escaped, or inside the base64 of an HTTP Basic header.
:func:`redact` replaces each of these forms before a text is cut, quoted or logged, so that no prefix
of a secret survives a shortened message either.
"""

from __future__ import annotations

import base64
import contextlib
import json
from functools import lru_cache
from urllib.parse import quote, quote_plus

#: Shorter values are too common to search for (and too short to be a secret worth the name).
MIN_SECRET_LENGTH = 3
MASK = "***"


def _forms(secret: str) -> set[str]:
    """Return the ways ``secret`` may appear in a text that quotes our request."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        quote_plus(secret, safe=":/"),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        # A JSON body quoted in a JSON string: escaped twice.
        json.dumps(json.dumps(secret)[1:-1])[1:-1],
        json.dumps(json.dumps(secret, ensure_ascii=False)[1:-1], ensure_ascii=False)[1:-1],
    }
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


@lru_cache(maxsize=256)
def secret_forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """Return every form of ``secrets`` to cut out, longest first (a longer form holds a shorter one)."""
    forms: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            forms |= _forms(secret)
    return tuple(sorted(forms, key=len, reverse=True))


def basic_forms(login: str, secret: str) -> tuple[str, ...]:
    """Return the base64 of HTTP Basic credentials ``login:secret``, encoded as UTF-8 and as Latin-1."""
    pair = f"{login}:{secret}"
    encoded = {base64.b64encode(pair.encode()).decode()}
    with contextlib.suppress(UnicodeEncodeError):  # not every text is Latin-1
        encoded.add(base64.b64encode(pair.encode("latin-1")).decode())
    return tuple(sorted(encoded))


def redact(text: str | None, secrets: tuple[str, ...]) -> str | None:
    """Return ``text`` with every form of every secret replaced by ``***``."""
    if text is None:
        return None
    for form in secret_forms(secrets):
        if form in text:
            text = text.replace(form, MASK)
    return text
