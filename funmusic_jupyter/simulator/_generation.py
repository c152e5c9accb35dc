"""Answering one admitted generation request: the song streamed as DashScope SSE, or a JSON
answer, paced, with the injected stream faults, stopping when the client leaves or the server
closes."""

from __future__ import annotations

import base64
import logging
import math
import time
from contextlib import aclosing
from dataclasses import dataclass

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from .._models import mime_type_for
from .._validation import SongRequest
from ._faults import Fault
from ._state import SimulatorState
from ._synthesis import CHUNK_SECONDS, SongSpec
from ._wire import JSON_CONTENT_TYPE, MESSAGES, SSE_CONTENT_TYPE, dumps, sse_event

__all__ = ["Abort", "GenerationResponse", "Job"]

logger = logging.getLogger("funmusic_jupyter.simulator")


class Abort(Exception):
    """Raised out of the ASGI app on purpose so uvicorn closes the connection mid-response."""


@dataclass(frozen=True)
class Job:
    """One admitted, validated generation request."""

    request: SongRequest
    spec: SongSpec  # what the song is made from; the download URL carries it
    request_id: str
    audio_uuid: str
    base: str  # scheme://host:port the client used, for the download URL
    path: str  # /oss/fun-music/YYYYMMDD/<uuid>.<format>
    fault: Fault | None
    started: float  # time.monotonic() when the request arrived

    @property
    def audio_id(self) -> str:
        return f"audio_{self.audio_uuid}"


class GenerationResponse(Response):
    """Runs one job while it answers, watching for the client leaving and the server closing."""

    def __init__(self, state: SimulatorState, job: Job) -> None:
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
        query = self.state.signer.signed_query(self.job.path, self.job.spec, self.expires_at)
        self.url = f"{self.job.base}{self.job.path}?{query}"

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
            raise Abort(f"request {self.job.request_id} aborted")

    # -- faults while answering
    def _strikes(self, sent: int) -> bool:
        fault = self.job.fault
        return fault is not None and fault.is_stream_fault and sent >= fault.after

    def _error_payload(self) -> dict[str, str]:
        return {"code": "InternalError", "message": MESSAGES["InternalError"],
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
            data = sse_event(event_id, dumps(self._error_payload()), event="error", status=500)
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
                (b"content-type", SSE_CONTENT_TYPE.encode()),
                (b"cache-control", b"no-cache"),
                (b"x-request-id", job.request_id.encode()),
            ],
        })
        synth = state.synthesis(job.spec)
        pieces: list[bytes] = []
        sent = 0
        async with aclosing(synth.chunks()) as chunks:
            while True:
                try:
                    chunk = await anext(chunks, None)
                except Exception:
                    # A synthesis bug: tell the client the DashScope way, inside the 200 stream.
                    logger.exception("simulator synthesis failed (request %s)", job.request_id)
                    data = sse_event(sent + 1, dumps(self._error_payload()), event="error",
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
                            "body": sse_event(sent + 1, dumps(payload))})
                pieces.append(chunk)
                sent += 1
        if job.fault is not None and job.fault.is_stream_fault:
            # A song of N chunks or fewer meets its stream fault just before the final event.
            await self._strike(send, sent + 1)
            return
        await state.sleep_until(state.audio_deadline(job.started, synth.duration))
        state.store.put(job.spec.key, b"".join(pieces), mime_type_for(job.spec.format))
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
                    "body": sse_event(sent + 1, dumps(final))})

    # -- non-streaming
    async def _whole(self, send: Send) -> None:
        job, state = self.job, self.state
        if job.fault is not None and job.fault.kind == "stall-after":
            # Headers, then silence: nothing is synthesized for an answer that never comes.
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", JSON_CONTENT_TYPE.encode()),
                (b"x-request-id", job.request_id.encode())]})
            await anyio.sleep_forever()
        synth = state.synthesis(job.spec)
        try:
            async with aclosing(synth.chunks()) as chunks:
                pieces = [chunk async for chunk in chunks]
        except Exception:
            logger.exception("simulator synthesis failed (request %s)", job.request_id)
            body = dumps(self._error_payload()).encode()
            await send({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", JSON_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", job.request_id.encode())]})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await state.sleep_until(state.audio_deadline(job.started, synth.duration))
        state.store.put(job.spec.key, b"".join(pieces), mime_type_for(job.spec.format))
        self._sign(0.0)
        body = dumps({
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
            content = (f"event:error\n:HTTP_STATUS/500\ndata:{dumps(self._error_payload())}\n"
                       .encode())
        elif kind == "malformed-after":
            content = body[: len(body) // 2]
        promised = len(body) if kind == "drop-after" else len(content)
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", JSON_CONTENT_TYPE.encode()),
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
