"""Read an HTTP answer's body within a size limit, counted on the decoded bytes as they arrive.

Both drivers feed the raw chunks they receive to one :class:`BodyReader`; it undoes ``gzip`` or
``deflate`` itself, asking zlib for no more output than the limit leaves, so a small compressed body
that inflates to gigabytes costs at most the limit in memory and time, and an endless stream ends at
the limit. The drivers send ``Accept-Encoding: gzip, deflate`` (what this reader can undo).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

#: What token requests accept, and all that :class:`BodyReader` decodes.
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class BodyTooLarge(Exception):
    """
    Say that an answer's decoded body passed the limit.

    :param limit: the limit in bytes.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the answer's body is larger than {limit} bytes")


class BodyUndecodable(Exception):
    """Say that an answer's body could not be decoded (an unknown or corrupt content encoding)."""


class BodyReader:
    """
    Collect a body from raw chunks, decoded, refusing more than ``limit`` decoded bytes.

    :param headers: the answer's headers (``Content-Encoding``, ``Content-Type``).
    :param limit: the most decoded bytes accepted.
    """

    def __init__(self, headers: Mapping[str, str], limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._parts: list[bytes] = []
        self._content_type = headers.get("Content-Type", "")
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if encoding in ("", "identity"):
            self._decoder = None
        elif encoding in _WBITS:
            self._decoder = zlib.decompressobj(_WBITS[encoding])
        else:
            raise BodyUndecodable(f"content encoding {encoding[:40]!r} is not gzip or deflate")

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise BodyTooLarge(self.limit)
        self._parts.append(data)

    def feed(self, chunk: bytes) -> None:
        """Add one raw chunk; raise :class:`BodyTooLarge` past the limit."""
        if self._decoder is None:
            self._keep(chunk)
            return
        try:
            # At most one byte more than the limit allows: enough to know the limit is passed.
            data = self._decoder.decompress(chunk, self.limit + 1 - self.size)
        except zlib.error as exc:
            raise BodyUndecodable(f"the body is not valid {exc.__class__.__name__} data") from None
        self._keep(data)
        if self._decoder.unconsumed_tail:
            raise BodyTooLarge(self.limit)

    def text(self) -> str:
        """Return the body as text: the charset the answer names, else UTF-8 (as JSON is)."""
        if self._decoder is not None:
            try:
                self._keep(self._decoder.flush())
            except zlib.error:
                raise BodyUndecodable("the compressed body is cut short") from None
        charset = "utf-8"
        for part in self._content_type.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"').strip()
        data = b"".join(self._parts)
        try:
            return data.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know
            return data.decode("utf-8", errors="replace")
