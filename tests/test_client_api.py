"""The module-level API's default clients: one per settings, created once under a lock, one per
event loop for async, closed at exit. (The songs themselves: test_client_integration.py.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from test_client_support import BASE, KEY

import funmusic_jupyter as fm
from funmusic_jupyter import _api
from funmusic_jupyter._client import AsyncFunMusicClient, FunMusicClient
from funmusic_jupyter._errors import FunMusicError


@pytest.fixture(autouse=True)
def fresh_defaults() -> Iterator[None]:
    saved = dict(_api._sync_clients)
    _api._sync_clients.clear()
    yield
    _api.close_default_clients()
    _api._sync_clients.update(saved)


def test_one_client_per_settings() -> None:
    a = _api._sync_client(KEY, BASE, None, "auto")
    assert _api._sync_client(KEY, BASE, None, "auto") is a
    assert _api._sync_client(KEY, BASE, "speech-synthesizer", "auto") is not a
    assert _api._sync_client(KEY + "x", BASE, None, "auto") is not a
    assert isinstance(a, FunMusicClient) and a.settings.api_key == KEY


def test_a_changed_environment_selects_another_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    first = _api._sync_client(None, BASE, None, "auto")
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY + "2")
    second = _api._sync_client(None, BASE, None, "auto")
    assert first is not second and second.settings.api_key == KEY + "2"
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    assert _api._sync_client(None, BASE, None, "auto") is first


def test_creation_is_thread_safe() -> None:
    barrier = threading.Barrier(8)
    made: list[FunMusicClient] = []

    def get() -> None:
        barrier.wait()
        made.append(_api._sync_client(KEY, BASE, None, "auto"))

    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 8 and all(c is made[0] for c in made)
    assert len(_api._sync_clients) == 1


def test_close_default_clients_closes_them() -> None:
    client = _api._sync_client(KEY, BASE, None, "auto")
    _api.close_default_clients()
    assert client._http.is_closed and _api._sync_clients == {}


def test_async_clients_belong_to_their_event_loop() -> None:
    async def get() -> tuple[AsyncFunMusicClient, AsyncFunMusicClient]:
        a = _api._async_client(KEY, BASE, None, "auto")
        b = _api._async_client(KEY, BASE, None, "auto")
        await _api.aclose_default_clients()
        return a, b

    a1, b1 = anyio.run(get)
    a2, _ = anyio.run(get)
    assert a1 is b1  # reused within a loop
    assert a2 is not a1  # a new loop gets its own client
    assert a1._http.is_closed


def test_module_functions_validate_before_any_request() -> None:
    from funmusic_jupyter._errors import ValidationError

    with pytest.raises(ValidationError):
        _api.generate(prompt="", base_url=BASE)
    with pytest.raises(ValidationError):
        _api.stream(prompt="too short", base_url=BASE)


def test_async_functions_outside_an_event_loop_say_so_in_one_line() -> None:
    with pytest.raises(FunMusicError, match="need a running event loop") as info:
        fm.astream(prompt="A happy little song about tests")
    assert "trio" not in str(info.value)
    assert info.value._render_traceback_() == [info.value.one_line()]


# ---- nothing outlives its event loop (issue 10, item 4) ------------------------------------------


def _open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


def test_asyncio_run_agenerate_in_a_loop_leaks_no_socket_and_no_loop() -> None:
    import asyncio
    import gc

    from _standin import StandInServer, record, replay

    from funmusic_jupyter.simulator import SimulatorServer

    lyrics = "[verse]\nRain on the window\n[chorus]\nStay with me"
    with SimulatorServer(speed=0) as sim:
        song = record(sim.base_url, {"model": "fun-music-v1", "input": {"lyrics": lyrics}})
    # The simulator's song, replayed at once: 30 songs in well under a second each.
    server = StandInServer(replay(song, lambda: server))
    with server:
        asyncio.run(fm.agenerate(lyrics=lyrics, base_url=server.base_url))  # warm up
        gc.collect()
        before = _open_fds()
        for _ in range(30):
            assert asyncio.run(fm.agenerate(lyrics=lyrics, base_url=server.base_url)).audio
        gc.collect()
        after = _open_fds()
    # Each leaked loop would keep its selector and self-pipe (3 fds) and its client's socket.
    assert after - before <= 3, (before, after)
    assert _api._async_clients == {}  # every loop's entry left with its loop


def test_a_loop_closed_without_shutting_down_is_pruned() -> None:
    import asyncio

    loop = asyncio.new_event_loop()

    async def get() -> AsyncFunMusicClient:
        return _api._async_client(KEY, BASE, None, "auto")

    loop.run_until_complete(get())
    loop.close()  # no shutdown_asyncgens: the guard never ran
    assert loop in _api._async_clients

    async def other() -> None:
        _api._async_client(KEY, BASE, None, "auto")
        await _api.aclose_default_clients()

    asyncio.run(other())
    assert loop not in _api._async_clients and _api._async_clients == {}


def test_clients_share_one_tls_context() -> None:
    # Each default async client is made per event loop; loading the CA bundle for each one cost
    # about 0.25 s per asyncio.run(fm.agenerate(...)).
    a = AsyncFunMusicClient(base_url=BASE)
    b = FunMusicClient(base_url=BASE)
    try:
        assert a._http._transport._pool._ssl_context is b._http._transport._pool._ssl_context  # type: ignore[attr-defined]
    finally:
        b.close()
        anyio.run(a.aclose)


def test_generate_saves_in_the_output_dir_it_is_given(tmp_path: Path) -> None:
    # Given a folder, the song is written there even without reuse: nothing arrives only in memory.
    from funmusic_jupyter.simulator import SimulatorServer

    with SimulatorServer(speed=0) as sim:
        song = fm.generate(prompt="A calm piano song for a quiet morning",
                           base_url=sim.base_url, output_dir=tmp_path / "songs")
    assert song.saved_path is not None and song.saved_path.parent == (tmp_path / "songs").resolve()
    assert song.saved_path.read_bytes() == song.audio
