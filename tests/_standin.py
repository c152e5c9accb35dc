"""A stand-in Fun-Music server on loopback for what the simulator cannot do (this module holds no
tests): raw HTTP/1.1 over a plain socket, so a test can send anything a broken proxy or server
might: an HTML page, a body shorter than its Content-Length, keep-alive comments forever, a
50 MB line, a TCP reset in the middle of an event.

Each connection is served by a thread running ``handler(request, conn)``; the handler writes the
answer with the helpers below and returns True to keep the connection open for the next request.
Every request is recorded (``posts`` counts the generation requests, the billable ones).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Request, socket.socket], bool]


class StandInServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.origin}/api/v1"
        self.requests: list[Request] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="standin-accept", daemon=True)

    @property
    def posts(self) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.method == "POST")

    def __enter__(self) -> StandInServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(5)
        self._sock.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        for thread in threads:
            thread.join(5)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._lock:
                self._conns.append(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        buffer = b""
        try:
            while not self._stop.is_set():
                request, buffer = _read_request(conn, buffer)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                if not self.handler(request, conn):
                    return
        except OSError:
            return
        finally:
            conn.close()
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)


def _read_request(conn: socket.socket, buffer: bytes) -> tuple[Request | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        piece = conn.recv(65536)
        if not piece:
            return None, b""
        buffer += piece
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        piece = conn.recv(65536)
        if not piece:
            return None, b""
        rest += piece
    return Request(method, path, headers, rest[:length]), rest[length:]


# -- writing answers -------------------------------------------------------------------------


def head(status: int, headers: dict[str, str], *, reason: str = "X") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send(
    conn: socket.socket, status: int, body: bytes, content_type: str, **headers: Any
) -> bool:
    """A whole answer with a Content-Length; the connection stays open (keep-alive)."""
    fields = {"content-type": content_type, "content-length": str(len(body)), "x-request-id":
              "standin-1"}
    fields.update({k.replace("_", "-"): str(v) for k, v in headers.items()})
    conn.sendall(head(status, fields) + body)
    return True


def send_chunked(conn: socket.socket, status: int, pieces: Iterable[bytes],
                 content_type: str = "text/event-stream", **headers: Any) -> bool:
    """A chunked answer, one chunk per piece; an iterator may sleep between pieces."""
    fields = {"content-type": content_type, "transfer-encoding": "chunked",
              "x-request-id": "standin-1"}
    fields.update({k.replace("_", "-"): str(v) for k, v in headers.items()})
    conn.sendall(head(status, fields))
    for piece in pieces:
        if piece:
            conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
    conn.sendall(b"0\r\n\r\n")
    return True


def reset(conn: socket.socket) -> bool:
    """Close with a TCP RST (SO_LINGER 0), as a crashed peer or a killed proxy does."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    return False


def trickle(
    server: StandInServer, piece: bytes, every: float, *, for_seconds: float = 8.0
) -> Iterable[bytes]:
    """``piece`` every ``every`` seconds until the server stops, or ``for_seconds`` passed:
    "forever" for the client under test, but a regression fails the test instead of hanging."""
    end = time.monotonic() + for_seconds
    while not server.stopping and time.monotonic() < end:
        yield piece
        time.sleep(every)


# -- replaying the simulator -------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One simulator song, as the simulator sent it: the streamed answer, the non-streaming
    answer (its audio URL pointing at ``/audio``, on whichever server replays it) and the file."""

    sse: bytes
    json: bytes
    audio: bytes


AUDIO_PATH = "/audio/song.mp3"
_ORIGIN = b"http://origin.invalid"


def record(base_url: str, body: dict[str, Any]) -> Recording:
    import json as _json
    import re

    import httpx

    url = base_url + "/services/audio/music/generation"
    with httpx.Client(timeout=60) as http:
        sse = http.post(url, json=body, headers={"X-DashScope-SSE": "enable"}).content
        answer = http.post(url, json=body).json()
        audio = http.get(answer["output"]["audio"]["url"]).content
    answer["output"]["audio"]["url"] = _ORIGIN.decode() + AUDIO_PATH
    sse = re.sub(rb'"url":\s*"[^"]*"', b'"url":"' + _ORIGIN + AUDIO_PATH.encode() + b'"', sse)
    return Recording(sse, _json.dumps(answer).encode(), audio)


def replay(recording: Recording, server: Callable[[], StandInServer]) -> Handler:
    """A handler that answers every request as the simulator did, with keep-alive."""

    def handle(request: Request, conn: socket.socket) -> bool:
        origin = server().origin.encode()
        if request.method == "GET":
            return send(conn, 200, recording.audio, "audio/mpeg")
        if request.headers.get("x-dashscope-sse") == "enable":
            return send(conn, 200, recording.sse.replace(_ORIGIN, origin), "text/event-stream")
        return send(conn, 200, recording.json.replace(_ORIGIN, origin), "application/json")

    return handle
