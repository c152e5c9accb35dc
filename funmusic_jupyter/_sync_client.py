"""``FunMusicClient`` and ``SongStream``: the blocking client (``_client`` tells the whole
story: timeouts, retries, and the sans-IO ``_wire`` module both clients share)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import connect_sse

from ._client_core import _answer_too_large, _ClientCore, _ssl_context
from ._errors import APIError
from ._models import AudioChunk, Song, StreamEvent, StreamFinished
from ._validation import SongRequest
from ._wire import (
    USER_AGENT,
    AudioDownload,
    EventDecoder,
    LimitedBody,
    SongAssembler,
    StatusEvent,
    check_download_url,
)

__all__ = ["FunMusicClient", "SongStream"]


def _sleep(seconds: float) -> None:
    """Waits between retries (tests replace it to observe the waits)."""
    time.sleep(seconds)


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

