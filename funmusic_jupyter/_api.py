"""Module-level ``generate``, ``agenerate``, ``stream`` and ``astream``.

Each call resolves the settings (arguments, then the environment) and uses a default client
made for exactly those settings, created on first use and reused afterwards, so connections are
kept alive between songs. Changing ``DASHSCOPE_API_KEY`` (or passing another key, base URL,
endpoint or backend) selects another client.

Sync clients are shared by every thread and closed at exit. Async clients belong to one event
loop (their pooled connections cannot move to another), so there is one per loop; they are
dropped with their loop.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from ._client import AsyncFunMusicClient, AsyncSongStream, FunMusicClient, SongStream
from ._config import resolve_settings
from ._errors import FunMusicError
from ._models import Song

__all__ = ["agenerate", "astream", "generate", "stream"]

_SettingsKey = tuple[str, str | None, str | None, str]

_lock = threading.Lock()
_sync_clients: dict[_SettingsKey, FunMusicClient] = {}
_async_clients: weakref.WeakKeyDictionary[object, dict[_SettingsKey, AsyncFunMusicClient]] = (
    weakref.WeakKeyDictionary()
)


def _settings_key(
    api_key: str | None, base_url: str | None, endpoint: str | None, backend: str
) -> _SettingsKey:
    s = resolve_settings(api_key=api_key, base_url=base_url, endpoint=endpoint, backend=backend)
    return (s.backend, s.api_key, s.base_url, s.endpoint)


def _sync_client(
    api_key: str | None, base_url: str | None, endpoint: str | None, backend: str
) -> FunMusicClient:
    key = _settings_key(api_key, base_url, endpoint, backend)
    with _lock:
        client = _sync_clients.get(key)
        if client is None:
            client = FunMusicClient(
                api_key=api_key, base_url=base_url, endpoint=endpoint, backend=backend
            )
            _sync_clients[key] = client
        return client


def _current_loop() -> object:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    try:
        import trio  # type: ignore[import-not-found]  # anyio's only other backend

        token: object = trio.lowlevel.current_trio_token()
        return token
    except (ImportError, RuntimeError):
        # Neither loop is running (trio need not even be installed): say what to do instead of
        # surfacing a "No module named 'trio'" from this fallback.
        raise FunMusicError(
            "agenerate() and astream() need a running event loop: use them from async code "
            "(await fm.agenerate(...), async with fm.astream(...)), or call fm.generate / "
            "fm.stream; got no running loop"
        ) from None


def _async_client(
    api_key: str | None, base_url: str | None, endpoint: str | None, backend: str
) -> AsyncFunMusicClient:
    key = _settings_key(api_key, base_url, endpoint, backend)
    loop = _current_loop()
    with _lock:
        clients = _async_clients.setdefault(loop, {})
        client = clients.get(key)
        if client is None:
            client = AsyncFunMusicClient(
                api_key=api_key, base_url=base_url, endpoint=endpoint, backend=backend
            )
            clients[key] = client
        return client


async def aclose_default_clients() -> None:
    """Close the default async clients of the running event loop (tests, clean shutdowns)."""
    with _lock:
        clients = list(_async_clients.pop(_current_loop(), {}).values())
    for client in clients:
        await client.aclose()


@atexit.register
def close_default_clients() -> None:
    """Close every default sync client (registered to run at interpreter exit)."""
    with _lock:
        clients = list(_sync_clients.values())
        _sync_clients.clear()
    for client in clients:
        client.close()


def generate(
    *,
    prompt: str | None = None,
    lyrics: str | None = None,
    text: str | None = None,
    mode: str = "auto",
    gender: str = "female",
    format: str = "mp3",
    stream: bool = False,
    model: str = "fun-music-v1",
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
    **extra_input: Any,
) -> Song:
    """Make a song and return it (blocking). With no key configured: the offline simulator."""
    client = _sync_client(api_key, base_url, endpoint, backend)
    return client.generate(
        prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender, format=format,
        stream=stream, model=model, headers=headers, **extra_input,
    )


async def agenerate(
    *,
    prompt: str | None = None,
    lyrics: str | None = None,
    text: str | None = None,
    mode: str = "auto",
    gender: str = "female",
    format: str = "mp3",
    stream: bool = False,
    model: str = "fun-music-v1",
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
    **extra_input: Any,
) -> Song:
    """Make a song and return it (async)."""
    client = _async_client(api_key, base_url, endpoint, backend)
    return await client.generate(
        prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender, format=format,
        stream=stream, model=model, headers=headers, **extra_input,
    )


def stream(
    *,
    prompt: str | None = None,
    lyrics: str | None = None,
    text: str | None = None,
    mode: str = "auto",
    gender: str = "female",
    format: str = "mp3",
    model: str = "fun-music-v1",
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
    **extra_input: Any,
) -> SongStream:
    """A ``SongStream`` (``with`` it, iterate it): audio chunks as they arrive, then the song."""
    client = _sync_client(api_key, base_url, endpoint, backend)
    return client.stream(
        prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender, format=format,
        model=model, headers=headers, **extra_input,
    )


def astream(
    *,
    prompt: str | None = None,
    lyrics: str | None = None,
    text: str | None = None,
    mode: str = "auto",
    gender: str = "female",
    format: str = "mp3",
    model: str = "fun-music-v1",
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
    **extra_input: Any,
) -> AsyncSongStream:
    """An ``AsyncSongStream`` (``async with``, ``async for``). Call it inside the event loop."""
    client = _async_client(api_key, base_url, endpoint, backend)
    return client.stream(
        prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender, format=format,
        model=model, headers=headers, **extra_input,
    )
