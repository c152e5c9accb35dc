"""The clients against the real simulator over loopback HTTP: songs in both formats on both
endpoints, streamed bytes equal to the downloaded file, every fault header mapped to the right
exception with the audio that had arrived, retries, keys, and the embedded default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from funmusic_jupyter import _api, _sync_client
from funmusic_jupyter._client import AsyncFunMusicClient, FunMusicClient
from funmusic_jupyter._errors import (
    APIError,
    APITimeoutError,
    AuthenticationError,
    ContentInspectionError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from funmusic_jupyter._models import AudioChunk, StreamFinished
from funmusic_jupyter.simulator import FAULT_HEADER, SimulatorServer

STREAM_PROMPT = "Warm acoustic guitar ballad for a rainy evening"  # valid for streaming
SHORT_LYRICS = "[verse]\nHello rain on the window\n[chorus]\nSing it soft and low"


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:
        yield server


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[FunMusicClient]:
    with FunMusicClient(base_url=simulator.base_url, idle_timeout=10.0, read_timeout=60.0) as c:
        yield c


@pytest.fixture(scope="module")
def streamed_mp3(simulator: SimulatorServer) -> tuple[list[Any], Any]:
    """One full streamed song (the reference the fault tests compare their partial audio to)."""
    with FunMusicClient(base_url=simulator.base_url) as c, c.stream(prompt=STREAM_PROMPT) as s:
        events = list(s)
    return events, s.song


def download(client: FunMusicClient, url: str) -> bytes:
    response = client._http.get(url)
    assert response.status_code == 200
    return response.content


# ---- songs ---------------------------------------------------------------------------------------


def test_streamed_mp3_song(client: FunMusicClient, streamed_mp3: tuple[list[Any], Any]) -> None:
    events, song = streamed_mp3
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert isinstance(events[-1], StreamFinished) and events[-1].song is song
    assert len(chunks) >= 2
    assert b"".join(c.data for c in chunks) == song.audio
    assert song.format == "mp3" and song.simulated is True
    assert song.sample_rate == 48000 and song.channels == 2
    assert song.request_id and song.url and song.expires_at is not None
    assert song.lyrics.strip()
    # The MP3 frames tell how much audio has arrived; it ends near the billed duration.
    assert chunks[-1].seconds_so_far == pytest.approx(song.duration, abs=1.5)
    # The streamed bytes are the file at the final event's URL.
    assert download(client, song.url) == song.audio


@pytest.mark.parametrize(
    ("endpoint", "fmt", "stream"),
    [
        ("generation", "wav", False),
        ("speech-synthesizer", "mp3", False),
        ("speech-synthesizer", "wav", True),
    ],
)
def test_songs_on_both_endpoints_in_both_formats(
    simulator: SimulatorServer, endpoint: str, fmt: str, stream: bool
) -> None:
    with FunMusicClient(base_url=simulator.base_url, endpoint=endpoint) as c:
        if stream:
            song = c.generate(prompt=STREAM_PROMPT, format=fmt, stream=True)
        else:
            song = c.generate(lyrics=SHORT_LYRICS, format=fmt)
        assert song.format == fmt and song.simulated is True
        assert song.audio.startswith(b"RIFF" if fmt == "wav" else b"ID3")
        assert song.duration > 0 and song.url
        assert download(c, song.url) == song.audio
    if fmt == "wav":
        # 16-bit stereo at 48 kHz: the byte count agrees with the billed duration.
        assert (len(song.audio) - 44) / 192000 == pytest.approx(song.duration, abs=1.0)


def test_streaming_and_not_give_the_same_song(
    client: FunMusicClient, streamed_mp3: tuple[list[Any], Any]
) -> None:
    _, streamed = streamed_mp3
    whole = client.generate(prompt=STREAM_PROMPT)
    assert whole.audio == streamed.audio and whole.lyrics == streamed.lyrics


@pytest.mark.anyio
async def test_async_client_streams_the_same_song(
    simulator: SimulatorServer, streamed_mp3: tuple[list[Any], Any]
) -> None:
    _, streamed = streamed_mp3
    async with AsyncFunMusicClient(base_url=simulator.base_url) as c:
        chunks = []
        async with c.stream(prompt=STREAM_PROMPT) as s:
            async for event in s:
                if isinstance(event, AudioChunk):
                    chunks.append(event.data)
    assert s.song is not None and s.song.audio == streamed.audio == b"".join(chunks)


# ---- faults --------------------------------------------------------------------------------------


def fail(client: FunMusicClient, fault: str, *, stream: bool = True) -> APIError:
    kw: dict[str, Any] = {"prompt": STREAM_PROMPT} if stream else {"lyrics": SHORT_LYRICS}
    with pytest.raises(APIError) as info:
        client.generate(stream=stream, headers={FAULT_HEADER: fault}, **kw)
    return info.value


def assert_prefix(err: APIError, streamed_mp3: tuple[list[Any], Any], chunks: int) -> None:
    events, song = streamed_mp3
    expected = b"".join(e.data for e in events[:chunks])
    assert err.partial_audio == expected and song.audio.startswith(err.partial_audio)
    assert err.request_id


def test_drop_after(client: FunMusicClient, streamed_mp3: tuple[list[Any], Any]) -> None:
    err = fail(client, "drop-after=2")
    assert type(err) is StreamInterruptedError
    assert_prefix(err, streamed_mp3, 2)


def test_stall_after(simulator: SimulatorServer, streamed_mp3: tuple[list[Any], Any]) -> None:
    with FunMusicClient(base_url=simulator.base_url, idle_timeout=0.5) as c:
        err = fail(c, "stall-after=2")
    assert type(err) is APITimeoutError
    assert_prefix(err, streamed_mp3, 2)


@pytest.mark.anyio
async def test_async_stall_after(
    simulator: SimulatorServer, streamed_mp3: tuple[list[Any], Any]
) -> None:
    async with AsyncFunMusicClient(base_url=simulator.base_url, idle_timeout=0.5) as c:
        with anyio.fail_after(30), pytest.raises(APITimeoutError) as info:
            await c.generate(
                prompt=STREAM_PROMPT, stream=True, headers={FAULT_HEADER: "stall-after=1"}
            )
    assert_prefix(info.value, streamed_mp3, 1)


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "plain"])
@pytest.mark.parametrize(("status", "code"), [(500, "InternalError"), (503, "ServiceUnavailable")])
def test_status_faults(client: FunMusicClient, stream: bool, status: int, code: str) -> None:
    err = fail(client, f"status={status}", stream=stream)
    assert type(err) is ServerError and (err.status_code, err.code) == (status, code)
    assert err.partial_audio == b"" and err.request_id


def test_error_event_after(client: FunMusicClient, streamed_mp3: tuple[list[Any], Any]) -> None:
    err = fail(client, "error-event-after=2")
    assert type(err) is ServerError and (err.status_code, err.code) == (500, "InternalError")
    assert_prefix(err, streamed_mp3, 2)


def test_error_event_without_streaming_is_parsed_by_content(client: FunMusicClient) -> None:
    err = fail(client, "error-event-after=0", stream=False)
    assert type(err) is ServerError and (err.status_code, err.code) == (500, "InternalError")


def test_malformed_after(client: FunMusicClient, streamed_mp3: tuple[list[Any], Any]) -> None:
    err = fail(client, "malformed-after=1")
    assert type(err) is StreamInterruptedError and "not JSON" in err.message
    assert_prefix(err, streamed_mp3, 1)


def test_malformed_without_streaming(client: FunMusicClient) -> None:
    err = fail(client, "malformed-after=0", stream=False)
    assert type(err) is StreamInterruptedError and "neither JSON" in err.message


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "plain"])
def test_inspection(client: FunMusicClient, stream: bool) -> None:
    err = fail(client, "inspection", stream=stream)
    assert type(err) is ContentInspectionError
    assert (err.status_code, err.code) == (400, "DataInspectionFailed")


def test_throttle_once_succeeds_through_a_retry(
    client: FunMusicClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        _sleep(seconds)

    _sleep = _sync_client._sleep
    monkeypatch.setattr(_sync_client, "_sleep", sleep)
    song = client.generate(lyrics=SHORT_LYRICS, headers={FAULT_HEADER: "throttle=0.2x1"})
    assert song.simulated and waits == [0.2]


def test_throttle_always_fails_after_the_retries(
    simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sync_client, "_sleep", lambda seconds: None)
    with FunMusicClient(base_url=simulator.base_url, max_retries=1) as c:
        err = fail(c, "throttle=0.1", stream=True)
    assert type(err) is RateLimitError
    assert (err.status_code, err.code, err.retry_after) == (429, "Throttling.RateQuota", 0.1)


# ---- keys ----------------------------------------------------------------------------------------


def test_invalid_key_is_refused_and_never_shown() -> None:
    with SimulatorServer(speed=0, api_key="sk-the-right-key-1234") as server:
        with FunMusicClient(base_url=server.base_url, api_key="sk-a-wrong-key-5678") as c:
            with pytest.raises(AuthenticationError) as info:
                c.generate(lyrics=SHORT_LYRICS)
        assert (info.value.status_code, info.value.code) == (401, "InvalidApiKey")
        assert "sk-a-wrong-key-5678" not in str(info.value) + repr(info.value)
        with FunMusicClient(base_url=server.base_url, api_key="sk-the-right-key-1234") as c:
            assert c.generate(lyrics=SHORT_LYRICS).simulated


def test_the_simulator_backend_does_not_send_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server wants the very key the environment holds: it is refused, so it was not sent.
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-the-right-key-1234")
    with SimulatorServer(speed=0, api_key="sk-the-right-key-1234") as server:
        with FunMusicClient(backend="simulator", base_url=server.base_url) as c:
            with pytest.raises(AuthenticationError):
                c.generate(lyrics=SHORT_LYRICS)


# ---- module-level API and the embedded default -------------------------------------------------


def test_embedded_simulator_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # No key, no base URL: the offline simulator, started on first use.
    monkeypatch.setenv("FUNMUSIC_SIMULATOR_SPEED", "0")  # if this test is the one to start it
    song = _api.generate(lyrics=SHORT_LYRICS)
    assert song.simulated is True and song.audio.startswith(b"ID3")
    client = _api._sync_client(None, None, None, "auto")
    assert client.settings.backend == "simulator" and client._base_url
    assert _api.generate(lyrics=SHORT_LYRICS).audio == song.audio  # the same default client
    assert _api._sync_client(None, None, None, "auto") is client


def test_module_level_stream(
    simulator: SimulatorServer, streamed_mp3: tuple[list[Any], Any]
) -> None:
    with _api.stream(prompt=STREAM_PROMPT, base_url=simulator.base_url) as s:
        first = next(iter(s))
    assert isinstance(first, AudioChunk) and first.index == 0
    assert streamed_mp3[1].audio.startswith(s.partial_audio)


@pytest.mark.anyio
async def test_module_level_async(
    simulator: SimulatorServer, streamed_mp3: tuple[list[Any], Any]
) -> None:
    try:
        song = await _api.agenerate(prompt=STREAM_PROMPT, stream=True, base_url=simulator.base_url)
        assert song.audio == streamed_mp3[1].audio
        async with _api.astream(prompt=STREAM_PROMPT, base_url=simulator.base_url) as s:
            async for event in s:
                if isinstance(event, StreamFinished):
                    assert event.song.audio == song.audio
    finally:
        await _api.aclose_default_clients()
