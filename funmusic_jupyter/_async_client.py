"""``AsyncFunMusicClient`` and ``AsyncSongStream``: the async twin of ``_sync_client``
(``_client`` tells of timeouts, retries and the shared sans-IO ``_wire`` module)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Any

import anyio
import anyio.to_thread
import httpx
from httpx_sse import aconnect_sse

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

__all__ = ["AsyncFunMusicClient", "AsyncSongStream"]


async def _asleep(seconds: float) -> None:
    await anyio.sleep(seconds)


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

