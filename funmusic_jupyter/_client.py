"""The Fun-Music clients: ``AsyncFunMusicClient`` and its sync twin ``FunMusicClient``.

Each holds one ``httpx`` client (so connections are reused) and only moves bytes: building
requests, reading events, assembling the song and mapping errors all live in the sans-IO
``_wire`` module, which both clients share.

    with FunMusicClient() as client:
        song = client.generate(prompt="Melancholic piano, rainy night yearning")
        with client.stream(prompt="…") as stream:
            for event in stream:          # AudioChunk …, then StreamFinished
                ...
        stream.song

Timeouts: ``connect_timeout`` to open a connection; ``read_timeout`` for the non-streaming
answer (the service composes the whole song first); ``idle_timeout`` between two stream events,
so a stalled stream fails in bounded time; ``download_timeout`` for fetching the finished file.

Retries happen only where generation provably did not start (see ``_wire.retry_wait``): a
connection that could not be opened, and a 429 before any audio. Never after a 5xx, a timeout
once the request was sent, or any audio: each of those may already be billed.
"""

from __future__ import annotations

import functools
import math
import os
import ssl
import sys
import threading
import time
import warnings
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread
import httpx
from httpx_sse import aconnect_sse, connect_sse

from ._config import Settings, resolve_settings
from ._errors import APIError, ConfigurationError, FunMusicWarning, ValidationError, quote
from ._i18n import N_, _
from ._models import AudioChunk, Song, StreamEvent, StreamFinished
from ._validation import SongRequest, build_request
from ._wire import (
    MAX_ERROR_BODY,
    USER_AGENT,
    AudioDownload,
    EventDecoder,
    LimitedBody,
    SongAssembler,
    StatusEvent,
    check_download_url,
    generation_headers,
    generation_url,
    retry_wait,
    transport_error,
)

__all__ = ["AsyncFunMusicClient", "AsyncSongStream", "FunMusicClient", "SongStream"]

_PACKAGE = __name__.rpartition(".")[0] + "."


@functools.lru_cache(maxsize=4)
def _ssl_context_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads the same two variables, as httpx's default does


def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every client: building one loads the CA bundle (about 0.25 s), which
    a script making one client per ``asyncio.run`` (the per-loop default clients) paid per song.
    Keyed on the variables httpx consults, so the trust settings stay exactly httpx's."""
    return _ssl_context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


def _sleep(seconds: float) -> None:
    """Waits between retries (tests replace it to observe the waits)."""
    time.sleep(seconds)


async def _asleep(seconds: float) -> None:
    await anyio.sleep(seconds)


class _ClientCore:
    """What the two clients share: settings, limits, request building, the lazy base URL."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        endpoint: str | None,
        backend: str,
        connect_timeout: float,
        read_timeout: float,
        idle_timeout: float,
        download_timeout: float,
        max_download_bytes: int,
        max_retries: int,
        max_retry_wait: float,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.settings: Settings = resolve_settings(
            api_key=api_key, base_url=base_url, endpoint=endpoint, backend=backend
        )
        # Checked here, in one line, rather than as httpx's "Timeout value out of range" (or a
        # silent oddity) once a request is under way.
        for name, value in (
            ("connect_timeout", connect_timeout), ("read_timeout", read_timeout),
            ("idle_timeout", idle_timeout), ("download_timeout", download_timeout),
        ):
            _check_number(name, value, N_("a number of seconds > 0"), positive=True)
        _check_number("max_retry_wait", max_retry_wait, N_("a number of seconds >= 0"))
        _check_number("max_retries", max_retries, N_("a whole number >= 0"), integer=True)
        _check_number("max_download_bytes", max_download_bytes, N_("a whole number > 0"),
                      integer=True, positive=True)
        headers = _check_headers(headers, ConfigurationError)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.download_timeout = download_timeout
        self.max_download_bytes = max_download_bytes
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._headers = dict(headers or {})
        self._base_url = self.settings.base_url
        self._base_url_lock = threading.Lock()

    def __repr__(self) -> str:
        # Settings' repr masks the key.
        return f"{type(self).__name__}(settings={self.settings!r})"

    def _timeout(self, read: float) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout, read=read, write=read, pool=self.connect_timeout
        )

    def _resolve_url(self) -> str:
        if self._base_url is None:
            with self._base_url_lock:
                if self._base_url is None:
                    # Imported here: the simulator (uvicorn, synthesis) is only loaded when used.
                    from .simulator import start_embedded

                    self._base_url = start_embedded()
        return generation_url(self._base_url, self.settings.endpoint)

    def _headers_for(
        self, request: SongRequest, call_headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        call_headers = _check_headers(call_headers, ValidationError)
        return generation_headers(
            self.settings,
            stream=request.stream,
            client_headers=self._headers,
            call_headers=call_headers,
        )

    def _body_limit(self, status_code: int) -> int:
        # A 200 answer read whole may be a stream-framed song (base64: 4/3 of the audio).
        return 2 * self.max_download_bytes if status_code == 200 else MAX_ERROR_BODY

    def _failure(
        self,
        exc: httpx.HTTPError,
        assembler: SongAssembler,
        url: str,
        *,
        streaming: bool,
        responded: bool,
    ) -> APIError:
        """The ``APIError`` for a transport failure, naming the limit that was reached."""
        if isinstance(exc, httpx.ConnectTimeout):
            limit = self.connect_timeout
        else:
            limit = self.idle_timeout if streaming else self.read_timeout
        return transport_error(
            exc, assembler=assembler, url=url, streaming=streaming, responded=responded,
            timeout=limit,
        )

    def _assembler(self, request: SongRequest) -> SongAssembler:
        return SongAssembler(request, self.settings, started=time.monotonic())

    def _retry_wait(
        self, failure: BaseException, attempt: int, assembler: SongAssembler
    ) -> float | None:
        return retry_wait(
            failure,
            attempt=attempt,
            audio_received=assembler.bytes_received,
            max_retries=self.max_retries,
            max_retry_wait=self.max_retry_wait,
        )

    @staticmethod
    def _build(stream: bool, kwargs: dict[str, Any]) -> SongRequest:
        request = build_request(stream=stream, **kwargs)
        for message in request.warnings:
            warnings.warn(message, FunMusicWarning, stacklevel=_caller_stacklevel())
        return request


def _check_number(
    name: str, value: object, expected: str, *, integer: bool = False, positive: bool = False
) -> None:
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if ok:
        number = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(number) and (number > 0 if positive else number >= 0)
    if not ok:
        raise ConfigurationError(
            _("{name} must be {expected}; got {value}").format(
                name=name, expected=_(expected), value=quote(value)
            )
        )


def _check_headers(
    headers: Mapping[str, str] | None, error: type[ConfigurationError | ValidationError]
) -> Mapping[str, str] | None:
    if headers is None:
        return None
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        got = type(headers).__name__ if not isinstance(headers, Mapping) else N_("other values")
        raise error(
            _("headers must be a mapping of header names to strings; got {got}").format(
                got=_(got) if got == "other values" else got
            )
        )
    # Checked as they will be sent: httpx encodes header values as ASCII (anything else is a
    # raw UnicodeEncodeError), and a line break would end the header in the middle.
    for name, value in headers.items():
        if not (name + value).isascii() or any(c in name + value for c in "\r\n\0"):
            raise error(
                _("header {name} must be ASCII text on one line; got {value}").format(
                    name=quote(name), value=quote(value)
                )
            )
    return headers


def _caller_stacklevel() -> int:
    """The stacklevel of the first frame outside this package (for ``warnings.warn``).

    Pointing at the user's line, whether they called a client or the module-level API, also
    keeps Python's once-per-location warning filter from hiding later warnings.
    """
    frame = sys._getframe(1)  # the function calling warnings.warn
    level = 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level


def _answer_too_large(assembler: SongAssembler, body: LimitedBody) -> APIError:
    return assembler.interrupted(
        _("the answer is larger than {limit:,} bytes; refused").format(limit=body.limit)
    )


# ===================================================================== sync


class FunMusicClient(_ClientCore):
    """Blocking client over one ``httpx.Client``. Use it in a ``with`` block or ``close()`` it."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        endpoint: str | None = None,
        backend: str = "auto",
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
        idle_timeout: float = 60.0,
        download_timeout: float = 120.0,
        max_download_bytes: int = 256 * 2**20,
        max_retries: int = 2,
        max_retry_wait: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key, base_url=base_url, endpoint=endpoint, backend=backend,
            connect_timeout=connect_timeout, read_timeout=read_timeout,
            idle_timeout=idle_timeout, download_timeout=download_timeout,
            max_download_bytes=max_download_bytes, max_retries=max_retries,
            max_retry_wait=max_retry_wait, headers=headers,
        )
        # No Authorization here: the key goes only on generation requests, never to the
        # (third-party) host the audio is downloaded from.
        self._http = httpx.Client(
            transport=transport,
            verify=_ssl_context(),
            timeout=self._timeout(read_timeout),
            headers={"User-Agent": USER_AGENT},
        )

    # -- lifecycle --

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FunMusicClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public API --

    def generate(
        self,
        *,
        prompt: str | None = None,
        lyrics: str | None = None,
        text: str | None = None,
        mode: str = "auto",
        gender: str | None = None,
        format: str = "mp3",
        stream: bool = False,
        model: str = "fun-music-v1",
        headers: Mapping[str, str] | None = None,
        **extra_input: Any,
    ) -> Song:
        """Validate, generate and return the finished ``Song`` (streamed or downloaded)."""
        request = self._build(stream, dict(
            prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender,
            format=format, model=model, **extra_input,
        ))
        return self.generate_request(request, headers=headers)

    def stream(
        self,
        *,
        prompt: str | None = None,
        lyrics: str | None = None,
        text: str | None = None,
        mode: str = "auto",
        gender: str | None = None,
        format: str = "mp3",
        model: str = "fun-music-v1",
        headers: Mapping[str, str] | None = None,
        **extra_input: Any,
    ) -> SongStream:
        """A ``SongStream``: iterate it for ``AudioChunk`` s, then ``StreamFinished``."""
        request = self._build(True, dict(
            prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender,
            format=format, model=model, **extra_input,
        ))
        return self.stream_request(request, headers=headers)

    def generate_request(
        self, request: SongRequest, *, headers: Mapping[str, str] | None = None
    ) -> Song:
        """Generate a pre-validated request (emits no warnings)."""
        if request.stream:
            with self.stream_request(request, headers=headers) as song_stream:
                for _event in song_stream:
                    pass
            assert song_stream.song is not None  # iteration ends only after StreamFinished
            return song_stream.song
        return self._generate(request, headers)

    def stream_request(
        self, request: SongRequest, *, headers: Mapping[str, str] | None = None
    ) -> SongStream:
        if not request.stream:
            raise ValueError("stream_request needs a request built with stream=True")
        return SongStream(self, request, headers)

    # -- I/O --

    def _generate(self, request: SongRequest, call_headers: Mapping[str, str] | None) -> Song:
        assembler = self._assembler(request)
        url = self._resolve_url()
        headers = self._headers_for(request, call_headers)
        attempt = 0
        while True:
            responded = False
            try:
                with self._http.stream(
                    "POST", url, content=request.body(), headers=headers,
                    timeout=self._timeout(self.read_timeout),
                ) as response:
                    responded = True
                    assembler.on_response(response.status_code, response.headers)
                    limit = self._body_limit(response.status_code)
                    body = self._read(response, limit)
                    if body.truncated and response.status_code == 200:
                        raise _answer_too_large(assembler, body)
                    assembler.feed_body(response.status_code, body.content)
                break
            except httpx.HTTPError as exc:
                wait = self._retry_wait(exc, attempt, assembler)
                if wait is None:
                    raise self._failure(
                        exc, assembler, url, streaming=False, responded=responded
                    ) from exc
            except APIError as err:
                wait = self._retry_wait(err, attempt, assembler)
                if wait is None:
                    raise
            _sleep(wait)
            attempt += 1
            assembler.reset()
        download = assembler.download_url
        audio = self._download(download, assembler) if download else None
        return assembler.song(audio=audio)

    @staticmethod
    def _read(response: httpx.Response, limit: int) -> LimitedBody:
        body = LimitedBody(limit)
        for piece in response.iter_bytes():
            if not body.add(piece):
                break
        return body

    def _download(self, url: str, assembler: SongAssembler) -> bytes:
        # The URL expires in 24 hours: fetch the audio now, so the Song never depends on it.
        download = AudioDownload(
            check_download_url(url, assembler), max_bytes=self.max_download_bytes,
            assembler=assembler,
        )
        deadline = time.monotonic() + self.download_timeout
        try:
            with self._http.stream(
                "GET", url, follow_redirects=True, timeout=self._timeout(self.download_timeout)
            ) as response:
                download.on_response(response)
                for piece in response.iter_bytes():
                    download.add(piece)
                    if time.monotonic() > deadline:
                        raise download.timed_out(self.download_timeout)
        except httpx.HTTPError as exc:
            raise download.failed(exc) from exc
        return download.audio()


class SongStream:
    """One streamed song: a context manager and an iterator of ``AudioChunk`` then
    ``StreamFinished``. Afterwards ``song`` is the ``Song``; ``partial_audio`` always holds
    every byte received, also after an error. Leaving the ``with`` block closes the response.
    """

    def __init__(
        self, client: FunMusicClient, request: SongRequest, headers: Mapping[str, str] | None
    ) -> None:
        self._client = client
        self.request = request
        self._call_headers = headers
        self.song: Song | None = None
        # Called with the song once it is complete (fm.stream counts it in the session's
        # spending); never for a stream that failed or was left early.
        self.on_song: Callable[[Song], None] | None = None
        self._assembler = client._assembler(request)
        self._events: Generator[StreamEvent, None, None] | None = None

    @property
    def partial_audio(self) -> bytes:
        if self.song is not None:
            return self.song.audio
        return self._assembler.partial_audio

    @property
    def bytes_received(self) -> int:
        return self._assembler.bytes_received

    @property
    def request_id(self) -> str | None:
        """The request id once the server sent one (also after an error or a cancellation)."""
        return self._assembler.request_id

    def __repr__(self) -> str:
        state = "finished" if self.song is not None else "open"
        return (
            f"<SongStream {self.request.mode} {self.request.format} {state}, "
            f"{self._assembler.bytes_received:,} bytes>"
        )

    def __enter__(self) -> SongStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._events is not None:
            self._events.close()

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        if self._events is None:
            self._events = self._run()
        return next(self._events)

    def _run(self) -> Generator[StreamEvent, None, None]:
        client, assembler = self._client, self._assembler
        assembler.started = time.monotonic()
        url = client._resolve_url()
        headers = client._headers_for(self.request, self._call_headers)
        attempt = 0
        while True:
            responded = False
            try:
                # The read timeout of a stream is the idle timeout: it bounds every wait for data.
                with connect_sse(
                    client._http, "POST", url, content=self.request.body(),
                    headers=dict(headers), timeout=client._timeout(client.idle_timeout),
                ) as source:
                    response = source.response
                    responded = True
                    yield from self._read_response(response)
                break
            except httpx.HTTPError as exc:
                wait = client._retry_wait(exc, attempt, assembler)
                if wait is None:
                    raise client._failure(
                        exc, assembler, url, streaming=True, responded=responded
                    ) from exc
            except APIError as err:
                wait = client._retry_wait(err, attempt, assembler)
                if wait is None:
                    raise
            _sleep(wait)
            attempt += 1
            assembler.reset()
        download = assembler.download_url
        audio = client._download(download, assembler) if download else None
        self.song = assembler.song(audio=audio)
        if self.on_song is not None:
            self.on_song(self.song)
        yield StreamFinished(self.song)

    def _read_response(self, response: httpx.Response) -> Iterator[AudioChunk]:
        assembler = self._assembler
        assembler.on_response(response.status_code, response.headers)
        content_type = response.headers.get("content-type", "")
        if response.status_code != 200 or "text/event-stream" not in content_type:
            # An error, or an answer not labelled as a stream: read it whole, parse by content.
            body = FunMusicClient._read(response, self._client._body_limit(response.status_code))
            if body.truncated and response.status_code == 200:
                raise _answer_too_large(assembler, body)
            yield from assembler.feed_body(response.status_code, body.content)
            return
        for event in _iter_events(response, self._client.idle_timeout):
            chunk = assembler.feed_event(event)
            if chunk is not None:
                yield chunk
            if assembler.finished:
                return  # the final event: stop reading, whatever the server does next
        raise assembler.ended_early()


def _iter_events(response: httpx.Response, idle: float) -> Iterator[StatusEvent]:
    """The events of a response, with ``idle`` seconds at most between two of them.

    The socket's read timeout (also ``idle``) only bounds each read: a server trickling
    keep-alive comments (``:``) would pass every read and hold the stream forever. So the time
    since the last event (or the response head) is checked whenever bytes arrive; the wait
    ends within one read of the limit. The consumer's own time between events is not counted,
    as in the async client.
    """
    decoder = EventDecoder()
    deadline = time.monotonic() + idle
    for text in response.iter_text():
        events = decoder.feed(text)
        if events:
            yield from events
            deadline = time.monotonic() + idle
        elif time.monotonic() > deadline:
            raise httpx.ReadTimeout(f"no event for {idle:g} s")
    yield from decoder.flush()


# ===================================================================== async


class AsyncFunMusicClient(_ClientCore):
    """Async client over one ``httpx.AsyncClient``. Use ``async with`` or ``await aclose()``."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        endpoint: str | None = None,
        backend: str = "auto",
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
        idle_timeout: float = 60.0,
        download_timeout: float = 120.0,
        max_download_bytes: int = 256 * 2**20,
        max_retries: int = 2,
        max_retry_wait: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key, base_url=base_url, endpoint=endpoint, backend=backend,
            connect_timeout=connect_timeout, read_timeout=read_timeout,
            idle_timeout=idle_timeout, download_timeout=download_timeout,
            max_download_bytes=max_download_bytes, max_retries=max_retries,
            max_retry_wait=max_retry_wait, headers=headers,
        )
        self._http = httpx.AsyncClient(
            transport=transport,
            verify=_ssl_context(),
            timeout=self._timeout(read_timeout),
            headers={"User-Agent": USER_AGENT},
        )

    # -- lifecycle --

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncFunMusicClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- public API --

    async def generate(
        self,
        *,
        prompt: str | None = None,
        lyrics: str | None = None,
        text: str | None = None,
        mode: str = "auto",
        gender: str | None = None,
        format: str = "mp3",
        stream: bool = False,
        model: str = "fun-music-v1",
        headers: Mapping[str, str] | None = None,
        **extra_input: Any,
    ) -> Song:
        """Validate, generate and return the finished ``Song`` (streamed or downloaded)."""
        request = self._build(stream, dict(
            prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender,
            format=format, model=model, **extra_input,
        ))
        return await self.generate_request(request, headers=headers)

    def stream(
        self,
        *,
        prompt: str | None = None,
        lyrics: str | None = None,
        text: str | None = None,
        mode: str = "auto",
        gender: str | None = None,
        format: str = "mp3",
        model: str = "fun-music-v1",
        headers: Mapping[str, str] | None = None,
        **extra_input: Any,
    ) -> AsyncSongStream:
        """An ``AsyncSongStream``: ``async for`` it, ``AudioChunk`` s then ``StreamFinished``."""
        request = self._build(True, dict(
            prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender,
            format=format, model=model, **extra_input,
        ))
        return self.stream_request(request, headers=headers)

    async def generate_request(
        self, request: SongRequest, *, headers: Mapping[str, str] | None = None
    ) -> Song:
        """Generate a pre-validated request (emits no warnings)."""
        if request.stream:
            async with self.stream_request(request, headers=headers) as song_stream:
                async for _event in song_stream:
                    pass
            assert song_stream.song is not None  # iteration ends only after StreamFinished
            return song_stream.song
        return await self._generate(request, headers)

    def stream_request(
        self, request: SongRequest, *, headers: Mapping[str, str] | None = None
    ) -> AsyncSongStream:
        if not request.stream:
            raise ValueError("stream_request needs a request built with stream=True")
        return AsyncSongStream(self, request, headers)

    # -- I/O --

    async def _resolve_url_async(self) -> str:
        if self._base_url is None:
            # Starting the embedded simulator blocks briefly: not on the event loop.
            return await anyio.to_thread.run_sync(self._resolve_url)
        return self._resolve_url()

    async def _generate(self, request: SongRequest, call_headers: Mapping[str, str] | None) -> Song:
        assembler = self._assembler(request)
        url = await self._resolve_url_async()
        headers = self._headers_for(request, call_headers)
        attempt = 0
        while True:
            responded = False
            try:
                async with self._http.stream(
                    "POST", url, content=request.body(), headers=headers,
                    timeout=self._timeout(self.read_timeout),
                ) as response:
                    responded = True
                    assembler.on_response(response.status_code, response.headers)
                    limit = self._body_limit(response.status_code)
                    body = await self._read(response, limit)
                    if body.truncated and response.status_code == 200:
                        raise _answer_too_large(assembler, body)
                    assembler.feed_body(response.status_code, body.content)
                break
            except httpx.HTTPError as exc:
                wait = self._retry_wait(exc, attempt, assembler)
                if wait is None:
                    raise self._failure(
                        exc, assembler, url, streaming=False, responded=responded
                    ) from exc
            except APIError as err:
                wait = self._retry_wait(err, attempt, assembler)
                if wait is None:
                    raise
            await _asleep(wait)
            attempt += 1
            assembler.reset()
        download = assembler.download_url
        audio = await self._download(download, assembler) if download else None
        return assembler.song(audio=audio)

    @staticmethod
    async def _read(response: httpx.Response, limit: int) -> LimitedBody:
        body = LimitedBody(limit)
        async for piece in response.aiter_bytes():
            if not body.add(piece):
                break
        return body

    async def _download(self, url: str, assembler: SongAssembler) -> bytes:
        # The URL expires in 24 hours: fetch the audio now, so the Song never depends on it.
        download = AudioDownload(
            check_download_url(url, assembler), max_bytes=self.max_download_bytes,
            assembler=assembler,
        )
        try:
            with anyio.fail_after(self.download_timeout):
                async with self._http.stream(
                    "GET", url, follow_redirects=True,
                    timeout=self._timeout(self.download_timeout),
                ) as response:
                    download.on_response(response)
                    async for piece in response.aiter_bytes():
                        download.add(piece)
        except TimeoutError:
            raise download.timed_out(self.download_timeout) from None
        except httpx.HTTPError as exc:
            raise download.failed(exc) from exc
        return download.audio()


class AsyncSongStream:
    """One streamed song: an async context manager and an async iterator of ``AudioChunk``
    then ``StreamFinished``. Afterwards ``song`` is the ``Song``; ``partial_audio`` always holds
    every byte received, also after an error or a cancellation.
    """

    def __init__(
        self,
        client: AsyncFunMusicClient,
        request: SongRequest,
        headers: Mapping[str, str] | None,
    ) -> None:
        self._client = client
        self.request = request
        self._call_headers = headers
        self.song: Song | None = None
        # Called with the song once it is complete (fm.stream counts it in the session's
        # spending); never for a stream that failed or was left early.
        self.on_song: Callable[[Song], None] | None = None
        self._assembler = client._assembler(request)
        self._events: AsyncGenerator[StreamEvent, None] | None = None  # made on first use

    @property
    def partial_audio(self) -> bytes:
        if self.song is not None:
            return self.song.audio
        return self._assembler.partial_audio

    @property
    def bytes_received(self) -> int:
        return self._assembler.bytes_received

    @property
    def request_id(self) -> str | None:
        """The request id once the server sent one (also after an error or a cancellation)."""
        return self._assembler.request_id

    def __repr__(self) -> str:
        state = "finished" if self.song is not None else "open"
        return (
            f"<AsyncSongStream {self.request.mode} {self.request.format} {state}, "
            f"{self._assembler.bytes_received:,} bytes>"
        )

    async def __aenter__(self) -> AsyncSongStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()

    def __aiter__(self) -> AsyncSongStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._events is None:
            self._events = self._run()
        event: StreamEvent = await self._events.__anext__()
        return event

    async def _run(self) -> AsyncGenerator[StreamEvent, None]:
        client, assembler = self._client, self._assembler
        assembler.started = time.monotonic()
        url = await client._resolve_url_async()
        headers = client._headers_for(self.request, self._call_headers)
        attempt = 0
        while True:
            responded = False
            try:
                async with aconnect_sse(
                    client._http, "POST", url, content=self.request.body(),
                    headers=dict(headers), timeout=client._timeout(client.idle_timeout),
                ) as source:
                    responded = True
                    # aclosing: if this stream is closed mid-way, the reader is closed at once.
                    async with aclosing(self._read_response(source.response)) as chunks:
                        async for chunk in chunks:
                            yield chunk
                break
            except httpx.HTTPError as exc:
                wait = client._retry_wait(exc, attempt, assembler)
                if wait is None:
                    raise client._failure(
                        exc, assembler, url, streaming=True, responded=responded
                    ) from exc
            except APIError as err:
                wait = client._retry_wait(err, attempt, assembler)
                if wait is None:
                    raise
            await _asleep(wait)
            attempt += 1
            assembler.reset()
        download = assembler.download_url
        audio = await client._download(download, assembler) if download else None
        self.song = assembler.song(audio=audio)
        if self.on_song is not None:
            self.on_song(self.song)
        yield StreamFinished(self.song)

    async def _read_response(
        self, response: httpx.Response
    ) -> AsyncGenerator[AudioChunk, None]:
        assembler = self._assembler
        assembler.on_response(response.status_code, response.headers)
        content_type = response.headers.get("content-type", "")
        if response.status_code != 200 or "text/event-stream" not in content_type:
            limit = self._client._body_limit(response.status_code)
            body = await AsyncFunMusicClient._read(response, limit)
            if body.truncated and response.status_code == 200:
                raise _answer_too_large(assembler, body)
            for whole_chunk in assembler.feed_body(response.status_code, body.content):
                yield whole_chunk
            return
        idle = self._client.idle_timeout
        events = _aiter_events(response)
        try:
            while True:
                # The idle timeout bounds each wait for the next event, however the bytes trickle.
                try:
                    with anyio.fail_after(idle):
                        event = await events.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise httpx.ReadTimeout(f"no event for {idle:g} s") from None
                chunk = assembler.feed_event(event)
                if chunk is not None:
                    yield chunk
                if assembler.finished:
                    return
        finally:
            await events.aclose()
        raise assembler.ended_early()


async def _aiter_events(response: httpx.Response) -> AsyncGenerator[StatusEvent, None]:
    decoder = EventDecoder()
    async for text in response.aiter_text():
        for event in decoder.feed(text):
            yield event
    for event in decoder.flush():
        yield event

