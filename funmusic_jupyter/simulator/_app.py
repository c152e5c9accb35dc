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
time. Synthesis is pulled one ~1 s chunk at a time, in a worker thread or (``workers``) a pool
process, so the first event never waits for the whole song and a client that goes away stops
synthesis within one chunk.

Modules: ``_wire`` (DashScope framing), ``_generation`` (answering one request), ``_download``
(the signed, stateless download URLs), ``_state`` (what requests share), ``_synthesis`` and
``_pool`` (making songs).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from .._errors import ValidationError
from .._i18n import use_language
from .._validation import validate_payload
from ._download import OSS_BUCKET, make_download
from ._faults import FAULT_HEADER, SIMULATED_HEADER, FaultSyntaxError, parse_fault
from ._generation import Abort, GenerationResponse, Job
from ._state import SimulatorState
from ._synthesis import SongSpec
from ._wire import (
    JSON_CONTENT_TYPE,
    MESSAGES,
    SimulatedHeaderMiddleware,
    dumps,
    error,
    new_request_id,
)

__all__ = ["API_PREFIX", "GENERATION_PATHS", "KNOWN_MODELS", "SimulatorState", "create_app"]

API_PREFIX = "/api/v1"
GENERATION_PATHS = (
    f"{API_PREFIX}/services/audio/music/generation",
    f"{API_PREFIX}/services/audio/tts/SpeechSynthesizer",
)
KNOWN_MODELS = frozenset({"fun-music-v1", "fun-music-preview"})
MAX_BODY_BYTES = 1 << 20  # the longest valid body (2,000 characters of lyrics) is a few KB


class _QuietAborts(logging.Filter):
    # uvicorn logs every exception that leaves the app; an injected drop is not a bug.
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, Abort):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


_quiet_filter = _QuietAborts()


def _install_log_filter() -> None:
    target = logging.getLogger("uvicorn.error")
    if _quiet_filter not in target.filters:
        target.addFilter(_quiet_filter)


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
        rid = new_request_id()
        if request.method != "POST":
            return error(405, "MethodNotAllowed", rid,
                          f"{request.url.path} accepts POST only; got {request.method}.",
                          {"allow": "POST"})
        if state.api_key is not None:
            token = _bearer(request)
            if token is None or not hmac.compare_digest(token.encode(), state.api_key.encode()):
                return error(401, "InvalidApiKey", rid)
        try:
            fault = parse_fault(request.headers.get(FAULT_HEADER))
        except FaultSyntaxError as exc:
            return error(400, "InvalidParameter", rid, str(exc))
        wait = state.window.admit(time.monotonic())
        if wait is not None:
            return error(429, "Throttling.RateQuota", rid,
                          headers={"retry-after": str(max(1, math.ceil(wait)))})
        raw = await _read_body(request)
        if raw is None:
            return error(400, "InvalidParameter", rid,
                          f"the request body must be at most {MAX_BODY_BYTES:,} bytes; got more")
        try:
            body = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return error(400, "InvalidParameter", rid,
                          "the request body must be a JSON object; got bytes that are not UTF-8")
        except json.JSONDecodeError as exc:
            return error(400, "InvalidParameter", rid,
                          f"the request body must be a JSON object; got malformed JSON "
                          f"({exc.msg} at line {exc.lineno} column {exc.colno})")
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and model.strip() and model.strip() not in KNOWN_MODELS:
            return error(404, "Model.NotExist", rid)
        stream = request.headers.get("x-dashscope-sse", "").strip().lower() == "enable"
        try:
            # The service answers in English whatever the kernel's language: so does its
            # stand-in (its messages are "the API's own", shown verbatim by the client).
            with use_language("en"):
                song_request = validate_payload(body, stream=stream)
        except ValidationError as exc:
            return error(400, "InvalidParameter", rid, str(exc))

        if fault is not None and not fault.is_stream_fault:
            if fault.kind == "throttle" and state.throttle_attempt(raw, fault):
                return error(429, "Throttling.RateQuota", rid,
                              headers={"retry-after": f"{fault.seconds:g}"})
            if fault.kind == "status":
                code = "InternalError" if fault.status == 500 else "ServiceUnavailable"
                return error(fault.status, code, rid)
            if fault.kind == "inspection":
                return error(400, "DataInspectionFailed", rid)

        audio_uuid = str(uuid.uuid4())
        day = datetime.now(timezone.utc).strftime("%Y%m%d")
        path = f"/oss/{OSS_BUCKET}/{day}/{audio_uuid}.{song_request.format}"
        base = str(request.base_url).rstrip("/")
        job = Job(
            request=song_request,
            spec=SongSpec.from_request(song_request, body["input"]),
            request_id=rid,
            audio_uuid=audio_uuid,
            base=base,
            path=path,
            fault=fault,
            started=started,
        )
        return GenerationResponse(state, job)

    return generation


async def _not_found(request: Request) -> Response:
    rid = new_request_id()
    paths = " or ".join(f"POST {p}" for p in GENERATION_PATHS)
    return error(404, "NotFound", rid,
                  f"no such path {request.url.path!r}; the simulator answers {paths}")


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Reached only for a bug in this module; uvicorn logs the exception itself.
    rid = new_request_id()
    body = {"request_id": rid, "code": "InternalError", "message": MESSAGES["InternalError"]}
    return Response(dumps(body).encode(), status_code=500, media_type=JSON_CONTENT_TYPE,
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
    secret: str | None = None,
    workers: int = 0,
) -> Starlette:
    """The simulator as an ASGI app (``app.state.simulator`` holds its shared state).

    ``speed``: audio seconds per wall second (0 or ``inf``: as fast as synthesis goes).
    ``first_chunk_delay``: seconds before the first audio. ``api_key``: when set, requests
    must carry it as a Bearer token (401 otherwise). ``url_ttl``: seconds a download URL lives.
    ``rpm``: requests per sliding minute before 429. ``secret``: signs download URLs;
    instances that share it serve each other's URLs (``None``: a random one, so URLs are valid
    only here). ``workers``: synthesis processes (0: threads of this process); whoever runs the
    app calls ``app.state.simulator.pool.shutdown()`` when done with it.
    """
    speed = _check_number("speed", speed, allow_inf=True, low=0.0, low_ok=True)
    first_chunk_delay = _check_number("first_chunk_delay", first_chunk_delay, allow_inf=False,
                                      low=0.0, low_ok=True)
    url_ttl = _check_number("url_ttl", url_ttl, allow_inf=False, low=0.0, low_ok=False)
    if isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1:
        raise ValueError(f"rpm must be a whole number >= 1; got {rpm!r}")
    if api_key is not None and not api_key.strip():
        raise ValueError("api_key must be a non-empty string or None; got an empty string")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be a whole number >= 0; got {workers!r}")
    if secret is not None and not secret.strip():
        raise ValueError("secret must be a non-empty string or None; got an empty string")
    state = SimulatorState(speed=speed, first_chunk_delay=first_chunk_delay,
                           api_key=api_key.strip() if api_key else None, url_ttl=url_ttl, rpm=rpm,
                           secret=secret, workers=workers)
    _install_log_filter()
    generation = _make_generation(state)
    routes = [Route(path, _AnyMethod(generation)) for path in GENERATION_PATHS]
    routes.append(Route(f"/oss/{OSS_BUCKET}/{{day}}/{{name}}", _AnyMethod(make_download(state))))
    routes.append(Route("/{path:path}", _AnyMethod(_not_found)))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SimulatedHeaderMiddleware)],
        exception_handlers={Exception: _internal_error},
    )
    app.state.simulator = state
    return app
