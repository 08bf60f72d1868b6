"""The access token type shared by every vendor and cache."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: The refresh margin never exceeds this fraction of a token's lifetime, so short-lived tokens stay usable.
MAX_MARGIN_FRACTION = 0.25


@dataclass(frozen=True, slots=True)
class AccessToken:
    """
    Hold an access token with its absolute expiry; ``repr`` never shows the value.

    :param token: the secret token value.
    :param token_type: the scheme for the Authorization header, usually ``Bearer``.
    :param expires_at: when the token stops working (timezone-aware UTC).
    :param obtained_at: when the token was issued to us (timezone-aware UTC).
    :param scope: the granted scopes, if the vendor says.
    :param refresh_after: when the server suggests refreshing (``refresh_in``), if it does.
    """

    token: str = field(repr=False)
    token_type: str
    expires_at: datetime
    obtained_at: datetime
    scope: tuple[str, ...] | None = None
    refresh_after: datetime | None = None
    # Derived once: the freshness check runs on every cache hit.
    _expires_epoch: float = field(init=False, repr=False, compare=False)
    _max_margin: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_expires_epoch", self.expires_at.timestamp())
        object.__setattr__(self, "_max_margin", self.lifetime * MAX_MARGIN_FRACTION)

    @property
    def lifetime(self) -> float:
        """Return the token's whole lifetime in seconds."""
        return (self.expires_at - self.obtained_at).total_seconds()

    def effective_margin(self, margin: float) -> float:
        """Return the refresh margin for this token: ``margin`` capped at a fraction of its lifetime."""
        return min(margin, self._max_margin)

    def refresh_at(self, margin: float) -> float:
        """Return the epoch second from which the token should be replaced."""
        return self._expires_epoch - min(margin, self._max_margin)

    def is_fresh(self, margin: float) -> bool:
        """Say whether the token can still be handed out with ``margin`` seconds to spare."""
        return time.time() < self._expires_epoch - min(margin, self._max_margin)

    @property
    def authorization(self) -> str:
        """Return the value of the Authorization header that sends this token."""
        return f"{self.token_type} {self.token}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form (it contains the token: store it only where it is protected)."""
        return {
            "token": self.token,
            "token_type": self.token_type,
            "expires_at": self.expires_at.timestamp(),
            "obtained_at": self.obtained_at.timestamp(),
            "scope": list(self.scope) if self.scope is not None else None,
            "refresh_after": self.refresh_after.timestamp() if self.refresh_after is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Any) -> AccessToken:
        """Rebuild a token from :meth:`to_dict` output; raise ValueError on anything else."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        token, token_type = data.get("token"), data.get("token_type")
        expires_at, obtained_at = data.get("expires_at"), data.get("obtained_at")
        scope, refresh_after = data.get("scope"), data.get("refresh_after")
        if not isinstance(token, str) or not token or not isinstance(token_type, str):
            raise ValueError("token or token_type missing")
        for value in (expires_at, obtained_at):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("expiry missing")
        if scope is not None and not (isinstance(scope, list) and all(isinstance(s, str) for s in scope)):
            raise ValueError("scope malformed")
        if refresh_after is not None and (
            isinstance(refresh_after, bool) or not isinstance(refresh_after, int | float)
        ):
            raise ValueError("refresh time malformed")
        return cls(
            token=token,
            token_type=token_type,
            expires_at=datetime.fromtimestamp(float(expires_at), UTC),  # type: ignore[arg-type]
            obtained_at=datetime.fromtimestamp(float(obtained_at), UTC),  # type: ignore[arg-type]
            scope=tuple(scope) if scope is not None else None,
            refresh_after=datetime.fromtimestamp(refresh_after, UTC) if refresh_after is not None else None,
        )
