"""The Fun-Music wire protocol, without any I/O: shared by the sync and the async client.

Everything here takes bytes, text, headers and parsed JSON, and returns values or raises
``APIError`` subclasses; the clients only move bytes and wait. Contents:

- request building: URL, headers (``User-Agent``, ``Authorization`` only when there is a key)
- ``EventDecoder``: DashScope's SSE framing on top of httpx-sse's line and event decoders
- ``SongAssembler``: turns stream events (or a non-streaming body) into ``AudioChunk`` s and a
  ``Song``; keeps every audio byte so ``partial_audio`` is cheap on any failure
- ``AudioDownload``: the size-capped download of the finished audio from its URL
- error mapping for transport failures, and the retry decision

Why not ``EventSource.iter_sse()``: DashScope puts the status of each event in a comment line
(``:HTTP_STATUS/500``) and the SSE spec, which httpx-sse 0.4.3 follows, drops comments inside
``SSEDecoder.decode`` — a decoder ``iter_sse`` creates itself, with no hook to replace it.
``iter_sse`` also refuses any response not labelled ``text/event-stream``, while gateways send
stream-framed errors labelled ``application/json``. So ``EventDecoder`` feeds the response text
through httpx-sse's own ``SSELineDecoder`` and a three-line ``SSEDecoder`` subclass that records
the status comment before the spec-conforming decoder discards it. No SSE parsing is
hand-written here.
"""

from __future__ import annotations

import binascii
import io
import json
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx
from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from ._config import Settings, redact
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    RateLimitError,
    StreamInterruptedError,
    error_from_response,
    quote,
)
from ._i18n import _
from ._models import AudioChunk, Song
from ._progress import AudioProgress
from ._validation import SongRequest
from ._version import __version__

__all__ = [
    "USER_AGENT",
    "AudioDownload",
    "EventDecoder",
    "LimitedBody",
    "SongAssembler",
    "StatusEvent",
    "check_download_url",
    "default_backoff",
    "generation_headers",
    "generation_url",
    "looks_like_event_stream",
    "retry_wait",
    "scrub",
    "transport_error",
]

USER_AGENT = (
    f"funmusic-jupyter/{__version__} httpx/{httpx.__version__} "
    f"python/{platform.python_version()}"
)
SIMULATED_HEADER = "x-funmusic-simulated"
#: Error bodies are short; reading more than this from one would only waste memory.
MAX_ERROR_BODY = 1 << 20


# -- requests --------------------------------------------------------------------------------


def generation_url(base_url: str, endpoint: str) -> str:
    return base_url.rstrip("/") + "/" + endpoint.lstrip("/")


def generation_headers(
    settings: Settings,
    *,
    stream: bool,
    client_headers: Mapping[str, str] | None = None,
    call_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Headers of a generation request; only these ever carry the key."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if stream:
        headers["X-DashScope-SSE"] = "enable"
        headers["Accept"] = "text/event-stream"
    else:
        headers["Accept"] = "application/json"
    for extra in (client_headers, call_headers):
        if extra:
            headers.update(extra)
    # The simulator backend never receives the user's key (Settings holds none for it).
    if settings.api_key and settings.backend == "api":
        headers["Authorization"] = f"Bearer {settings.api_key}"
    return headers


# -- SSE ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusEvent:
    """A server-sent event and the status of its ``:HTTP_STATUS/NNN`` comment, if it had one."""

    sse: ServerSentEvent
    http_status: int | None


class _StatusCommentDecoder(SSEDecoder):
    """httpx-sse's event decoder, which also remembers DashScope's ``:HTTP_STATUS/NNN``."""

    def __init__(self) -> None:
        super().__init__()
        self._pending_status: int | None = None
        self.status: int | None = None  # the status of the event decode() last returned
        self.pending = False  # a field line arrived since the last dispatched event

    def decode(self, line: str) -> ServerSentEvent | None:
        if line.startswith(":HTTP_STATUS/"):
            try:
                self._pending_status = int(line[13:].strip())
            except ValueError:
                pass
            return None
        sse = super().decode(line)
        if sse is not None:
            self.status, self._pending_status = self._pending_status, None
            self.pending = False
        elif line and not line.startswith(":"):
            self.pending = True
        return sse


class EventDecoder:
    """Text in, ``StatusEvent`` s out. Any line ending (LF, CRLF, CR), any split of the text."""

    def __init__(self) -> None:
        self._lines = SSELineDecoder()
        self._events = _StatusCommentDecoder()

    def feed(self, text: str) -> list[StatusEvent]:
        return self._decode_lines(self._lines.decode(text))

    def flush(self) -> list[StatusEvent]:
        # The stream ended: an unterminated last line, and an event missing only its blank
        # line, still count (the spec drops them; losing a final event to that is worse).
        events = self._decode_lines(self._lines.flush())
        if self._events.pending:
            events += self._decode_lines([""])
        return events

    def _decode_lines(self, lines: list[str]) -> list[StatusEvent]:
        out = []
        decoder = self._events
        for line in lines:
            sse = decoder.decode(line)
            if sse is not None:
                out.append(StatusEvent(sse, decoder.status))
        return out


def looks_like_event_stream(content_type: str, head: str) -> bool:
    """Parse by content: stream framing is recognised whatever the Content-Type says."""
    if "text/event-stream" in content_type:
        return True
    first = head.lstrip()[:6]
    return first.startswith(("data:", "event:", "id:", ":"))


# -- parsing -------------------------------------------------------------------------------------


def _int_or_none(value: object) -> int | None:
    # ``sample_rate`` is 48000 in JSON bodies and "48000" in the final stream event.
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _float_or_none(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _str_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def is_error_payload(obj: Mapping[str, Any]) -> bool:
    """``{"code", "message"}`` with no ``output``, or a gateway's ``{"error": {...}}``."""
    if "output" in obj:
        return False
    return isinstance(obj.get("error"), Mapping) or bool(obj.get("code"))


def scrub(error: APIError, key: str | None) -> APIError:
    """Remove the key from a message and the body (a server may echo it: "Invalid API-key
    sk-…"). Server text is redacted whole before it is cut to one line (``SongAssembler.error``),
    so a cut never leaves half a key that this could no longer recognise."""
    if key:
        clean = redact(error.message, key)
        if clean != error.message:
            error.message = clean
            error.args = (clean,)
        if error.body is not None:
            error.body = redact(error.body, key)
    return error


def _origin(url: str) -> str:
    """``https://host/path`` of a URL, without its query (signed URLs carry tokens there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# -- assembling a song ----------------------------------------------------------------------------


class SongAssembler:
    """Interprets one generation's answer, event by event, and builds the ``Song``.

    The audio goes into one ``io.BytesIO``: each base64 chunk is decoded once and copied once
    into it, and ``getvalue()`` hands the finished buffer over without a copy, so assembling a
    song costs the audio size plus at most 1/8 of slack.
    """

    def __init__(self, request: SongRequest, settings: Settings, *, started: float) -> None:
        self.request = request
        self._key = settings.api_key
        self.simulated = settings.backend == "simulator"
        self.started = started
        self.headers: Mapping[str, str] = {}
        self._audio = io.BytesIO()
        self.bytes_received = 0
        self.chunks = 0
        self.progress = AudioProgress()
        self.first_audio_at: float | None = None
        self.request_id: str | None = None
        self.audio_id: str | None = None
        self.final: Mapping[str, Any] | None = None  # the body or event that finished the song

    # -- state --

    @property
    def finished(self) -> bool:
        return self.final is not None

    @property
    def partial_audio(self) -> bytes:
        """Every audio byte so far (no copy unless more audio is added afterwards)."""
        return self._audio.getvalue()

    def on_response(self, status_code: int, headers: Mapping[str, str]) -> None:
        self.headers = headers
        if headers.get(SIMULATED_HEADER, "").strip().lower() == "true":
            self.simulated = True
        if self.request_id is None:
            self.request_id = headers.get("x-request-id")

    def reset(self) -> None:
        """Before a retry: nothing of a refused attempt is kept (it sent no audio)."""
        self.headers = {}
        self.request_id = None
        self.audio_id = None
        self.final = None

    # -- errors, all with the audio so far --

    def error(self, status: int | None, body: object) -> APIError:
        if isinstance(body, Mapping):
            body = json.dumps(body, ensure_ascii=False, default=str)
        if isinstance(body, str):
            body = redact(body, self._key)  # before any cutting: see ``scrub``
        err = error_from_response(status, body, self.headers, partial_audio=self.partial_audio)
        if err.request_id is None and self.request_id:
            err.request_id = self.request_id
        return scrub(err, self._key)

    def interrupted(self, reason: str) -> StreamInterruptedError:
        return StreamInterruptedError(
            redact(reason, self._key),
            request_id=self.request_id,
            partial_audio=self.partial_audio,
        )

    def ended_early(self) -> StreamInterruptedError:
        return self.interrupted(
            _(
                "the stream ended before its final event, after {chunks} audio chunk(s) "
                "and {count:,} bytes"
            ).format(chunks=self.chunks, count=self.bytes_received)
        )

    # -- input --

    def feed_event(self, event: StatusEvent) -> AudioChunk | None:
        """One stream event: an audio chunk, the final event (``finished``), or an error."""
        sse, status = event.sse, event.http_status
        data = sse.data
        if not data.strip():
            if sse.event.strip() == "error":
                message = _("the stream sent an error event with no data")
                raise self.error(status, {"message": message})
            return None
        try:
            obj = json.loads(data)
        except ValueError:
            raise self.interrupted(
                _("the stream sent a data line that is not JSON: {data}").format(data=quote(data))
            ) from None
        if not isinstance(obj, Mapping):
            raise self.interrupted(
                _("the stream sent a data line that is not an object: {data}").format(
                    data=quote(data)
                )
            )
        if sse.event.strip() == "error" or is_error_payload(obj):
            raise self.error(status if status is not None and status >= 400 else None, obj)
        return self.feed_result(obj)

    def feed_result(self, obj: Mapping[str, Any]) -> AudioChunk | None:
        """A result object: a stream event, or the whole non-streaming body."""
        self.request_id = _str_or_none(obj.get("request_id")) or self.request_id
        output = obj.get("output")
        if not isinstance(output, Mapping):
            raise self.interrupted(
                _("the answer has no 'output' object: {answer}").format(
                    answer=quote(json.dumps(obj))
                )
            )
        audio = output.get("audio")
        audio = audio if isinstance(audio, Mapping) else {}
        self.audio_id = _str_or_none(audio.get("id")) or self.audio_id
        chunk = None
        encoded = audio.get("data")
        if encoded:
            if not isinstance(encoded, str):
                raise self.interrupted(
                    _("audio.data is not a string: {value}").format(value=quote(encoded))
                )
            try:
                raw = binascii.a2b_base64(encoded)
            except (binascii.Error, ValueError):
                raise self.interrupted(
                    _("audio.data is not base64: {value}").format(value=quote(encoded))
                ) from None
            chunk = self.add_audio(raw)
        finish = output.get("finish_reason")
        # The stream says "null" (a string) until the end, then "stop".
        if finish not in (None, "", "null"):
            self.final = obj
        return chunk

    def add_audio(self, raw: bytes) -> AudioChunk:
        now = time.monotonic()
        if self.first_audio_at is None:
            self.first_audio_at = now
        self._audio.write(raw)
        self.bytes_received += len(raw)
        seconds = self.progress.feed(raw)
        chunk = AudioChunk(
            index=self.chunks,
            data=raw,
            bytes_so_far=self.bytes_received,
            seconds_so_far=seconds,
            elapsed=now - self.started,
        )
        self.chunks += 1
        return chunk

    # -- what the final answer says --

    @property
    def download_url(self) -> str | None:
        """The URL to download from: set when the answer finished without any audio in it."""
        if self.final is None or self.bytes_received:
            return None
        output = self.final.get("output") or {}
        audio = output.get("audio") if isinstance(output, Mapping) else None
        url = audio.get("url") if isinstance(audio, Mapping) else None
        if not url:
            raise self.interrupted(_("the answer has neither audio data nor an audio URL"))
        return str(url)

    def song(self, *, audio: bytes | None = None) -> Song:
        """The finished ``Song``. ``audio`` is the downloaded file, for non-streaming answers."""
        final = self.final or {}
        output = final.get("output") or {}
        audio_info = output.get("audio") or {}
        extra = output.get("extra_info") or {}
        usage = final.get("usage") or {}
        if audio is None:
            audio = self._audio.getvalue()
            progress = self.progress
        else:
            progress = AudioProgress()
            progress.feed(audio)
        self._audio = io.BytesIO()  # the Song owns the bytes now
        expires = _float_or_none(audio_info.get("expires_at"))
        lyrics = extra.get("lyrics")
        if not isinstance(lyrics, str):
            lyrics = self.request.text if self.request.mode == "lyrics" else ""
        duration = _float_or_none(usage.get("duration"))
        if duration is None:
            duration = round(progress.seconds or 0.0, 3)
        fmt = progress.kind if progress.kind in ("mp3", "wav") else self.request.format
        first = self.first_audio_at
        return Song(
            audio=audio,
            format=fmt,
            lyrics=lyrics,
            sample_rate=_int_or_none(extra.get("sample_rate")) or progress.sample_rate or 48000,
            channels=_int_or_none(extra.get("channels")) or progress.channels or 2,
            duration=duration,
            request_id=self.request_id,
            audio_id=self.audio_id,
            url=_str_or_none(audio_info.get("url")),
            expires_at=datetime.fromtimestamp(expires, timezone.utc) if expires else None,
            time_to_first_audio=None if first is None else first - self.started,
            total_time=time.monotonic() - self.started,
            request=self.request,
            simulated=self.simulated,
        )

    def feed_body(self, status: int, content: bytes) -> list[AudioChunk]:
        """A whole answer read at once: JSON, or stream framing (whatever its Content-Type).

        Returns the audio chunks it held (a stream-framed answer may carry audio inline).
        """
        chunks: list[AudioChunk] = []
        text = content.decode("utf-8", "replace")
        if status != 200:
            raise self.error(status, text)
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, Mapping):
            if is_error_payload(obj):
                raise self.error(None, obj)
            chunk = self.feed_result(obj)
            if not self.finished:
                output = obj.get("output")
                reason = output.get("finish_reason") if isinstance(output, Mapping) else None
                raise self.interrupted(
                    _("the answer is not finished (finish_reason {reason!r})").format(
                        reason=reason
                    )
                )
            return [chunk] if chunk else []
        if looks_like_event_stream("", text):
            decoder = EventDecoder()
            for event in [*decoder.feed(text), *decoder.flush()]:
                chunk = self.feed_event(event)
                if chunk:
                    chunks.append(chunk)
                if self.finished:
                    return chunks
            raise self.ended_early()
        raise self.interrupted(
            _("the answer is neither JSON nor an event stream: {text}").format(text=quote(text))
        )


class LimitedBody:
    """A whole response body read piece by piece, refusing more than ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, piece: bytes) -> bool:
        """Keep ``piece``; False once the limit is reached (stop reading: the rest is dropped)."""
        room = self.limit - self.size
        if len(piece) > room:
            piece, self.truncated = piece[:room], True
        self._parts.append(piece)
        self.size += len(piece)
        return not self.truncated

    @property
    def content(self) -> bytes:
        return b"".join(self._parts)


# -- downloading the audio -------------------------------------------------------------------------


def check_download_url(url: str, assembler: SongAssembler) -> str:
    """Only http(s) URLs are fetched.

    Anything else (``file:``, ``ftp:``) raises a plain ``APIError`` with code
    ``InvalidAudioURL``: the *service's* answer is unusable. It is not a ``ValidationError``
    (that means "your input was refused and nothing was billed", false here: the song exists
    and was billed), nor a status error (no HTTP status says this).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise scrub(APIError(
            _(
                "the audio URL must be http or https; got {url}. The song was generated but "
                "cannot be downloaded from there"
            ).format(url=quote(redact(url, assembler._key))),
            code="InvalidAudioURL",
            request_id=assembler.request_id,
        ), assembler._key)
    return url


class AudioDownload:
    """The finished audio, read from its URL with a size cap checked on every piece."""

    def __init__(self, url: str, *, max_bytes: int, assembler: SongAssembler) -> None:
        self.url = url
        self.max_bytes = max_bytes
        self._assembler = assembler
        self._buffer = io.BytesIO()
        self.size = 0

    def _scrub(self, error: APIError) -> APIError:
        return scrub(error, self._assembler._key)

    def on_response(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise self._scrub(APIError(
                _(
                    "downloading the audio from {origin} failed with HTTP {status} (the URL is "
                    "valid for 24 hours)"
                ).format(origin=_origin(self.url), status=response.status_code),
                status_code=response.status_code,
                code="DownloadFailed",
                request_id=self._assembler.request_id,
            ))
        declared = _int_or_none(response.headers.get("content-length"))
        if declared is not None and declared > self.max_bytes:
            raise self._too_large(declared)

    def add(self, piece: bytes) -> None:
        if self._assembler.first_audio_at is None:
            self._assembler.first_audio_at = time.monotonic()
        self.size += len(piece)
        if self.size > self.max_bytes:
            raise self._too_large(self.size)
        self._buffer.write(piece)

    def _too_large(self, size: int) -> APIError:
        return self._scrub(APIError(
            _(
                "the audio at {origin} is larger than max_download_bytes={limit:,} (got "
                "{count:,} bytes so far); raise max_download_bytes to accept it"
            ).format(origin=_origin(self.url), limit=self.max_bytes, count=size),
            code="DownloadTooLarge",
            request_id=self._assembler.request_id,
        ))

    def timed_out(self, seconds: float) -> APIError:
        return self._scrub(APITimeoutError(
            _(
                "downloading the audio from {origin} took longer than download_timeout="
                "{seconds:g} s ({count:,} bytes had arrived)"
            ).format(origin=_origin(self.url), seconds=seconds, count=self.size),
            request_id=self._assembler.request_id,
        ))

    def failed(self, exc: httpx.HTTPError) -> APIError:
        cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
        return self._scrub(cls(
            _("downloading the audio from {origin} failed: {type}: {error}").format(
                origin=_origin(self.url), type=type(exc).__name__, error=exc
            ),
            request_id=self._assembler.request_id,
        ))

    def audio(self) -> bytes:
        return self._buffer.getvalue()


# -- transport errors and retries ----------------------------------------------------------------


def transport_error(
    exc: httpx.HTTPError,
    *,
    assembler: SongAssembler,
    url: str,
    streaming: bool,
    responded: bool,
    timeout: float,
) -> APIError:
    """Map an httpx failure; ``responded`` says whether the response head had arrived."""
    host = urlsplit(url).netloc
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    partial = assembler.partial_audio
    rid = assembler.request_id
    err: APIError
    if isinstance(exc, httpx.ConnectTimeout):
        err = APITimeoutError(
            _("could not connect to {host} within connect_timeout={seconds:g} s").format(
                host=host, seconds=timeout
            ),
            request_id=rid,
        )
    elif isinstance(exc, httpx.ConnectError):
        err = APIConnectionError(
            _("could not connect to {host}: {detail}").format(host=host, detail=detail),
            request_id=rid,
        )
    elif isinstance(exc, httpx.TimeoutException):
        if streaming:
            what = _("no stream event for idle_timeout={seconds:g} s").format(seconds=timeout)
        else:
            what = _(
                "no answer within read_timeout={seconds:g} s; the song may still be generated "
                "and billed, so it was not retried"
            ).format(seconds=timeout)
        err = APITimeoutError(
            _("{what} ({count:,} bytes of audio had arrived)").format(
                what=what, count=assembler.bytes_received
            ),
            request_id=rid,
            partial_audio=partial,
        )
    elif responded:
        err = StreamInterruptedError(
            _(
                "the connection broke after {chunks} audio chunk(s) and {count:,} bytes: "
                "{detail}"
            ).format(chunks=assembler.chunks, count=assembler.bytes_received, detail=detail),
            request_id=rid,
            partial_audio=partial,
        )
    else:
        err = APIConnectionError(
            _("the request to {host} failed: {detail}").format(host=host, detail=detail),
            request_id=rid,
        )
    return scrub(err, assembler._key)


def default_backoff(attempt: int, max_retry_wait: float) -> float:
    """1 s, 2 s, 4 s … never more than ``max_retry_wait``."""
    return float(min(2.0**attempt, max_retry_wait))


def retry_wait(
    failure: BaseException,
    *,
    attempt: int,
    audio_received: int,
    max_retries: int,
    max_retry_wait: float,
) -> float | None:
    """Seconds to wait before retrying, or None: never retry what may have started generating.

    Retried: a connection that could not be made (the request was never sent), and a 429
    before any audio. A ``Retry-After`` longer than ``max_retry_wait`` is not waited out: the
    error is raised at once with its ``retry_after``, so the caller can decide.
    """
    if attempt >= max_retries or audio_received:
        return None
    if isinstance(failure, (httpx.ConnectError, httpx.ConnectTimeout)):
        return default_backoff(attempt, max_retry_wait)
    if isinstance(failure, RateLimitError):
        if failure.retry_after is None:
            return default_backoff(attempt, max_retry_wait)
        if failure.retry_after > max_retry_wait:
            return None
        return failure.retry_after
    return None
