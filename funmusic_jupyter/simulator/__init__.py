"""The offline Fun-Music simulator: the service's exact wire protocol, with real, listenable songs.

It is what the package uses when no API key is configured, the backend of every test and
teaching notebook, and a classroom server (``python -m funmusic_jupyter.simulator``). Songs are
synthesized locally and deterministically (the same request gives the same bytes); nothing
leaves the machine and nothing is billed. Every response carries ``X-FunMusic-Simulated: true``
and every audio file is tagged as simulated.

Running it
----------
Standalone (loopback by default; binding elsewhere, e.g. ``--host 0.0.0.0`` for a classroom,
prints a warning)::

    python -m funmusic_jupyter.simulator --port 8765 [--speed 1] [--first-chunk-delay 0]
        [--api-key KEY] [--url-ttl 86400] [--rpm 180] [--workers CORES] [--secret TEXT]

then point any DashScope client at it: ``DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:8765/api/v1``.
``--workers N`` synthesizes and encodes in N processes (default: one per core) while one event
loop serves, frames and paces. Instances that share ``--secret`` (or
``FUNMUSIC_SIMULATOR_SECRET``) serve each other's download URLs, so several can run behind a
reverse proxy with no sticky sessions.

In Python: ``start_embedded()`` (one per process, in a child process so that synthesis never
competes with a kernel for its GIL; silent, stopped at exit or when its parent dies; speed from
``FUNMUSIC_SIMULATOR_SPEED``, default 4x real time, first-chunk delay 0.5 s), or
``with SimulatorServer(speed=0) as sim: sim.base_url`` in tests, or ``create_app(...)`` for any
ASGI server.

What it serves
--------------
- ``POST /api/v1/services/audio/music/generation`` and the user guide's older
  ``POST /api/v1/services/audio/tts/SpeechSynthesizer``: JSON, or DashScope SSE when the request
  has ``X-DashScope-SSE: enable`` (``id:N`` / ``event:result`` / ``:HTTP_STATUS/200`` /
  ``data:{…}``; ``finish_reason`` ``"null"`` then ``"stop"``; ``sample_rate`` the string
  ``"48000"`` in the stream's final event, the integer ``48000`` in a JSON answer).
- ``GET /oss/fun-music/YYYYMMDD/<id>.mp3?song=…&Expires=…&Signature=…``: the song, valid for
  ``url_ttl`` seconds (24 h by default), then 403 with an OSS-style XML ``AccessDenied`` /
  ``Request has expired.`` body. The URL is stateless: ``song`` carries, signed with the
  secret, what the song is made from, so it is made again (byte for byte) when it is not among
  the newest 256 MB of songs kept in memory, or was made by another process.
- Errors as DashScope sends them (``{"request_id", "code", "message"}``): 400 InvalidParameter
  with exactly the client's validation message, 401 InvalidApiKey (with ``--api-key``), 404
  Model.NotExist (models other than ``fun-music-v1`` and ``fun-music-preview``), 405, 429
  Throttling.RateQuota above ``rpm`` requests in a sliding minute (with ``Retry-After``).
- Pacing: ``speed`` is audio seconds per wall second (0 or inf: unpaced); audio chunk *k* (about
  1 s each) leaves at ``first_chunk_delay + k / speed``, the final event (or a JSON answer) at
  ``first_chunk_delay + duration / speed``.

Fault injection
---------------
Send the header ``X-FunMusic-Fault`` with one of these values (only that header injects faults;
an unknown value is refused with 400 InvalidParameter listing the valid ones):

``drop-after=N``
    The stream breaks after N audio events: the connection is closed mid-response (an
    incomplete chunked body, no final event). Without streaming: half the JSON body, then the
    connection breaks.
``stall-after=N``
    After N audio events nothing more is sent, but the connection stays open (until the client
    gives up). Without streaming: the headers, then silence.
``status=500`` / ``status=503``
    HTTP 500 ``InternalError`` / 503 ``ServiceUnavailable`` before any audio.
``throttle=SECONDS`` / ``throttle=SECONDSxTIMES``
    HTTP 429 ``Throttling.RateQuota`` with ``Retry-After: SECONDS``. With ``xTIMES`` only the first
    TIMES attempts of the same request body (and header) are throttled, so a retry succeeds.
``error-event-after=N``
    After N audio events, ``event:error`` with ``:HTTP_STATUS/500`` and an ``InternalError``
    body inside the 200 stream, then the stream ends. Without streaming: HTTP 500 whose body is
    that stream-framed error labelled ``application/json`` (as gateways have been seen to do).
``malformed-after=N``
    After N audio events a ``data:`` line that is not JSON, then the stream ends. Without
    streaming: a 200 whose JSON body is cut in half.
``inspection``
    HTTP 400 ``DataInspectionFailed``, as for lyrics the service's content check refuses.

N counts audio events (0: before the first one); a song shorter than N chunks meets the fault
just before its final event. Example:
``curl -N -H 'X-DashScope-SSE: enable' -H 'X-FunMusic-Fault: drop-after=3' …``
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._faults import FAULT_HEADER, SIMULATED_HEADER

if TYPE_CHECKING:
    from ._app import create_app
    from ._embedded import start_embedded
    from ._server import SimulatorServer

__all__ = ["FAULT_HEADER", "SIMULATED_HEADER", "SimulatorServer", "create_app", "start_embedded"]

_LAZY = {
    "create_app": "._app",
    "SimulatorServer": "._server",
    "start_embedded": "._embedded",
}


def __getattr__(name: str) -> Any:
    # Starlette, uvicorn and numpy are imported only when a simulator is actually made, so the
    # client can read FAULT_HEADER / SIMULATED_HEADER cheaply.
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
