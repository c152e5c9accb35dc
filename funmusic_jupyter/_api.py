"""Module-level ``generate``, ``agenerate``, ``stream`` and ``astream``.

Each call resolves the settings (arguments, then the environment) and uses a default client
made for exactly those settings, created on first use and reused afterwards, so connections are
kept alive between songs. Changing ``DASHSCOPE_API_KEY`` (or passing another key, base URL,
endpoint or backend) selects another client.

Sync clients are shared by every thread and closed at exit. Async clients belong to one event
loop (their pooled connections cannot move to another), so there is one per loop, and nothing
of it may outlive the loop: a script calling ``asyncio.run(fm.agenerate(...))`` in a loop must
not keep one socket (and one dead loop) per call.

A weak reference to the loop is not enough for that: the client's pooled connections hold the
loop strongly, so the cache entry would keep the loop alive forever. Instead each loop's entry
owns a small *guard* async generator, started in that loop. Event loops close every live async
generator as they shut down (``asyncio.run`` and ``asyncio.Runner`` call
``loop.shutdown_asyncgens()``; trio does the same at the end of ``trio.run``), so the guard's
``finally`` runs inside the loop, while it still runs, closes the loop's clients and removes the
entry. A loop closed without that step (a bare ``loop.close()``) is pruned on the next call.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._client import AsyncFunMusicClient, AsyncSongStream, FunMusicClient, SongStream
from ._config import resolve_settings
from ._errors import FunMusicError
from ._i18n import _
from ._library import find_reusable, song_key
from ._models import Song
from ._spending import check_budget, record
from ._storage import save_song
from ._validation import SongRequest

__all__ = ["agenerate", "astream", "generate", "stream"]

_SettingsKey = tuple[str, str | None, str | None, str]
_StreamT = TypeVar("_StreamT", SongStream, AsyncSongStream)

_lock = threading.Lock()
_sync_clients: dict[_SettingsKey, FunMusicClient] = {}


@dataclass
class _LoopClients:
    """One event loop's default async clients, and the guard that closes them with the loop."""

    clients: dict[_SettingsKey, AsyncFunMusicClient] = field(default_factory=dict)
    guard: AsyncGenerator[None, None] | None = None


_async_clients: dict[object, _LoopClients] = {}


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
            _(
                "agenerate() and astream() need a running event loop: use them from async code "
                "(await fm.agenerate(...), async with fm.astream(...)), or call fm.generate / "
                "fm.stream; got no running loop"
            )
        ) from None


async def _close_with_loop(loop: object, entry: _LoopClients) -> AsyncGenerator[None, None]:
    """The guard: suspended for the loop's whole life, it runs its ``finally`` at shutdown."""
    try:
        yield
    finally:
        with _lock:
            if _async_clients.get(loop) is entry:
                del _async_clients[loop]
            clients = list(entry.clients.values())
            entry.clients.clear()
        for client in clients:
            await client.aclose()


def _start_guard(loop: object, entry: _LoopClients) -> AsyncGenerator[None, None]:
    guard = _close_with_loop(loop, entry)
    # The first __anext__ registers the generator with the running loop (its firstiter hook)
    # and, since nothing before the yield awaits, runs it to the yield at once: driven here by
    # hand, because this is a plain function (``astream`` is not async).
    step = guard.__anext__()
    try:
        step.send(None)
    except StopIteration:
        pass
    return guard


def _prune_closed_loops() -> list[AsyncGenerator[None, None]]:
    """Forget loops closed without shutting down their async generators (caller holds _lock).

    Returns their guards, for the caller to finish once it released the lock.
    """
    guards = []
    for loop in [lp for lp in _async_clients if getattr(lp, "is_closed", lambda: False)()]:
        entry = _async_clients.pop(loop)
        # Too late to close the connections politely: drop them (they are collected).
        entry.clients.clear()
        if entry.guard is not None:
            guards.append(entry.guard)
    return guards


def _finish(guards: list[AsyncGenerator[None, None]]) -> None:
    # A guard with no clients left awaits nothing in its finally, so it can be finished here,
    # synchronously; otherwise collecting it later would ask its closed loop to finalize it.
    for guard in guards:
        try:
            guard.aclose().send(None)
        except StopIteration:
            pass


def _async_client(
    api_key: str | None, base_url: str | None, endpoint: str | None, backend: str
) -> AsyncFunMusicClient:
    key = _settings_key(api_key, base_url, endpoint, backend)
    loop = _current_loop()
    stale: list[AsyncGenerator[None, None]] = []
    with _lock:
        entry = _async_clients.get(loop)
        if entry is None:
            stale = _prune_closed_loops()
            entry = _async_clients[loop] = _LoopClients()
            entry.guard = _start_guard(loop, entry)
        client = entry.clients.get(key)
        if client is None:
            client = AsyncFunMusicClient(
                api_key=api_key, base_url=base_url, endpoint=endpoint, backend=backend
            )
            entry.clients[key] = client
    _finish(stale)
    return client


async def aclose_default_clients() -> None:
    """Close the default async clients of the running event loop (tests, clean shutdowns)."""
    with _lock:
        entry = _async_clients.get(_current_loop())
    if entry is not None and entry.guard is not None:
        await entry.guard.aclose()  # runs its finally: closes the clients, drops the entry


@atexit.register
def close_default_clients() -> None:
    """Close every default sync client (registered to run at interpreter exit)."""
    with _lock:
        clients = list(_sync_clients.values())
        _sync_clients.clear()
    for client in clients:
        client.close()


def _ahead(
    client: FunMusicClient | AsyncFunMusicClient,
    stream: bool,
    fields: dict[str, Any],
    *,
    reuse: bool,
    output_dir: str | os.PathLike[str] | None,
    budget: float | None,
) -> tuple[SongRequest, Song | None]:
    """What every call checks before sending: the request, then reuse, then the budget.
    Returns the request and, when ``reuse`` found one, the song already on disk."""
    request = client._build(stream, fields)
    if reuse:
        found = find_reusable(request, client.settings, output_dir)
        if found is not None:
            return request, found
    check_budget(backend=client.settings.backend, budget=budget)
    return request, None


def _made(
    song: Song,
    request: SongRequest,
    client: FunMusicClient | AsyncFunMusicClient,
    *,
    reuse: bool,
    output_dir: str | os.PathLike[str] | None,
) -> Song:
    song.key = song_key(request, client.settings)  # a later song.save() makes it reusable
    record(song)
    if reuse or output_dir is not None:
        # Asked to reuse: keep this take in the library so the next identical call finds it.
        # Given a folder: that is where the caller wants the song, so it is written there.
        save_song(song, output_dir)
    return song


def _counted(
    client: FunMusicClient | AsyncFunMusicClient,
    open_stream: Callable[..., _StreamT],
    fields: dict[str, Any],
    *,
    headers: Mapping[str, str] | None,
    budget: float | None,
) -> _StreamT:
    """A stream whose request passed the budget, and whose finished song counts in the
    session's spending (and carries its library key, so ``song.save()`` makes it reusable)."""
    request, _notes = _ahead(client, True, fields, reuse=False, output_dir=None, budget=budget)
    song_stream = open_stream(request, headers=headers)

    def finished(song: Song) -> None:
        song.key = song_key(request, client.settings)
        record(song)

    song_stream.on_song = finished
    return song_stream


def generate(
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
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
    reuse: bool = False,
    output_dir: str | os.PathLike[str] | None = None,
    budget: float | None = None,
    **extra_input: Any,
) -> Song:
    """Make a song and return it (blocking). With no key configured: the offline simulator.

    ``reuse=True``: when ``output_dir`` (default ``./funmusic-output``) already holds a song made
    by this very request, return it from disk with nothing sent or billed (its ``made_at`` is
    set, and its card says it was reused); else make it and save it there. An ``output_dir``
    given without ``reuse`` saves the new song there too (``song.saved_path``). ``budget`` (default:
    ``FunMusicMagics.budget`` if the extension is loaded, else none) refuses the request with
    ``BudgetExceededError`` once this session has spent it.
    """
    client = _sync_client(api_key, base_url, endpoint, backend)
    fields = dict(
        prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender, format=format,
        model=model, **extra_input,
    )
    request, found = _ahead(
        client, stream, fields, reuse=reuse, output_dir=output_dir, budget=budget
    )
    if found is not None:
        return found
    song = client.generate_request(request, headers=headers)
    return _made(song, request, client, reuse=reuse, output_dir=output_dir)


async def agenerate(
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
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
    reuse: bool = False,
    output_dir: str | os.PathLike[str] | None = None,
    budget: float | None = None,
    **extra_input: Any,
) -> Song:
    """Make a song and return it (async). ``reuse``, ``output_dir``, ``budget``: as ``generate``."""
    client = _async_client(api_key, base_url, endpoint, backend)
    fields = dict(
        prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender, format=format,
        model=model, **extra_input,
    )
    # Reading a few sidecars is quick; it stays on the loop rather than adding a thread hop.
    request, found = _ahead(
        client, stream, fields, reuse=reuse, output_dir=output_dir, budget=budget
    )
    if found is not None:
        return found
    song = await client.generate_request(request, headers=headers)
    return _made(song, request, client, reuse=reuse, output_dir=output_dir)


def stream(
    *,
    prompt: str | None = None,
    lyrics: str | None = None,
    text: str | None = None,
    mode: str = "auto",
    gender: str | None = None,
    format: str = "mp3",
    model: str = "fun-music-v1",
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
    budget: float | None = None,
    **extra_input: Any,
) -> SongStream:
    """A ``SongStream`` (``with`` it, iterate it): audio chunks as they arrive, then the song.

    ``budget``: as ``generate`` (checked before anything is sent); the finished song counts in
    the session's spending.
    """
    fields = dict(
        prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender, format=format,
        model=model, **extra_input,
    )
    client = _sync_client(api_key, base_url, endpoint, backend)
    return _counted(client, client.stream_request, fields, headers=headers, budget=budget)


def astream(
    *,
    prompt: str | None = None,
    lyrics: str | None = None,
    text: str | None = None,
    mode: str = "auto",
    gender: str | None = None,
    format: str = "mp3",
    model: str = "fun-music-v1",
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
    budget: float | None = None,
    **extra_input: Any,
) -> AsyncSongStream:
    """An ``AsyncSongStream`` (``async with``, ``async for``). Call it inside the event loop.

    ``budget``: as ``generate``.
    """
    fields = dict(
        prompt=prompt, lyrics=lyrics, text=text, mode=mode, gender=gender, format=format,
        model=model, **extra_input,
    )
    client = _async_client(api_key, base_url, endpoint, backend)
    return _counted(client, client.stream_request, fields, headers=headers, budget=budget)
