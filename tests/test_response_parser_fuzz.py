"""Property tests (hypothesis) of how we read an upstream's bytes: the pool's response parser (http_pool.py)
fed well-formed answers cut at random places, with random bytes after them, and plain random bytes; the
bounded decoder (http_body.py) fed valid and random gzip/deflate bodies. Whatever arrives, the outcome is an
answer or a ProtocolError/ConnectionError, never another exception, never a body over its limit, and never
a connection kept for reuse with bytes left over."""

from __future__ import annotations

import asyncio
import gzip
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.http_body import ProtocolError, ResponseTooLargeError, decoded
from proxy.http_pool import _Connection

HEADER_LIMIT, BODY_LIMIT = 4096, 2048
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class FakeSocket:
    """The asyncio transport side of one connection: records what is written and whether it was closed."""

    def __init__(self) -> None:
        self.closing = False

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


def feed(pieces: list[bytes], *, end: bool = False):
    """Run the parser over `pieces` (then the connection's end, if `end`): (outcome, connection)."""

    async def run():
        connection = _Connection()
        connection.connection_made(FakeSocket())  # type: ignore[arg-type]
        waiter = connection.start(b"POST / HTTP/1.1\r\n\r\n", HEADER_LIMIT, BODY_LIMIT)
        for piece in pieces:
            if connection.closed:
                break
            connection.data_received(piece)
        if end and not connection.closed:
            connection.connection_lost(None)
        if not waiter.done():
            return None, connection
        try:
            return waiter.result(), connection
        except (ProtocolError, ConnectionError) as exc:
            return exc, connection

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in zip(marks, marks[1:], strict=False) if b > a]


token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda name: name not in ("content-length", "transfer-encoding", "connection", "content-encoding"))
value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)


@st.composite
def answers(draw):
    status = draw(st.integers(200, 599).filter(lambda s: s not in (204, 304)))  # these never have a body
    headers = draw(st.lists(st.tuples(token, value), max_size=8))
    body = draw(st.binary(max_size=3000))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    head = b"HTTP/1.1 %d X\r\n" % status + b"".join(b"%s: %s\r\n" % (n.encode(), v.encode()) for n, v in headers)
    if framing == "length":
        raw = head + b"content-length: %d\r\n\r\n" % len(body) + body
    elif framing == "chunked":
        sizes = draw(st.lists(st.integers(1, 700), max_size=6))
        chunks, rest = [], body
        for size in sizes:
            chunks.append(rest[:size])
            rest = rest[size:]
        chunks.append(rest)
        raw = head + b"transfer-encoding: chunked\r\n\r\n" + b"".join(
            b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
    else:
        raw = head + b"connection: close\r\n\r\n" + body
    return status, body, framing, raw


@FUZZ
@given(answers(), st.lists(st.integers(0, 10_000), max_size=6), st.binary(max_size=64))
def test_well_formed_answers_cut_anywhere_are_read_exactly_or_refused_for_size(answer, points, after):
    status, body, framing, raw = answer
    trailing = b"" if framing == "close" else after
    outcome, connection = feed(cut(raw + trailing, points), end=framing == "close")
    if len(body) > BODY_LIMIT:
        assert isinstance(outcome, ResponseTooLargeError)
        assert connection.closed
        return
    assert outcome == (status, outcome[1], body)
    if trailing.strip(b"\r\n"):
        # bytes after the answer: never kept for the next call (refused now, or on the idle connection later)
        if not connection.closed:
            connection.data_received(b"x")
        assert connection.closed and not connection.reusable


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=600), max_size=8), st.booleans())
def test_random_bytes_end_as_an_answer_or_a_protocol_error(pieces, end):
    outcome, connection = feed(pieces, end=end)
    if isinstance(outcome, tuple):
        assert len(outcome[2]) <= BODY_LIMIT
    else:
        assert outcome is None or isinstance(outcome, (ProtocolError, ConnectionError))


@FUZZ
@given(st.binary(max_size=3000), st.sampled_from(["gzip", "deflate", "raw-deflate"]))
def test_compressed_bodies_decode_to_what_was_sent_or_are_refused_for_size(data, encoding):
    encoded = {"gzip": gzip.compress, "deflate": zlib.compress,
               "raw-deflate": lambda d: zlib.compress(d, wbits=-zlib.MAX_WBITS)}[encoding](data)
    name = "deflate" if encoding == "raw-deflate" else encoding
    try:
        result = asyncio.run(decoded(encoded, name, BODY_LIMIT, None))
    except ResponseTooLargeError:
        assert len(data) > BODY_LIMIT
    else:
        assert result == data


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(["gzip", "deflate", "x-gzip"]))
def test_random_compressed_bodies_decode_within_the_limit_or_are_protocol_errors(data, encoding):
    try:
        result = asyncio.run(decoded(data, encoding, BODY_LIMIT, None))
    except ProtocolError:
        return
    assert len(result) <= BODY_LIMIT
