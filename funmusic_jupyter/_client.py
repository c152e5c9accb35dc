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

from ._async_client import AsyncFunMusicClient, AsyncSongStream
from ._sync_client import FunMusicClient, SongStream

__all__ = ["AsyncFunMusicClient", "AsyncSongStream", "FunMusicClient", "SongStream"]
