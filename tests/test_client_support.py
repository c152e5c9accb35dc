"""Helpers shared by the client tests (this module holds no tests).

A mock Fun-Music service for ``httpx.MockTransport``: it records every request, answers from a
script, and streams bodies in whatever pieces a test chooses (one byte at a time, split
mid-event, CRLF…), then optionally breaks or stalls.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import anyio
import httpx

from funmusic_jupyter._client import AsyncFunMusicClient, FunMusicClient

KEY = "sk-test-0123456789abcdef"
BASE = "http://fun.test/api/v1"
GENERATION = BASE + "/services/audio/music/generation"
AUDIO_URL = "http://oss.test/fun-music/song.mp3?Expires=1774937185&Signature=abc"
# Valid for streaming and non-streaming (a prompt of 5+ English words).
PROMPT = "Warm acoustic guitar ballad for a rainy evening"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def intermediate(data: bytes, *, request_id: str | None = "rid-1") -> dict[str, Any]:
    body: dict[str, Any] = {
        "output": {
            "audio": {"data": b64(data), "expires_at": 1774937185, "id": "audio_1"},
            "finish_reason": "null",
        }
    }
    if request_id:
        body["request_id"] = request_id
    return body


def final(
    *,
    url: str = AUDIO_URL,
    sample_rate: Any = "48000",
    lyrics: str = "[verse]\nla la la",
    duration: Any = 200,
    request_id: str | None = "rid-1",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "output": {
            "audio": {"data": "", "expires_at": 1774937185, "id": "audio_1", "url": url},
            "extra_info": {"channels": 2, "sample_rate": sample_rate, "lyrics": lyrics},
            "finish_reason": "stop",
        },
        "usage": {"duration": duration},
    }
    if request_id:
        body["request_id"] = request_id
    return body


def sse(
    obj: Any,
    *,
    event: str = "result",
    status: int | None = 200,
    id: str | None = "1",
    space: bool = False,
) -> str:
    """One event, framed as DashScope frames it (``space=True``: ``field: value``)."""
    sep = ": " if space else ":"
    lines = []
    if id is not None:
        lines.append(f"id{sep}{id}")
    if event:
        lines.append(f"event{sep}{event}")
    if status is not None:
        lines.append(f":HTTP_STATUS/{status}")
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    lines.append(f"data{sep}{data}")
    return "\n".join(lines) + "\n\n"


def song_stream(pieces: Sequence[bytes], **final_kw: Any) -> str:
    """A whole successful stream: one event per audio piece, then the final event."""
    events = [sse(intermediate(p), id=str(i + 1)) for i, p in enumerate(pieces)]
    events.append(sse(final(**final_kw), id=str(len(pieces) + 1)))
    return "".join(events)


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class Pieces(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body delivered in the given pieces, then optionally an error or a stall."""

    def __init__(
        self,
        pieces: Sequence[bytes],
        *,
        error: Exception | None = None,
        stall: bool = False,
    ) -> None:
        self.pieces = list(pieces)
        self.error = error
        self.stall = stall
        self.sent = 0  # pieces handed out so far
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.sent += 1
            yield piece
        if self.error is not None:
            raise self.error
        if self.stall:
            raise AssertionError("a sync mock cannot stall: use the loopback server")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.sent += 1
            yield piece
            await anyio.lowlevel.checkpoint()
        if self.error is not None:
            raise self.error
        if self.stall:
            await anyio.sleep_forever()

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class MockService:
    """Answers POSTs from a script (one answer per POST, the last repeats) and GETs of audio.

    ``requests`` records everything the client sent, in order.
    """

    def __init__(
        self, *answers: Answer, audio: bytes = b"", download: Answer | None = None
    ) -> None:
        self.answers = list(answers)
        self.audio = audio
        self.download = download
        self.requests: list[httpx.Request] = []

    @property
    def posts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST"]

    @property
    def gets(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "GET"]

    def _answer(self, answer: Answer, request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "GET":
            if self.download is not None:
                return self._answer(self.download, request)
            return httpx.Response(200, content=self.audio)
        index = min(len(self.posts) - 1, len(self.answers) - 1)
        return self._answer(self.answers[index], request)

    def sync_client(self, **kw: Any) -> FunMusicClient:
        kw.setdefault("api_key", KEY)
        kw.setdefault("base_url", BASE)
        return FunMusicClient(transport=httpx.MockTransport(self), **kw)

    def async_client(self, **kw: Any) -> AsyncFunMusicClient:
        kw.setdefault("api_key", KEY)
        kw.setdefault("base_url", BASE)
        return AsyncFunMusicClient(transport=httpx.MockTransport(self), **kw)


def event_stream(
    body: str | bytes,
    *,
    piece: int | None = None,
    pieces: Sequence[bytes] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    error: Exception | None = None,
    stall: bool = False,
    content_type: str = "text/event-stream",
) -> httpx.Response:
    """A streaming answer; ``piece`` splits the body into pieces of that many bytes."""
    raw = body.encode() if isinstance(body, str) else body
    if pieces is None:
        pieces = split_every(raw, piece) if piece else [raw]
    all_headers = {"content-type": content_type, **(headers or {})}
    return httpx.Response(
        status, headers=all_headers, stream=Pieces(pieces, error=error, stall=stall)
    )


def json_answer(
    obj: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json=obj, headers=headers)


async def collect_async(client: AsyncFunMusicClient, **kw: Any) -> tuple[list[Any], Any]:
    """Run a stream to its end; return (events, stream)."""
    events = []
    async with client.stream(**kw) as s:
        async for event in s:
            events.append(event)
    return events, s


def collect_sync(client: FunMusicClient, **kw: Any) -> tuple[list[Any], Any]:
    events = []
    with client.stream(**kw) as s:
        for event in s:
            events.append(event)
    return events, s


class StallingServer:
    """A loopback HTTP server that sends a stream's head and first events, then goes silent
    with the connection open: the only honest way to test the sync client's idle timeout
    (``MockTransport`` does not apply read timeouts)."""

    def __init__(self, first_bytes: bytes) -> None:
        import socket
        import threading

        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/api/v1"
        self._first = first_bytes
        self._stop = threading.Event()
        self._conns: list[Any] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> StallingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()
        for conn in self._conns:
            conn.close()
        self._thread.join(5)

    def _serve(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._conns.append(conn)
            conn.settimeout(2)
            received = b""
            while b"\r\n\r\n" not in received:
                received += conn.recv(65536)
            head, _, rest = received.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(rest) < length:
                rest += conn.recv(65536)
            body = self._first
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\nx-request-id: stall-1\r\n\r\n"
                + b"%x\r\n" % len(body)
                + body
                + b"\r\n"
            )
            # ...and nothing more, until the test ends.
