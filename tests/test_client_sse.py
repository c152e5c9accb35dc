"""The event stream arriving in awkward pieces: one byte at a time, events split anywhere,
CRLF or CR line endings, multi-byte characters cut in half, comments and keep-alives."""

from __future__ import annotations

import random

import pytest
from test_client_support import (
    PROMPT,
    MockService,
    collect_async,
    collect_sync,
    event_stream,
    final,
    intermediate,
    song_stream,
    split_every,
    sse,
)

from funmusic_jupyter._models import AudioChunk, StreamFinished
from funmusic_jupyter._wire import EventDecoder

AUDIO_PIECES = [bytes([i]) * (300 + 37 * i) for i in range(6)]
AUDIO = b"".join(AUDIO_PIECES)
LYRICS = "[verse]\n春风吹过山岗，月光照亮小河 — ünïcödé ♪"


def random_split(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, at = [], 0
    while at < len(data):
        n = rng.randint(1, 97)
        out.append(data[at : at + n])
        at += n
    return out


def body(newline: str = "\n", **kw: object) -> bytes:
    text = song_stream(AUDIO_PIECES, lyrics=LYRICS, **kw)  # type: ignore[arg-type]
    return text.replace("\n", newline).encode("utf-8")


SPLITS = {
    "one byte at a time": lambda raw: split_every(raw, 1),
    "7-byte pieces": lambda raw: split_every(raw, 7),
    "random pieces": lambda raw: random_split(raw, 1),
    "one piece": lambda raw: [raw],
    # Every cut exactly inside "\r\n" or right after "data:" would be caught by 1-byte pieces;
    # these cut each event in two in the middle of its data line.
    "events cut in half": lambda raw: [
        half
        for event in raw.split(b"\n\n")
        if event
        for half in (event[: len(event) // 2], event[len(event) // 2 :] + b"\n\n")
    ],
}


def check(events: list[object], stream: object) -> None:
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert [c.data for c in chunks] == AUDIO_PIECES
    assert isinstance(events[-1], StreamFinished)
    song = events[-1].song
    assert song.audio == AUDIO and song.lyrics == LYRICS
    assert stream.song is song  # type: ignore[attr-defined]


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_sync_stream_in_awkward_pieces(split: str, newline: str) -> None:
    service = MockService(event_stream(b"", pieces=SPLITS[split](body(newline))))
    with service.sync_client() as client:
        events, stream = collect_sync(client, prompt=PROMPT)
    check(events, stream)


@pytest.mark.anyio
@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
async def test_async_stream_in_awkward_pieces(split: str, newline: str) -> None:
    service = MockService(event_stream(b"", pieces=SPLITS[split](body(newline))))
    async with service.async_client() as client:
        events, stream = await collect_async(client, prompt=PROMPT)
    check(events, stream)


def test_fields_with_a_space_after_the_colon() -> None:
    text = "".join(sse(intermediate(p), space=True) for p in AUDIO_PIECES) + sse(
        final(), space=True
    )
    service = MockService(event_stream(text, piece=3))
    with service.sync_client() as client:
        assert client.generate(prompt=PROMPT, stream=True).audio == AUDIO


def test_comments_keepalives_and_unknown_fields_are_ignored() -> None:
    parts = [": keep-alive\n\n", "retry:3000\n"]
    for p in AUDIO_PIECES:
        parts.append(": ping\n")
        parts.append(sse(intermediate(p)).replace("data:", "x-unknown:1\ndata:"))
        parts.append("\n")  # a stray blank line between events
    parts.append(sse(final()))
    service = MockService(event_stream("".join(parts), piece=5))
    with service.sync_client() as client:
        assert client.generate(prompt=PROMPT, stream=True).audio == AUDIO


def test_the_last_event_without_its_blank_line_still_counts() -> None:
    text = song_stream(AUDIO_PIECES).rstrip("\n")  # the server closed right after "data:..."
    service = MockService(event_stream(text, piece=11))
    with service.sync_client() as client:
        assert client.generate(prompt=PROMPT, stream=True).audio == AUDIO


def test_chunk_progress_fields() -> None:
    service = MockService(event_stream(body(), piece=13))
    with service.sync_client() as client:
        events, _ = collect_sync(client, prompt=PROMPT)
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    assert [c.index for c in chunks] == list(range(len(AUDIO_PIECES)))
    sizes = [len(p) for p in AUDIO_PIECES]
    assert [c.bytes_so_far for c in chunks] == [sum(sizes[: i + 1]) for i in range(len(sizes))]
    # Not audio a decoder recognises: no estimate rather than a wrong one.
    assert all(c.seconds_so_far is None for c in chunks)


# ---- the decoder itself ------------------------------------------------------------------------


def test_event_decoder_keeps_each_events_http_status() -> None:
    text = (
        "id:1\nevent:result\n:HTTP_STATUS/200\ndata:{}\n\n"
        "id:2\nevent:result\ndata:{}\n\n"  # no status comment: no status, not the previous one
        'event: error\n:HTTP_STATUS/429\ndata: {"code":"Throttling"}\n\n'
        ":HTTP_STATUS/oops\ndata:{}\n\n"
    )
    decoder = EventDecoder()
    events = [e for ch in text for e in decoder.feed(ch)] + decoder.flush()
    assert [(e.sse.event, e.http_status) for e in events] == [
        ("result", 200),
        ("result", None),
        ("error", 429),
        ("message", None),
    ]
    assert events[2].sse.data == '{"code":"Throttling"}'
    assert [e.sse.id for e in events[:2]] == ["1", "2"]


def test_event_decoder_multiline_data_is_joined() -> None:
    decoder = EventDecoder()
    [event] = decoder.feed("data:line one\r\ndata:line two\r\n\r\n")
    assert event.sse.data == "line one\nline two"
    assert decoder.flush() == []
