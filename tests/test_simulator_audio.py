"""The simulator's audio, checked as a player would read it: MPEG frames and WAV headers.

The helpers here (``mp3_frames``, ``check_mp3``, ``check_wav``) parse the files byte by byte with
no decoder library, so a wrong header, a torn frame or a lying length fails the test. The
vendor-sample test reuses them.
"""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest

from funmusic_jupyter.simulator import SimulatorServer

GEN = "/services/audio/music/generation"
TTS = "/services/audio/tts/SpeechSynthesizer"
SAMPLES_PER_FRAME = 1152  # MPEG-1 Layer III
# MPEG-1 Layer III bitrates (kbit/s) by header index; 0 = free format, 15 = invalid.
_BITRATES = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0)
_MPEG1_RATES = (44100, 48000, 32000)


@dataclass(frozen=True)
class Mp3Frame:
    offset: int
    length: int
    bitrate: int
    sample_rate: int
    channel_mode: int  # 0 stereo, 1 joint stereo, 2 dual channel, 3 mono


def id3v2_length(data: bytes) -> int:
    """Bytes taken by a leading ID3v2 tag (0 when there is none)."""
    if len(data) < 10 or data[:3] != b"ID3":
        return 0
    size_bytes = data[6:10]
    assert all(b < 0x80 for b in size_bytes), "ID3v2 size is not syncsafe"
    size = (size_bytes[0] << 21) | (size_bytes[1] << 14) | (size_bytes[2] << 7) | size_bytes[3]
    footer = 10 if data[5] & 0x10 else 0
    return 10 + size + footer


def mp3_frames(data: bytes) -> Iterator[Mp3Frame]:
    """Every MPEG audio frame after the ID3v2 tag, asserting that each header is valid and that
    the frames tile the file exactly (an ID3v1 tag may close it)."""
    pos = id3v2_length(data)
    assert pos <= len(data), "ID3v2 tag longer than the file"
    end = len(data)
    if end - pos >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    assert pos < end, "no audio after the ID3 tag"
    while pos < end:
        assert end - pos >= 4, f"{end - pos} stray bytes at offset {pos}"
        h = int.from_bytes(data[pos : pos + 4], "big")
        assert h >> 21 == 0x7FF, f"no frame sync at offset {pos}: {data[pos:pos + 4].hex()}"
        version = (h >> 19) & 0b11
        layer = (h >> 17) & 0b11
        assert version == 0b11, f"frame at {pos} is not MPEG-1 (version bits {version:02b})"
        assert layer == 0b01, f"frame at {pos} is not Layer III (layer bits {layer:02b})"
        bitrate_index = (h >> 12) & 0xF
        rate_index = (h >> 10) & 0b11
        assert 0 < bitrate_index < 15, f"bad bitrate index {bitrate_index} at {pos}"
        assert rate_index < 3, f"reserved sample-rate index at {pos}"
        padding = (h >> 9) & 1
        bitrate = _BITRATES[bitrate_index] * 1000
        rate = _MPEG1_RATES[rate_index]
        length = 144 * bitrate // rate + padding
        assert pos + length <= end, f"frame at {pos} runs past the end ({length} bytes)"
        yield Mp3Frame(pos, length, bitrate, rate, (h >> 6) & 0b11)
        pos += length


def check_mp3(data: bytes, *, duration: int) -> list[Mp3Frame]:
    """A valid 48 kHz stereo MPEG-1 Layer III file lasting ``duration`` s (within 1 s)."""
    frames = list(mp3_frames(data))
    assert {f.sample_rate for f in frames} == {48000}
    assert all(f.channel_mode != 3 for f in frames), "mono frames in a stereo song"
    seconds = len(frames) * SAMPLES_PER_FRAME / 48000
    assert abs(seconds - duration) <= 1.0, f"{len(frames)} frames = {seconds:.2f} s vs {duration} s"
    return frames


def check_wav(data: bytes, *, duration: int) -> np.ndarray:
    """A PCM WAV whose RIFF and data sizes match the bytes, 48 kHz stereo 16-bit, lasting
    ``duration`` s (within 1 s); returns the samples."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert int.from_bytes(data[4:8], "little") == len(data) - 8, "RIFF size does not match"
    pos, chunks = 12, {}
    while pos < len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        chunks[cid] = (pos + 8, size)
        if cid == b"data":
            assert pos + 8 + size == len(data), "data size does not reach the end of the file"
        pos += 8 + size + (size & 1)
    assert pos == len(data), "chunks do not tile the file"
    fmt_at, fmt_size = chunks[b"fmt "]
    fmt = data[fmt_at : fmt_at + fmt_size]
    tag, channels, rate, byte_rate, align, bits = (
        int.from_bytes(fmt[0:2], "little"), int.from_bytes(fmt[2:4], "little"),
        int.from_bytes(fmt[4:8], "little"), int.from_bytes(fmt[8:12], "little"),
        int.from_bytes(fmt[12:14], "little"), int.from_bytes(fmt[14:16], "little"),
    )
    assert (tag, channels, rate, bits) == (1, 2, 48000, 16)
    assert byte_rate == 48000 * 4 and align == 4
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 48000, 2)
        n = w.getnframes()
        pcm = w.readframes(n)
    assert len(pcm) == n * 4 == chunks[b"data"][1], "wave read fewer frames than the header says"
    assert abs(n / 48000 - duration) <= 1.0, f"{n} frames = {n / 48000:.2f} s vs {duration} s"
    return np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)


# ------------------------------------------------------------------------------- tests

PROMPT = "A calm acoustic song about autumn leaves and a long walk home"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:
        yield server


@pytest.fixture(scope="module")
def http(sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=120) as client:
        yield client


def _song(http: httpx.Client, path: str, fmt: str, *, gender: str = "female") -> tuple[dict, bytes]:
    r = http.post(path, json={"model": "fun-music-v1",
                              "input": {"prompt": PROMPT, "gender": gender, "format": fmt}})
    assert r.status_code == 200, r.text
    body = r.json()
    audio = httpx.get(body["output"]["audio"]["url"], timeout=60)
    assert audio.status_code == 200
    return body, audio.content


@pytest.fixture(scope="module")
def mp3_song(http: httpx.Client) -> tuple[dict, bytes]:
    return _song(http, GEN, "mp3")


def test_mp3_download_is_valid_mpeg_audio(mp3_song: tuple[dict, bytes]) -> None:
    body, data = mp3_song
    assert data[:3] == b"ID3"
    frames = check_mp3(data, duration=body["usage"]["duration"])
    assert len({f.length for f in frames}) <= 2  # constant bitrate: padding varies by one byte


def test_wav_download_header_matches_its_data(http: httpx.Client) -> None:
    body, data = _song(http, TTS, "wav", gender="male")
    samples = check_wav(data, duration=body["usage"]["duration"])
    # A song, not silence: the middle of it has real signal in both channels.
    middle = samples[len(samples) // 3 : 2 * len(samples) // 3].astype(np.float64)
    assert np.sqrt((middle**2).mean(axis=0)).min() > 100


def test_streamed_wav_chunks_are_about_one_second_each(http: httpx.Client) -> None:
    with http.stream("POST", GEN, headers={"X-DashScope-SSE": "enable"},
                     json={"model": "fun-music-v1",
                           "input": {"prompt": PROMPT, "format": "wav"}}) as r:
        raw = r.read()
    events = [json.loads(block.split(b"\ndata:", 1)[1]) for block in raw.split(b"\n\n") if block]
    chunks = [base64.b64decode(e["output"]["audio"]["data"]) for e in events[:-1]]
    duration = events[-1]["usage"]["duration"]
    check_wav(b"".join(chunks), duration=duration)
    # Every chunk but the first (header) and the last (the rest) holds ~1 s of 48 kHz stereo.
    for chunk in chunks[1:-1]:
        assert 0.5 * 192000 <= len(chunk) <= 1.5 * 192000
    assert abs(len(chunks) - duration) <= 2


def test_mp3_parser_rejects_a_torn_file(mp3_song: tuple[dict, bytes]) -> None:
    # The checker must be able to fail: cut a frame in half, or corrupt a sync word.
    body, data = mp3_song
    frames = list(mp3_frames(data))
    with pytest.raises(AssertionError):
        list(mp3_frames(data[: frames[5].offset + 7]))
    broken = bytearray(data)
    broken[frames[3].offset] = 0
    with pytest.raises(AssertionError, match="no frame sync"):
        list(mp3_frames(bytes(broken)))
    with pytest.raises(AssertionError):
        check_mp3(data, duration=body["usage"]["duration"] + 5)
