"""How much of an upstream answer we read, and how we decode it: one rule for every transport.

A rerank answer for N documents has a bounded size, so the body limit is sized from the request
(`ResponseLimits.body_limit`): a base, a share per document and the request's own size (some providers echo
the documents back). Anything larger is refused at once as a `ResponseTooLargeError` (502) and its
connection dropped, so a hostile or broken upstream cannot make us buffer without end. gzip and deflate
bodies are decoded in steps of `DECODE_STEP` bytes that yield to the event loop and check the deadline
between steps; the decoded size counts against the same limit, which bounds a decompression bomb's memory and
time whatever its ratio (a ratio cap would add nothing the size cap does not, and would refuse legitimately
repetitive answers).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterable
from dataclasses import dataclass

DECODE_STEP = 1 << 20
"""Decoded bytes per step (about a millisecond of zlib): the event loop runs between steps."""


class ProtocolError(Exception):
    """The upstream's bytes are not an HTTP/1.1 response we can read."""


class ResponseTooLargeError(ProtocolError):
    """The upstream's headers or body (decoded or not) passed our limit for this request."""


@dataclass(frozen=True, slots=True)
class ResponseLimits:
    """Upper bounds on an upstream answer (general_settings `upstream_max_header_kb`,
    `upstream_max_response_mb`, `upstream_response_kb_per_document`)."""

    max_header_bytes: int = 64 * 1024
    base_body_bytes: int = 1 << 20
    body_bytes_per_document: int = 4 * 1024

    def body_limit(self, documents: int, request_bytes: int) -> int:
        """The largest body (raw or decoded) we accept for a request ranking `documents` in `request_bytes`."""
        return self.base_body_bytes + self.body_bytes_per_document * max(documents, 0) + request_bytes


def too_large(limit: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(f"the upstream's answer is larger than {limit} bytes, our limit for this request")


async def read_capped(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """The whole stream, refused as soon as it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _is_zlib_wrapped(body: bytes) -> bool:
    return len(body) >= 2 and body[0] & 0x0F == 8 and ((body[0] << 8) | body[1]) % 31 == 0


def _decompressor(encoding: str, body: bytes) -> zlib._Decompress | None:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":  # sent raw, without the zlib wrapper, by some servers
        return zlib.decompressobj(zlib.MAX_WBITS if _is_zlib_wrapped(body) else -zlib.MAX_WBITS)
    return None


async def decoded(body: bytes, encoding: str | None, limit: int, deadline: float | None) -> bytes:
    """`body` decoded per its content-encoding (gzip, deflate; anything else returned as sent), at most
    `limit` bytes of output, `DECODE_STEP` bytes at a time with the event loop running in between."""
    if not body or not encoding:
        return body
    name = encoding.strip().lower()
    decompressor = _decompressor(name, body)
    if decompressor is None:
        return body
    loop = asyncio.get_running_loop()
    parts: list[bytes] = []
    size = 0
    pending = body
    try:
        while True:
            piece = decompressor.decompress(pending, DECODE_STEP)
            size += len(piece)
            if size > limit:
                raise too_large(limit)
            parts.append(piece)
            pending = decompressor.unconsumed_tail
            if not pending and len(piece) < DECODE_STEP:
                break
            await asyncio.sleep(0)
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError("no complete response before the deadline (still decoding)")
    except zlib.error as exc:
        raise ProtocolError(f"the {name} body does not decode ({exc})") from None
    if not decompressor.eof:
        raise ProtocolError(f"the {name} body is cut short")
    return b"".join(parts)


__all__ = ["DECODE_STEP", "ProtocolError", "ResponseLimits", "ResponseTooLargeError", "decoded", "read_capped"]
