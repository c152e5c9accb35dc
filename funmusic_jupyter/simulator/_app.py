"""The simulator's ASGI app: Fun-Music's wire protocol, answered with locally synthesized songs.

Routes
    ``/api/v1/services/audio/music/generation`` and ``/api/v1/services/audio/tts/SpeechSynthesizer``
    (POST; JSON, or DashScope SSE with ``X-DashScope-SSE: enable``), and
    ``/oss/fun-music/{YYYYMMDD}/{id}.{mp3|wav}`` (GET/HEAD; signed, expiring, OSS-shaped errors).

Order of checks for a generation request: method (405), API key (401), fault header syntax (400),
requests per minute (429), body (400), model (404), the client's own validation (400), injected
status faults, then synthesis. Every answer carries ``X-FunMusic-Simulated: true``; every API
answer carries its ``request_id`` in the body and in ``x-request-id``.

Pacing: ``speed`` is a real-time factor (audio seconds per wall second; 0 or inf = unpaced). A
stream sends audio chunk *k* at ``first_chunk_delay + k / speed`` after the request and the final
event at ``first_chunk_delay + duration / speed``; a non-streaming answer arrives at the latter
time. Synthesis is pulled one ~1 s chunk at a time in a worker thread, so the first event never
waits for the whole song and a client that goes away stops synthesis within one chunk.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape as xml_escape

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import ValidationError
from .._i18n import use_language
from .._models import mime_type_for
from .._validation import SongRequest, validate_payload
from ._encode import encode
from ._faults import FAULT_HEADER, SIMULATED_HEADER, Fault, FaultSyntaxError, parse_fault
from ._lyrics import write_lyrics
from ._music import arrange

__all__ = ["GENERATION_PATHS", "KNOWN_MODELS", "SimulatorState", "create_app"]

logger = logging.getLogger("funmusic_jupyter.simulator")

API_PREFIX = "/api/v1"
GENERATION_PATHS = (
    f"{API_PREFIX}/services/audio/music/generation",
    f"{API_PREFIX}/services/audio/tts/SpeechSynthesizer",
)
KNOWN_MODELS = frozenset({"fun-music-v1", "fun-music-preview"})
CHUNK_SECONDS = 1.0
MAX_BODY_BYTES = 1 << 20  # the longest valid body (2,000 characters of lyrics) is a few KB
MAX_STORED_BYTES = 256 << 20  # about five 4-minute WAV files, or sixty MP3s
_THROTTLE_MEMORY = 4096  # distinct request bodies whose throttle=…xTIMES attempts are counted
_CLOSING_POLL = 0.1
_OSS_BUCKET = "fun-music"
_SSE_CONTENT_TYPE = "text/event-stream;charset=UTF-8"
_JSON_CONTENT_TYPE = "application/json"
_SIMULATED = (SIMULATED_HEADER.lower().encode("latin-1"), b"true")

_MESSAGES = {
    "InvalidApiKey": "Invalid API-key provided.",
    "Throttling.RateQuota": "Requests rate limit exceeded, please try again later.",
    "InternalError": (
        "An internal error has occurred, please try again later or contact service support."
    ),
    "ServiceUnavailable": "The service is temporarily unavailable, please try again later.",
    "DataInspectionFailed": "Input data may contain inappropriate content.",
    "Model.NotExist": "Model not exist.",
}


class _Abort(Exception):
    """Raised out of the ASGI app on purpose so uvicorn closes the connection mid-response."""


class _QuietAborts(logging.Filter):
    # uvicorn logs every exception that leaves the app; an injected drop is not a bug.
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, _Abort):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


_quiet_filter = _QuietAborts()


def _install_log_filter() -> None:
    target = logging.getLogger("uvicorn.error")
    if _quiet_filter not in target.filters:
        target.addFilter(_quiet_filter)


# --------------------------------------------------------------------------- helpers


def _dumps(obj: object) -> str:
    """Compact JSON as DashScope sends it (the vendor's Java sample matches substrings of it).

    Non-ASCII stays UTF-8, but the three characters Python's ``str.splitlines`` treats as line
    breaks (and httpx's line decoder with it) are escaped, so no lyric can split an SSE line.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _json_response(status: int, body: Mapping[str, Any], request_id: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    hdrs = {"x-request-id": request_id, **(headers or {})}
    return Response(_dumps(body).encode("utf-8"), status_code=status, headers=hdrs,
                    media_type=_JSON_CONTENT_TYPE)


def _error(status: int, code: str, request_id: str, message: str | None = None,
           headers: Mapping[str, str] | None = None) -> Response:
    body = {"request_id": request_id, "code": code, "message": message or _MESSAGES[code]}
    return _json_response(status, body, request_id, headers)


def _new_request_id() -> str:
    return str(uuid.uuid4())


def _sse_event(event_id: int, data: str, *, event: str = "result", status: int = 200) -> bytes:
    return f"id:{event_id}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:{data}\n\n".encode()


def _oss_error(status: int, code: str, message: str, request_id: str,
               extra: Mapping[str, str] | None = None, *, head: bool = False) -> Response:
    fields = "".join(f"  <{k}>{xml_escape(v)}</{k}>\n" for k, v in (extra or {}).items())
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{code}</Code>\n  <Message>{xml_escape(message)}</Message>\n"
        f"  <RequestId>{request_id}</RequestId>\n  <HostId>{_OSS_BUCKET}.simulator</HostId>\n"
        f"{fields}</Error>\n"
    ).encode()
    return Response(b"" if head else xml, status_code=status, media_type="application/xml",
                    headers={"x-oss-request-id": request_id, "x-request-id": request_id,
                             "content-length": str(len(xml))})


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _SimulatedHeaderMiddleware:
    """Adds ``X-FunMusic-Simulated: true`` to every response the routes send."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), _SIMULATED]}
            await send(message)

        await self.app(scope, receive, marked)


# ------------------------------------------------------------------------------ state


@dataclass
class _Stored:
    data: bytes
    media_type: str


class _SongStore:
    """Finished songs by key, least recently used evicted first once over ``max_bytes``."""

    def __init__(self, max_bytes: int = MAX_STORED_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, _Stored] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, media_type: str) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.data)
            self._items[key] = _Stored(data, media_type)
            self._bytes += len(data)
            # The newest song stays even when it alone is over the limit: its URL was promised.
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted.data)

    def get(self, key: str) -> _Stored | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


class _RateWindow:
    """At most ``rpm`` admitted requests in any sliding 60 s window."""

    def __init__(self, rpm: int) -> None:
        self.rpm = rpm
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self, now: float) -> float | None:
        """None when admitted, else the seconds until a slot frees up."""
        with self._lock:
            while self._times and now - self._times[0] >= 60.0:
                self._times.popleft()
            if len(self._times) >= self.rpm:
                return 60.0 - (now - self._times[0])
            self._times.append(now)
            return None


@dataclass(frozen=True)
class _Job:
    """One admitted, validated generation request."""

    request: SongRequest
    raw_input: Mapping[str, Any]
    request_id: str
    audio_uuid: str
    base: str  # scheme://host:port the client used, for the download URL
    path: str  # /oss/fun-music/YYYYMMDD/<uuid>.<format>
    fault: Fault | None
    started: float  # time.monotonic() when the request arrived

    @property
    def audio_id(self) -> str:
        return f"audio_{self.audio_uuid}"

    @property
    def store_key(self) -> str:
        return self.path.split("/oss/", 1)[1]


class SimulatorState:
    """Everything one simulator app shares between requests (``app.state.simulator``)."""

    def __init__(self, *, speed: float, first_chunk_delay: float, api_key: str | None,
                 url_ttl: float, rpm: int, max_stored_bytes: int = MAX_STORED_BYTES) -> None:
        self.speed = speed
        self.first_chunk_delay = first_chunk_delay
        self.api_key = api_key
        self.url_ttl = url_ttl
        self.rpm = rpm
        self.store = _SongStore(max_stored_bytes)
        self.window = _RateWindow(rpm)
        self._secret = secrets.token_bytes(32)
        self._throttled: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        #: Set by the server on shutdown: stalled and paced responses end at once.
        self.closing = False
        #: Synthesis loops running now (tests check that a disconnect stops them).
        self.active_syntheses = 0

    def __repr__(self) -> str:
        key = "set" if self.api_key else "none"
        return (f"SimulatorState(speed={self.speed!r}, "
                f"first_chunk_delay={self.first_chunk_delay!r}, api_key={key}, "
                f"url_ttl={self.url_ttl!r}, rpm={self.rpm!r})")

    # -- pacing
    def audio_deadline(self, started: float, audio_seconds: float) -> float:
        """When (monotonic) the audio up to ``audio_seconds`` may be sent."""
        paced = 0.0 if self.speed == 0 or math.isinf(self.speed) else audio_seconds / self.speed
        return started + self.first_chunk_delay + paced

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await anyio.sleep(delay)

    async def watch_closing(self, scope: anyio.CancelScope) -> None:
        # A plain flag, polled: ``stop()`` sets it from another thread, and an anyio.Event
        # may only be set from its own event loop.
        while not self.closing:  # noqa: ASYNC110
            await anyio.sleep(_CLOSING_POLL)
        scope.cancel()

    # -- throttle=SECONDSxTIMES bookkeeping
    def throttle_attempt(self, body: bytes, fault: Fault) -> bool:
        """True when this attempt of this body is to be throttled."""
        if fault.times is None:
            return True
        key = hashlib.sha256(fault.header_value().encode() + b"\0" + body).hexdigest()
        with self._lock:
            count = self._throttled.pop(key, 0) + 1
            self._throttled[key] = count
            while len(self._throttled) > _THROTTLE_MEMORY:
                self._throttled.popitem(last=False)
        return count <= fault.times

    # -- signed URLs
    def _signature(self, path: str, expires: int) -> str:
        mac = hmac.new(self._secret, f"GET\n{expires}\n{path}".encode(), hashlib.sha1)
        return base64.b64encode(mac.digest()).decode()

    def signed_url(self, base: str, path: str, expires: int) -> str:
        sig = quote(self._signature(path, expires), safe="")
        return f"{base}{path}?Expires={expires}&OSSAccessKeyId=SIMULATOR&Signature={sig}"

    def signature_ok(self, path: str, expires: int, signature: str) -> bool:
        return hmac.compare_digest(self._signature(path, expires).encode(), signature.encode())

    def synthesis(self, job: _Job) -> _Synthesis:
        return _Synthesis(self, job)


# -------------------------------------------------------------------------- synthesis


class _Synthesis:
    """Lyrics, arrangement and encoded chunks for one job, each step in a worker thread."""

    def __init__(self, state: SimulatorState, job: _Job) -> None:
        self.state = state
        self.job = job
        self.lyrics = ""
        self.duration = 0.0
        self.sample_rate = 48000
        self.channels = 2
        self._chunks: Iterator[bytes] | None = None

    def _prepare(self) -> None:
        req = self.job.request
        if req.mode == "lyrics":
            raw = self.job.raw_input.get("lyrics")
            self.lyrics = raw if isinstance(raw, str) else req.text  # returned as sent
            arr = arrange(lyrics=self.lyrics, gender=req.gender, instrumental=req.instrumental)
        else:
            raw = self.job.raw_input.get("prompt")
            prompt = raw if isinstance(raw, str) else req.text
            self.lyrics = write_lyrics(prompt)
            arr = arrange(lyrics=self.lyrics, gender=req.gender, prompt=prompt,
                          instrumental=req.instrumental)
        if req.instrumental:
            self.lyrics = ""  # nothing is sung, so the song has no lyrics
        self.duration = float(arr.duration)
        self.sample_rate = int(arr.sample_rate)
        self.channels = int(arr.channels)
        self._chunks = iter(encode(arr, req.format, chunk_seconds=CHUNK_SECONDS))

    def _first(self) -> bytes | None:
        self._prepare()
        return self._next()

    def _next(self) -> bytes | None:
        assert self._chunks is not None
        while True:
            chunk = next(self._chunks, None)
            if chunk is None or chunk:
                return chunk

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """Async iterator of non-empty encoded chunks; closes the encoder however it ends."""
        self.state.active_syntheses += 1
        try:
            # Planning and the first chunk in one trip to the worker thread: the first event's
            # latency is what a listener waits for.
            chunk = await anyio.to_thread.run_sync(self._first)
            while True:
                if chunk is None:
                    return
                yield chunk
                # Not abandoned on cancel: a disconnect waits for this one chunk, then stops.
                chunk = await anyio.to_thread.run_sync(self._next)
        finally:
            if self._chunks is not None:
                close = getattr(self._chunks, "close", None)
                if close is not None:
                    close()
            self.state.active_syntheses -= 1

    @property
    def billed_seconds(self) -> int:
        return max(1, round(self.duration))


# --------------------------------------------------------------------------- responses


class _GenerationResponse(Response):
    """Runs one job while it answers, watching for the client leaving and the server closing."""

    def __init__(self, state: SimulatorState, job: _Job) -> None:
        self.state = state
        self.job = job
        self.status_code = 200
        self.background = None
        self._complete = False
        self._disconnected = False
        self._abort = False
        self.expires_at = 0
        self.url = ""

    def _sign(self, ready_in: float) -> None:
        """Set the URL and its expiry: ``url_ttl`` from when the song will be complete (in
        ``ready_in`` seconds), so a short TTL is not used up while the song is being made."""
        ready = time.time() + max(0.0, ready_in)
        self.expires_at = math.ceil(ready + self.state.url_ttl)
        self.url = self.state.signed_url(self.job.base, self.job.path, self.expires_at)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._complete = True
            await send(message)

        async def watch_disconnect(cancel: anyio.CancelScope) -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    if not self._complete:
                        self._disconnected = True
                    cancel.cancel()
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_disconnect, tg.cancel_scope)
            tg.start_soon(self.state.watch_closing, tg.cancel_scope)
            run = self._stream if self.job.request.stream else self._whole
            await run(tracked)
            tg.cancel_scope.cancel()
        if self._disconnected:
            return  # nobody is listening; uvicorn closes quietly
        if self._abort or not self._complete:
            # An injected drop, or the server closing mid-answer: break the connection.
            raise _Abort(f"request {self.job.request_id} aborted")

    # -- faults while answering
    def _strikes(self, sent: int) -> bool:
        fault = self.job.fault
        return fault is not None and fault.is_stream_fault and sent >= fault.after

    def _error_payload(self) -> dict[str, str]:
        return {"code": "InternalError", "message": _MESSAGES["InternalError"],
                "request_id": self.job.request_id}

    async def _strike(self, send: Send, event_id: int) -> None:
        """Carry out the job's stream fault after ``event_id - 1`` events."""
        fault = self.job.fault
        assert fault is not None
        if fault.kind == "drop-after":
            self._abort = True
        elif fault.kind == "stall-after":
            await anyio.sleep_forever()  # until the client leaves or the server closes
        elif fault.kind == "error-event-after":
            data = _sse_event(event_id, _dumps(self._error_payload()), event="error", status=500)
            await send({"type": "http.response.body", "body": data, "more_body": False})
        elif fault.kind == "malformed-after":
            # Cut inside a string, the way a broken proxy truncates a line: not JSON.
            broken = '{"output":{"audio":{"data":"SUQzBAAAAAAA'
            data = f"id:{event_id}\nevent:result\n:HTTP_STATUS/200\ndata:{broken}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": False})

    # -- streaming
    async def _stream(self, send: Send) -> None:
        job, state = self.job, self.state
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", _SSE_CONTENT_TYPE.encode()),
                (b"cache-control", b"no-cache"),
                (b"x-request-id", job.request_id.encode()),
            ],
        })
        synth = state.synthesis(job)
        pieces: list[bytes] = []
        sent = 0
        async with aclosing(synth.chunks()) as chunks:
            while True:
                try:
                    chunk = await anext(chunks, None)
                except Exception:
                    # A synthesis bug: tell the client the DashScope way, inside the 200 stream.
                    logger.exception("simulator synthesis failed (request %s)", job.request_id)
                    data = _sse_event(sent + 1, _dumps(self._error_payload()), event="error",
                                      status=500)
                    await send({"type": "http.response.body", "body": data, "more_body": False})
                    return
                if chunk is None:
                    break
                if self._strikes(sent):
                    await self._strike(send, sent + 1)
                    return
                if sent == 0:  # the song's length is known now
                    end = state.audio_deadline(job.started, synth.duration)
                    self._sign(end - time.monotonic())
                await state.sleep_until(state.audio_deadline(job.started, sent * CHUNK_SECONDS))
                payload = {
                    "output": {
                        "audio": {"data": base64.b64encode(chunk).decode("ascii"),
                                  "expires_at": self.expires_at, "id": job.audio_id},
                        "finish_reason": "null",
                    },
                    "request_id": job.request_id,
                }
                await send({"type": "http.response.body", "more_body": True,
                            "body": _sse_event(sent + 1, _dumps(payload))})
                pieces.append(chunk)
                sent += 1
        if job.fault is not None and job.fault.is_stream_fault:
            # A song of N chunks or fewer meets its stream fault just before the final event.
            await self._strike(send, sent + 1)
            return
        await state.sleep_until(state.audio_deadline(job.started, synth.duration))
        state.store.put(job.store_key, b"".join(pieces), mime_type_for(job.request.format))
        final = {
            "output": {
                "audio": {"expires_at": self.expires_at, "id": job.audio_id, "data": "",
                          "url": self.url},
                "extra_info": {"channels": synth.channels, "sample_rate": str(synth.sample_rate),
                               "lyrics": synth.lyrics},
                "finish_reason": "stop",
            },
            "usage": {"duration": synth.billed_seconds},
            "request_id": job.request_id,
        }
        await send({"type": "http.response.body", "more_body": False,
                    "body": _sse_event(sent + 1, _dumps(final))})

    # -- non-streaming
    async def _whole(self, send: Send) -> None:
        job, state = self.job, self.state
        if job.fault is not None and job.fault.kind == "stall-after":
            # Headers, then silence: nothing is synthesized for an answer that never comes.
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", _JSON_CONTENT_TYPE.encode()),
                (b"x-request-id", job.request_id.encode())]})
            await anyio.sleep_forever()
        synth = state.synthesis(job)
        try:
            async with aclosing(synth.chunks()) as chunks:
                pieces = [chunk async for chunk in chunks]
        except Exception:
            logger.exception("simulator synthesis failed (request %s)", job.request_id)
            body = _dumps(self._error_payload()).encode()
            await send({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", _JSON_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", job.request_id.encode())]})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await state.sleep_until(state.audio_deadline(job.started, synth.duration))
        state.store.put(job.store_key, b"".join(pieces), mime_type_for(job.request.format))
        self._sign(0.0)
        body = _dumps({
            "output": {
                "audio": {"data": "", "expires_at": self.expires_at, "id": job.audio_id,
                          "url": self.url},
                "extra_info": {"channels": synth.channels, "lyrics": synth.lyrics,
                               "sample_rate": synth.sample_rate},
                "finish_reason": "stop",
            },
            "usage": {"duration": synth.billed_seconds},
            "request_id": job.request_id,
        }).encode("utf-8")
        await self._send_whole(send, body)

    async def _send_whole(self, send: Send, body: bytes) -> None:
        fault = self.job.fault
        kind = fault.kind if fault is not None and fault.is_stream_fault else None
        status, content = 200, body
        if kind == "error-event-after":
            # What gateways have been seen to do: a stream-framed error labelled JSON.
            status = 500
            content = (f"event:error\n:HTTP_STATUS/500\ndata:{_dumps(self._error_payload())}\n"
                       .encode())
        elif kind == "malformed-after":
            content = body[: len(body) // 2]
        promised = len(body) if kind == "drop-after" else len(content)
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", _JSON_CONTENT_TYPE.encode()),
                (b"content-length", str(promised).encode()),
                (b"x-request-id", self.job.request_id.encode()),
            ],
        })
        if kind == "drop-after":
            # Half the promised bytes, then the connection breaks.
            await send({"type": "http.response.body", "body": body[: len(body) // 2],
                        "more_body": True})
            self._abort = True
            return
        await send({"type": "http.response.body", "body": content, "more_body": False})


# ----------------------------------------------------------------------------- routes


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is over ``MAX_BODY_BYTES``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _make_generation(state: SimulatorState) -> Callable[[Request], Awaitable[Response]]:
    async def generation(request: Request) -> Response:
        started = time.monotonic()
        rid = _new_request_id()
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", rid,
                          f"{request.url.path} accepts POST only; got {request.method}.",
                          {"allow": "POST"})
        if state.api_key is not None:
            token = _bearer(request)
            if token is None or not hmac.compare_digest(token.encode(), state.api_key.encode()):
                return _error(401, "InvalidApiKey", rid)
        try:
            fault = parse_fault(request.headers.get(FAULT_HEADER))
        except FaultSyntaxError as exc:
            return _error(400, "InvalidParameter", rid, str(exc))
        wait = state.window.admit(time.monotonic())
        if wait is not None:
            return _error(429, "Throttling.RateQuota", rid,
                          headers={"retry-after": str(max(1, math.ceil(wait)))})
        raw = await _read_body(request)
        if raw is None:
            return _error(400, "InvalidParameter", rid,
                          f"the request body must be at most {MAX_BODY_BYTES:,} bytes; got more")
        try:
            body = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return _error(400, "InvalidParameter", rid,
                          "the request body must be a JSON object; got bytes that are not UTF-8")
        except json.JSONDecodeError as exc:
            return _error(400, "InvalidParameter", rid,
                          f"the request body must be a JSON object; got malformed JSON "
                          f"({exc.msg} at line {exc.lineno} column {exc.colno})")
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and model.strip() and model.strip() not in KNOWN_MODELS:
            return _error(404, "Model.NotExist", rid)
        stream = request.headers.get("x-dashscope-sse", "").strip().lower() == "enable"
        try:
            # The service answers in English whatever the kernel's language: so does its
            # stand-in (its messages are "the API's own", shown verbatim by the client).
            with use_language("en"):
                song_request = validate_payload(body, stream=stream)
        except ValidationError as exc:
            return _error(400, "InvalidParameter", rid, str(exc))

        if fault is not None and not fault.is_stream_fault:
            if fault.kind == "throttle" and state.throttle_attempt(raw, fault):
                return _error(429, "Throttling.RateQuota", rid,
                              headers={"retry-after": f"{fault.seconds:g}"})
            if fault.kind == "status":
                code = "InternalError" if fault.status == 500 else "ServiceUnavailable"
                return _error(fault.status, code, rid)
            if fault.kind == "inspection":
                return _error(400, "DataInspectionFailed", rid)

        audio_uuid = str(uuid.uuid4())
        day = datetime.now(timezone.utc).strftime("%Y%m%d")
        path = f"/oss/{_OSS_BUCKET}/{day}/{audio_uuid}.{song_request.format}"
        base = str(request.base_url).rstrip("/")
        job = _Job(
            request=song_request,
            raw_input=body["input"],
            request_id=rid,
            audio_uuid=audio_uuid,
            base=base,
            path=path,
            fault=fault,
            started=started,
        )
        return _GenerationResponse(state, job)

    return generation


def _make_download(state: SimulatorState) -> Callable[[Request], Awaitable[Response]]:
    async def download(request: Request) -> Response:
        rid = uuid.uuid4().hex.upper()[:24]  # OSS request ids are 24 hex digits
        head = request.method == "HEAD"
        if request.method not in ("GET", "HEAD"):
            return _oss_error(405, "MethodNotAllowed",
                              "The specified method is not allowed against this resource.", rid)
        path = request.url.path
        expires_raw = request.query_params.get("Expires")
        signature = request.query_params.get("Signature")
        if not expires_raw or not signature:
            return _oss_error(403, "AccessDenied",
                              "You have no right to access this object because of bucket acl.",
                              rid, head=head)
        try:
            expires = int(expires_raw)
        except ValueError:
            expires = -1
        if expires < 0 or not state.signature_ok(path, expires, signature):
            return _oss_error(403, "SignatureDoesNotMatch",
                              "The request signature we calculated does not match the signature "
                              "you provided.", rid, head=head)
        now = time.time()
        if now > expires:
            return _oss_error(403, "AccessDenied", "Request has expired.", rid,
                              {"Expires": _iso(expires), "ServerTime": _iso(now)}, head=head)
        stored = state.store.get(path.split("/oss/", 1)[1])
        if stored is None:
            return _oss_error(404, "NoSuchKey", "The specified key does not exist.", rid,
                              {"Key": path.rsplit("/", 1)[-1]}, head=head)
        return _ranged(request, stored, rid, head=head)

    return download


def _ranged(request: Request, stored: _Stored, rid: str, *, head: bool) -> Response:
    """The object, or one byte range of it (browsers' <audio> seeks with ranges)."""
    data = stored.data
    size = len(data)
    headers = {"accept-ranges": "bytes", "x-oss-request-id": rid, "x-request-id": rid,
               "cache-control": "no-cache"}
    rng = request.headers.get("range", "")
    status, start, end = 200, 0, size - 1
    if rng.startswith("bytes=") and "," not in rng:
        first, _, last = rng[6:].strip().partition("-")
        try:
            if first:
                start = int(first)
                end = min(int(last), size - 1) if last else size - 1
            elif last:
                start, end = max(0, size - int(last)), size - 1
            if not 0 <= start <= end < size:
                raise ValueError(rng)
            status = 206
            headers["content-range"] = f"bytes {start}-{end}/{size}"
        except ValueError:
            status, start, end = 200, 0, size - 1  # OSS ignores a range it cannot satisfy
    body = data[start : end + 1]
    headers["content-length"] = str(len(body))
    return Response(b"" if head else body, status_code=status, headers=headers,
                    media_type=stored.media_type)


async def _not_found(request: Request) -> Response:
    rid = _new_request_id()
    paths = " or ".join(f"POST {p}" for p in GENERATION_PATHS)
    return _error(404, "NotFound", rid,
                  f"no such path {request.url.path!r}; the simulator answers {paths}")


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Reached only for a bug in this module; uvicorn logs the exception itself.
    rid = _new_request_id()
    body = {"request_id": rid, "code": "InternalError", "message": _MESSAGES["InternalError"]}
    return Response(_dumps(body).encode(), status_code=500, media_type=_JSON_CONTENT_TYPE,
                    headers={"x-request-id": rid, SIMULATED_HEADER: "true"})


class _AnyMethod:
    """A request/response endpoint as a plain ASGI app, so Starlette's routing does not answer
    other methods with its own plain-text 405: we answer them DashScope- or OSS-shaped."""

    def __init__(self, func: Callable[[Request], Awaitable[Response]]) -> None:
        self._app = request_response(func)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def _check_number(name: str, value: float, *, allow_inf: bool, low: float, low_ok: bool) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if number < low or (number == low and not low_ok):
        bound = f">= {low:g}" if low_ok else f"> {low:g}"
        raise ValueError(f"{name} must be {bound}; got {value!r}")
    return number


def create_app(
    *,
    speed: float = 1.0,
    first_chunk_delay: float = 0.0,
    api_key: str | None = None,
    url_ttl: float = 86400.0,
    rpm: int = 180,
) -> Starlette:
    """The simulator as an ASGI app (``app.state.simulator`` holds its shared state).

    ``speed``: audio seconds per wall second (0 or ``inf``: as fast as synthesis goes).
    ``first_chunk_delay``: seconds before the first audio. ``api_key``: when set, requests
    must carry it as a Bearer token (401 otherwise). ``url_ttl``: seconds a download URL lives.
    ``rpm``: requests per sliding minute before 429.
    """
    speed = _check_number("speed", speed, allow_inf=True, low=0.0, low_ok=True)
    first_chunk_delay = _check_number("first_chunk_delay", first_chunk_delay, allow_inf=False,
                                      low=0.0, low_ok=True)
    url_ttl = _check_number("url_ttl", url_ttl, allow_inf=False, low=0.0, low_ok=False)
    if isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1:
        raise ValueError(f"rpm must be a whole number >= 1; got {rpm!r}")
    if api_key is not None and not api_key.strip():
        raise ValueError("api_key must be a non-empty string or None; got an empty string")
    state = SimulatorState(speed=speed, first_chunk_delay=first_chunk_delay,
                           api_key=api_key.strip() if api_key else None, url_ttl=url_ttl, rpm=rpm)
    _install_log_filter()
    generation = _make_generation(state)
    routes = [Route(path, _AnyMethod(generation)) for path in GENERATION_PATHS]
    routes.append(Route(f"/oss/{_OSS_BUCKET}/{{day}}/{{name}}", _AnyMethod(_make_download(state))))
    routes.append(Route("/{path:path}", _AnyMethod(_not_found)))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_SimulatedHeaderMiddleware)],
        exception_handlers={Exception: _internal_error},
    )
    app.state.simulator = state
    return app
