"""The incremental "seconds so far" estimate, for MP3 (real frames from lameenc) and WAV."""

from __future__ import annotations

import random

import lameenc
import numpy as np
import pytest

from funmusic_jupyter._progress import AudioProgress


def mp3(seconds: float, *, rate: int = 48000, channels: int = 2, kbps: int = 128) -> bytes:
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(channels)
    encoder.set_quality(7)
    t = np.arange(int(seconds * rate)) / rate
    tone = (8000 * np.sin(2 * np.pi * 330 * t)).astype("<i2")
    pcm = np.repeat(tone[:, None], channels, axis=1).tobytes()
    return bytes(encoder.encode(pcm) + encoder.flush())


def wav(pcm: bytes, *, rate: int = 48000, channels: int = 2, extra_chunk: bytes = b"") -> bytes:
    fmt = (
        (1).to_bytes(2, "little")
        + channels.to_bytes(2, "little")
        + rate.to_bytes(4, "little")
        + (rate * channels * 2).to_bytes(4, "little")
        + (channels * 2).to_bytes(2, "little")
        + (16).to_bytes(2, "little")
    )
    chunks = b"fmt " + len(fmt).to_bytes(4, "little") + fmt + extra_chunk
    chunks += b"data" + len(pcm).to_bytes(4, "little") + pcm
    return b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WAVE" + chunks


def feed_in(pieces: list[bytes]) -> tuple[AudioProgress, list[float | None]]:
    progress = AudioProgress()
    return progress, [progress.feed(p) for p in pieces]


def pieces_of(data: bytes, sizes: str) -> list[bytes]:
    if sizes == "whole":
        return [data]
    if sizes == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(len(data))
    out, at = [], 0
    while at < len(data):
        n = rng.choice([1, 2, 3, 5, 417, 4096])
        out.append(data[at : at + n])
        at += n
    return out


def frame_count(data: bytes) -> int:
    # Independent check: walk the frames of the whole file (MPEG-1 Layer III, 48 kHz, no padding
    # at 128 kbit/s: every frame is 384 bytes).
    return len(data) // 384


@pytest.fixture(scope="module")
def song_mp3() -> bytes:
    return mp3(2.0)


@pytest.mark.parametrize("sizes", ["whole", "bytes", "random"])
def test_mp3_frames_give_seconds_whatever_the_pieces(song_mp3: bytes, sizes: str) -> None:
    progress, seen = feed_in(pieces_of(song_mp3, sizes))
    assert progress.kind == "mp3"
    assert (progress.sample_rate, progress.channels) == (48000, 2)
    assert len(song_mp3) % 384 == 0
    assert progress.seconds == pytest.approx(frame_count(song_mp3) * 1152 / 48000)
    # 2 s of PCM plus the encoder's delay and padding: a little more than 2 s.
    assert 2.0 <= progress.seconds < 2.1
    numbers = [s for s in seen if s is not None]
    assert numbers == sorted(numbers)  # never goes backwards


def test_mp3_id3v2_tag_is_skipped(song_mp3: bytes) -> None:
    # A tag whose payload holds sync-like bytes (0xFF 0xFB) that must not count as frames.
    payload = b"\xff\xfb\x90\x00" * 300
    size = len(payload)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    tagged = b"ID3\x04\x00\x00" + syncsafe + payload + song_mp3
    for sizes in ("whole", "bytes", "random"):
        progress, _ = feed_in(pieces_of(tagged, sizes))
        assert progress.seconds == pytest.approx(frame_count(song_mp3) * 1152 / 48000), sizes


def test_mp3_xing_frame_is_not_counted(song_mp3: bytes) -> None:
    # A first frame that is a Xing header (side info of 32 bytes for MPEG-1 stereo): no audio.
    xing = song_mp3[:4] + b"\x00" * 32 + b"Xing" + b"\x00" * (384 - 40)
    progress, _ = feed_in(pieces_of(xing + song_mp3, "bytes"))
    assert progress.seconds == pytest.approx(frame_count(song_mp3) * 1152 / 48000)


def test_mp3_mono_mpeg2_frames() -> None:
    data = mp3(1.0, rate=24000, channels=1, kbps=64)
    progress, _ = feed_in(pieces_of(data, "random"))
    assert (progress.sample_rate, progress.channels) == (24000, 1)
    assert 1.0 <= progress.seconds < 1.15  # 576 samples per MPEG-2 Layer III frame


def test_mp3_resynchronises_after_junk(song_mp3: bytes) -> None:
    junk = b"\x00\x01\x02garbage\xff\x00"
    progress, _ = feed_in(pieces_of(song_mp3[:3840] + junk + song_mp3[3840:], "random"))
    assert progress.seconds == pytest.approx(frame_count(song_mp3) * 1152 / 48000)


def test_per_piece_work_is_proportional_to_the_piece(song_mp3: bytes) -> None:
    # What is carried between pieces stays tiny: the parser never re-reads earlier audio.
    progress = AudioProgress()
    for piece in pieces_of(song_mp3, "random"):
        progress.feed(piece)
        assert len(progress._carry) < 64


@pytest.mark.parametrize("sizes", ["whole", "bytes", "random"])
def test_wav_byte_rate_gives_seconds(sizes: str) -> None:
    pcm = b"\x01\x00" * 2 * 48000 * 3  # 3 s of stereo 16-bit
    data = wav(pcm, extra_chunk=b"LIST" + (5).to_bytes(4, "little") + b"abcde\x00")
    progress, seen = feed_in(pieces_of(data, sizes))
    assert progress.kind == "wav"
    assert (progress.sample_rate, progress.channels) == (48000, 2)
    assert progress.seconds == pytest.approx(3.0)
    numbers = [s for s in seen if s is not None]
    assert numbers == sorted(numbers)


def test_wav_seconds_grow_with_the_bytes() -> None:
    data = wav(b"\x00" * 192000 * 2)
    header = len(data) - 192000 * 2
    progress = AudioProgress()
    assert progress.feed(data[: header + 96000]) == pytest.approx(0.5)
    assert progress.feed(data[header + 96000 :]) == pytest.approx(2.0)


def test_unknown_bytes_give_no_estimate() -> None:
    progress, seen = feed_in([b"not audio at all", b"\x00" * 100])
    assert progress.kind == "unknown" and seen == [None, None]


def test_nothing_fed_yet() -> None:
    progress = AudioProgress()
    assert progress.feed(b"") is None
    assert progress.feed(b"RI") is None  # too short to tell
    assert progress.kind is None
