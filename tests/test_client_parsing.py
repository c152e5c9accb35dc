"""Every response shape of the API, parsed into a Song, through both clients.

The three JSON examples are copied verbatim from the vendor's API reference
(/work/shared/seeds/fun-music-api-reference.ja.txt).
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timezone

import httpx
import pytest
from test_client_support import (
    AUDIO_URL,
    BASE,
    KEY,
    PROMPT,
    MockService,
    b64,
    event_stream,
    final,
    intermediate,
    json_answer,
    song_stream,
    sse,
)

from funmusic_jupyter import _version
from funmusic_jupyter._client import AsyncFunMusicClient, FunMusicClient
from funmusic_jupyter._errors import FunMusicWarning, StreamInterruptedError
from funmusic_jupyter._models import AudioChunk, StreamFinished
from funmusic_jupyter._validation import build_request

# ---- verbatim from the API reference ("応答オブジェクト") ---------------------------------------

NON_STREAMING_EXAMPLE = """{
    "output": {
        "audio": {
            "data": "",
            "expires_at": 1774936147,
            "id": "audio_46c51288-7ed6-95cc-a119-xxxxxxxxxxxx",
            "url": "http://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/pre/fun-music/20260330/xxxxxxxx/a8db24cc-d35f-961b-af81-a9e8d8b01f67.mp3?xxx"
        },
        "extra_info": {
            "channels": 2,
            "lyrics": "[verse]\\nMorning sunlight slips through the curtain,\\nCoffee aroma fills up the room.\\nOpen the book left unfinished yesterday,\\nTime quietly drifts by this way.\\n\\n[chorus]\\nTake it slow, there's no hurry,\\nLife should be this carefree.\\nToss your worries into the wind,\\nEmbrace every sunny day and rainy season.",
            "sample_rate": 48000
        },
        "finish_reason": "stop"
    },
    "usage": {
        "duration": 200
    },
    "request_id": "46c51288-7ed6-95cc-a119-xxxxxxxxxxxx"
}"""

STREAMING_INTERMEDIATE_EXAMPLE = """{
    "output": {
        "audio": {
            "data": "Base64-encoded audio data",
            "expires_at": 1774937185,
            "id": "audio_a8db24cc-d35f-961b-af81-xxxxxxxxxxxx"
        },
        "finish_reason": "null"
    },
    "request_id": "a8db24cc-d35f-961b-af81-xxxxxxxxxxxx"
}"""

STREAMING_FINAL_EXAMPLE = """{
    "output": {
        "audio": {
            "expires_at": 1774937185,
            "id": "audio_a8db24cc-d35f-961b-af81-xxxxxxxxxxxx",
            "data": "",
            "url": "http://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/pre/fun-music/20260330/xxxxxxxx/a8db24cc-d35f-961b-af81-a9e8d8b01f67.mp3?xxx"
        },
        "extra_info": {
            "channels": 2,
            "sample_rate": "48000",
            "lyrics": "[verse]\\nMorning sunlight slips through the curtain,\\nCoffee aroma fills up the room.\\nOpen the book left unfinished yesterday,\\nTime quietly drifts by this way.\\n\\n[chorus]\\nTake it slow, there's no hurry,\\nLife should be this carefree.\\nToss your worries into the wind,\\nEmbrace every sunny day and rainy season."
        },
        "finish_reason": "stop"
    },
    "usage": {
        "duration": 200
    },
    "request_id": "a8db24cc-d35f-961b-af81-xxxxxxxxxxxx"
}"""

DOC_LYRICS = json.loads(NON_STREAMING_EXAMPLE)["output"]["extra_info"]["lyrics"]
DOC_URL = json.loads(NON_STREAMING_EXAMPLE)["output"]["audio"]["url"]
MP3ISH = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 40


def data_line(example: str) -> str:
    """An SSE data line holds one line of JSON: the examples are pretty-printed."""
    return json.dumps(json.loads(example), ensure_ascii=False)


def with_audio(example: str, audio: bytes) -> str:
    # The reference's intermediate example holds a placeholder, not base64: put real audio in.
    obj = json.loads(example)
    assert obj["output"]["audio"]["data"] == "Base64-encoded audio data"
    obj["output"]["audio"]["data"] = b64(audio)
    return json.dumps(obj)


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def run_generate(service: MockService, flavour: str, **kw: object) -> object:
    kw.setdefault("prompt", PROMPT)
    if flavour == "sync":
        with service.sync_client() as client:
            return client.generate(**kw)  # type: ignore[arg-type]
    async with service.async_client() as client:
        return await client.generate(**kw)  # type: ignore[arg-type]


# ---- non-streaming -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_non_streaming_reference_example(flavour: str) -> None:
    service = MockService(
        httpx.Response(
            200, content=NON_STREAMING_EXAMPLE, headers={"content-type": "application/json"}
        ),
        audio=MP3ISH,
    )
    song = await run_generate(service, flavour)
    assert song.audio == MP3ISH  # type: ignore[attr-defined]
    assert song.lyrics == DOC_LYRICS  # type: ignore[attr-defined]
    assert song.sample_rate == 48000 and song.channels == 2  # type: ignore[attr-defined]
    assert song.duration == 200  # type: ignore[attr-defined]
    assert song.request_id == "46c51288-7ed6-95cc-a119-xxxxxxxxxxxx"  # type: ignore[attr-defined]
    assert song.audio_id == "audio_46c51288-7ed6-95cc-a119-xxxxxxxxxxxx"  # type: ignore[attr-defined]
    assert song.url == DOC_URL  # type: ignore[attr-defined]
    assert song.expires_at == datetime.fromtimestamp(1774936147, timezone.utc)  # type: ignore[attr-defined]
    assert song.format == "mp3" and song.simulated is False  # type: ignore[attr-defined]
    # The audio was fetched at once from the URL in the answer, without the key.
    [download] = service.gets
    assert str(download.url) == DOC_URL
    assert "authorization" not in download.headers
    assert song.time_to_first_audio is not None and song.total_time >= song.time_to_first_audio  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_non_streaming_request_headers_and_body(flavour: str) -> None:
    service = MockService(json_answer(final(sample_rate=48000)), audio=b"x" * 10)
    await run_generate(service, flavour, gender="male", format="wav")
    [post] = service.posts
    assert str(post.url) == BASE + "/services/audio/music/generation"
    assert post.headers["authorization"] == f"Bearer {KEY}"
    assert post.headers["content-type"] == "application/json"
    assert post.headers["user-agent"].startswith(f"funmusic-jupyter/{_version.__version__}")
    assert "x-dashscope-sse" not in post.headers
    assert json.loads(post.content) == {
        "model": "fun-music-v1",
        "input": {"prompt": PROMPT, "gender": "male", "format": "wav"},
    }


@pytest.mark.anyio
async def test_streaming_request_headers(flavour: str) -> None:
    service = MockService(event_stream(song_stream([b"abc"])))
    await run_generate(service, flavour, stream=True)
    [post] = service.posts
    assert post.headers["x-dashscope-sse"] == "enable"
    assert post.headers["accept"] == "text/event-stream"
    assert post.headers["authorization"] == f"Bearer {KEY}"
    assert post.headers["content-type"] == "application/json"
    assert "funmusic-jupyter" in post.headers["user-agent"]


def test_no_authorization_header_without_a_key() -> None:
    # A classroom simulator server: a base URL and no key.
    service = MockService(json_answer(final(sample_rate=48000)), audio=b"x")
    with service.sync_client(api_key=None) as client:
        client.generate(prompt=PROMPT)
    assert "authorization" not in service.posts[0].headers


def test_the_simulator_backend_never_receives_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    service = MockService(json_answer(final(sample_rate=48000)), audio=b"x")
    with FunMusicClient(
        backend="simulator", base_url=BASE, transport=httpx.MockTransport(service)
    ) as client:
        song = client.generate(prompt=PROMPT)
    assert "authorization" not in service.posts[0].headers
    assert KEY not in repr(service.posts[0].headers)
    assert song.simulated is True


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        (None, "/services/audio/music/generation"),
        ("generation", "/services/audio/music/generation"),
        ("speech-synthesizer", "/services/audio/tts/SpeechSynthesizer"),
        ("/custom/path", "/custom/path"),
    ],
)
def test_endpoint_names_and_paths(endpoint: str | None, path: str) -> None:
    service = MockService(json_answer(final(sample_rate=48000)), audio=b"x")
    with service.sync_client(endpoint=endpoint) as client:
        client.generate(prompt=PROMPT)
    assert str(service.posts[0].url) == BASE + path


def test_per_call_and_client_headers_are_sent_on_the_post_only() -> None:
    service = MockService(json_answer(final(sample_rate=48000)), audio=b"x")
    with service.sync_client(headers={"X-Client": "1"}) as client:
        client.generate(prompt=PROMPT, headers={"X-FunMusic-Fault": "inspection"})
    post, get = service.requests
    assert post.headers["x-client"] == "1" and post.headers["x-funmusic-fault"] == "inspection"
    assert "x-client" not in get.headers and "x-funmusic-fault" not in get.headers


@pytest.mark.anyio
async def test_request_id_from_the_header_when_the_body_has_none(flavour: str) -> None:
    service = MockService(
        json_answer(final(request_id=None, sample_rate=48000), headers={"x-request-id": "hdr-7"}),
        audio=b"x",
    )
    song = await run_generate(service, flavour)
    assert song.request_id == "hdr-7"  # type: ignore[attr-defined]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("header", "simulated"), [("true", True), ("True", True), ("false", False), (None, False)]
)
async def test_simulated_header(flavour: str, header: str | None, simulated: bool) -> None:
    headers = {"X-FunMusic-Simulated": header} if header else {}
    service = MockService(
        json_answer(final(sample_rate=48000), headers=headers),
        audio=b"x",
    )
    song = await run_generate(service, flavour)
    assert song.simulated is simulated  # type: ignore[attr-defined]


# ---- streaming ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_streaming_reference_examples(flavour: str) -> None:
    pieces = [b"first piece of audio ", b"second piece"]
    body = "".join(
        sse(with_audio(STREAMING_INTERMEDIATE_EXAMPLE, p), id=str(i)) for i, p in enumerate(pieces)
    ) + sse(data_line(STREAMING_FINAL_EXAMPLE), id="9")
    service = MockService(event_stream(body))
    song = await run_generate(service, flavour, stream=True)
    assert song.audio == b"".join(pieces)  # type: ignore[attr-defined]
    assert song.sample_rate == 48000  # the final event says "48000", a string  # type: ignore[attr-defined]
    assert song.channels == 2 and song.duration == 200  # type: ignore[attr-defined]
    assert song.lyrics == DOC_LYRICS  # type: ignore[attr-defined]
    assert song.request_id == "a8db24cc-d35f-961b-af81-xxxxxxxxxxxx"  # type: ignore[attr-defined]
    assert song.audio_id == "audio_a8db24cc-d35f-961b-af81-xxxxxxxxxxxx"  # type: ignore[attr-defined]
    assert song.url == DOC_URL  # type: ignore[attr-defined]
    assert song.expires_at == datetime.fromtimestamp(1774937185, timezone.utc)  # type: ignore[attr-defined]
    assert service.gets == []  # streamed: nothing to download


def test_the_reference_placeholder_is_not_base64_and_says_so() -> None:
    body = sse(data_line(STREAMING_INTERMEDIATE_EXAMPLE)) + sse(data_line(STREAMING_FINAL_EXAMPLE))
    service = MockService(event_stream(body))
    with service.sync_client() as client, pytest.raises(StreamInterruptedError) as info:
        client.generate(prompt=PROMPT, stream=True)
    assert "not base64" in info.value.message
    assert "'Base64-encoded audio data'" in info.value.message


@pytest.mark.anyio
@pytest.mark.parametrize("sample_rate", [48000, "48000", "44100", 44100.0])
async def test_sample_rate_as_int_or_string(flavour: str, sample_rate: object) -> None:
    service = MockService(event_stream(song_stream([b"a"], sample_rate=sample_rate)))
    song = await run_generate(service, flavour, stream=True)
    assert song.sample_rate == int(float(sample_rate))  # type: ignore[attr-defined, arg-type]


def test_events_are_chunks_then_finished() -> None:
    pieces = [b"one", b"two", b"three"]
    service = MockService(event_stream(song_stream(pieces)))
    with service.sync_client() as client, client.stream(prompt=PROMPT) as stream:
        events = list(stream)
    assert [type(e) for e in events] == [AudioChunk, AudioChunk, AudioChunk, StreamFinished]
    chunks = events[:3]
    assert [c.data for c in chunks] == pieces
    assert [c.index for c in chunks] == [0, 1, 2]
    assert [c.bytes_so_far for c in chunks] == [3, 6, 11]
    assert all(a.elapsed <= b.elapsed for a, b in zip(chunks, chunks[1:], strict=False))
    assert events[3].song is stream.song
    assert stream.song is not None and stream.song.audio == b"onetwothree"
    assert stream.partial_audio == b"onetwothree"


def test_finish_reason_null_string_then_stop_and_extra_fields_ignored() -> None:
    events = [
        {"output": {"audio": {"data": b64(b"ab")}, "finish_reason": "null"}, "request_id": "r"},
        {"output": {"audio": {"data": b64(b"cd")}, "finish_reason": None, "new": 1}, "x": [1]},
        {"output": {"audio": {"data": ""}, "finish_reason": "null"}},  # heartbeat-like, no audio
        final(),
    ]
    service = MockService(event_stream("".join(sse(e) for e in events)))
    with service.sync_client() as client:
        song = client.generate(prompt=PROMPT, stream=True)
    assert song.audio == b"abcd" and song.request_id == "rid-1"


def test_a_final_event_carrying_audio_keeps_it() -> None:
    last = final()
    last["output"]["audio"]["data"] = b64(b"tail")
    body = sse(intermediate(b"head-")) + sse(last)
    service = MockService(event_stream(body))
    with service.sync_client() as client, client.stream(prompt=PROMPT) as stream:
        events = list(stream)
    assert [type(e).__name__ for e in events] == ["AudioChunk", "AudioChunk", "StreamFinished"]
    assert stream.song is not None and stream.song.audio == b"head-tail"


def test_reading_stops_at_the_final_event() -> None:
    # Whatever follows the final event (here: garbage) is never read or judged.
    body = song_stream([b"abc"]) + "data:{not json\n\n"
    service = MockService(event_stream(body))
    with service.sync_client() as client:
        assert client.generate(prompt=PROMPT, stream=True).audio == b"abc"


@pytest.mark.anyio
async def test_stream_framing_labelled_application_json(flavour: str) -> None:
    service = MockService(
        event_stream(song_stream([b"abc", b"def"]), content_type="application/json")
    )
    song = await run_generate(service, flavour, stream=True)
    assert song.audio == b"abcdef"  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_a_non_streaming_answer_to_a_streaming_request_is_downloaded(flavour: str) -> None:
    # A gateway that drops X-DashScope-SSE answers with the JSON body: the audio is at the URL.
    service = MockService(json_answer(final(sample_rate=48000)), audio=b"downloaded")
    song = await run_generate(service, flavour, stream=True)
    assert song.audio == b"downloaded"  # type: ignore[attr-defined]
    assert len(service.gets) == 1


@pytest.mark.anyio
async def test_a_streamed_answer_to_a_non_streaming_request_is_assembled(flavour: str) -> None:
    service = MockService(event_stream(song_stream([b"abc", b"def"])))
    song = await run_generate(service, flavour)
    assert song.audio == b"abcdef" and service.gets == []  # type: ignore[attr-defined]


def test_lyrics_fall_back_to_the_request_in_lyrics_mode() -> None:
    last = final()
    del last["output"]["extra_info"]["lyrics"]
    lyrics = "[verse]\nHello rain on the window pane\n[chorus]\nSing along"
    service = MockService(json_answer(last), audio=b"x")
    with service.sync_client() as client:
        song = client.generate(lyrics=lyrics)
    assert song.lyrics == lyrics and song.mode == "lyrics"


def test_missing_metadata_is_read_from_the_audio_itself() -> None:
    # No usage, no extra_info: duration, rate and channels come from the WAV header.
    rate, channels = 16000, 1
    pcm = b"\x00\x00" * rate * 3  # 3 seconds
    header = (
        b"RIFF"
        + (36 + len(pcm)).to_bytes(4, "little")
        + b"WAVEfmt "
        + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little")
        + channels.to_bytes(2, "little")
        + rate.to_bytes(4, "little")
        + (rate * 2).to_bytes(4, "little")
        + (2).to_bytes(2, "little")
        + (16).to_bytes(2, "little")
        + b"data"
        + len(pcm).to_bytes(4, "little")
    )
    body = {"output": {"audio": {"data": "", "url": AUDIO_URL}, "finish_reason": "stop"}}
    service = MockService(json_answer(body), audio=header + pcm)
    with service.sync_client() as client:
        song = client.generate(prompt=PROMPT, format="mp3")
    assert song.duration == 3.0
    assert (song.sample_rate, song.channels) == (rate, channels)
    assert song.format == "wav"  # recognised from the bytes, whatever was asked


# ---- warnings, reprs ---------------------------------------------------------------------------


def test_generate_warns_and_generate_request_does_not() -> None:
    service = MockService(json_answer(final(sample_rate=48000)), audio=b"x")
    lyrics = "[verse]\nHello rain on the window pane"
    with service.sync_client() as client:
        with pytest.warns(FunMusicWarning, match="prompt is ignored"):
            client.generate(lyrics=lyrics, prompt=PROMPT)
        request = build_request(lyrics=lyrics, prompt=PROMPT)
        assert request.warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            client.generate_request(request)
    # Lyrics win: the prompt is not sent.
    assert "prompt" not in json.loads(service.posts[0].content)["input"]


@pytest.mark.anyio
async def test_async_generate_warns() -> None:
    service = MockService(json_answer(final(sample_rate=48000)), audio=b"x")
    async with service.async_client() as client:
        with pytest.warns(FunMusicWarning, match="unknown structure tag"):
            await client.generate(lyrics="[hook]\nHello rain on the window pane")


@pytest.mark.anyio
async def test_reprs_never_show_the_key() -> None:
    service = MockService(event_stream(song_stream([b"a"])))
    sync = service.sync_client()
    async_client = service.async_client()
    try:
        stream = sync.stream(prompt=PROMPT)
        astream = async_client.stream(prompt=PROMPT)
        for text in (
            repr(sync),
            repr(async_client),
            repr(stream),
            repr(astream),
            str(sync.settings),
        ):
            assert KEY not in text
        assert "sk-…cdef" in repr(sync)
    finally:
        sync.close()
        await async_client.aclose()


def test_stream_request_refuses_a_non_streaming_request() -> None:
    with MockService().sync_client() as client, pytest.raises(ValueError, match="stream=True"):
        client.stream_request(build_request(prompt=PROMPT, stream=False))


@pytest.mark.anyio
async def test_async_stream_request_refuses_a_non_streaming_request() -> None:
    async with AsyncFunMusicClient(base_url=BASE) as client:
        with pytest.raises(ValueError, match="stream=True"):
            client.stream_request(build_request(prompt=PROMPT, stream=False))
