"""Tests for the simulator's lyrics, arrangement, synthesis and encoding engine."""

from __future__ import annotations

import io
import math
import re
import struct
import wave

import numpy as np
import pytest

from funmusic_jupyter.simulator import _synth
from funmusic_jupyter.simulator._encode import COMMENT, TITLE, encode, encode_all
from funmusic_jupyter.simulator._lyrics import KNOWN_TAGS, parse_sections, syllables, write_lyrics
from funmusic_jupyter.simulator._music import Arrangement, arrange
from funmusic_jupyter.simulator._synth import render

SR = 48000

SHORT = """[verse]
Morning sunlight slips through the curtain,
Coffee aroma fills up the room.

[chorus]
Take it easy, there's no hurry,
Life should be this carefree.
"""

VENDOR = """[verse]
Morning sunlight slips through the curtain,
Coffee aroma fills up the room.
Open the book left unfinished yesterday,
Time quietly drifts by this way.

[chorus]
Take it slow, there's no hurry,
Life should be this carefree.
Toss your worries into the wind,
Embrace every sunny day and rainy season.
"""


def _han_ratio(text: str) -> float:
    han = len(re.findall(r"[\u4e00-\u9fff]", text))
    latin = len(re.findall(r"[A-Za-z]", text))
    return han / max(1, han + latin)


@pytest.fixture(scope="module")
def short_arr() -> Arrangement:
    return arrange(lyrics=SHORT, gender="female", prompt="gentle acoustic morning")


@pytest.fixture(scope="module")
def short_pcm(short_arr: Arrangement) -> np.ndarray:
    return np.concatenate(list(render(short_arr)))


# ----------------------------------------------------------------------- lyrics


def test_write_lyrics_english_structure_and_words() -> None:
    prompt = "an upbeat summer song about the ocean and old friends"
    text = write_lyrics(prompt)
    sections = parse_sections(text)
    tags = [tag for tag, _ in sections]
    assert "verse" in tags and "chorus" in tags
    assert re.search(r"^\[(verse|chorus|bridge)\]$", text, re.M)
    assert "\n\n[" in text  # blank line between sections
    lines = [line for _, ls in sections for line in ls]
    assert 8 <= len(lines) <= 16
    assert _han_ratio(text) == 0.0
    low = text.lower()
    used = [w for w in ("upbeat", "summer", "ocean", "friends") if w in low]
    assert len(used) >= 3, used


def test_write_lyrics_chinese() -> None:
    prompt = "忧伤的钢琴曲，雨夜的思念"
    text = write_lyrics(prompt)
    body = re.sub(r"\[[a-z]+\]", "", text)
    assert _han_ratio(body) > 0.95
    assert "[verse]" in text and "[chorus]" in text
    for word in ("钢琴曲", "雨夜", "思念"):
        assert word in text
    lines = [line for _, ls in parse_sections(text) for line in ls]
    assert 8 <= len(lines) <= 16


def test_write_lyrics_deterministic_and_prompt_specific() -> None:
    a = write_lyrics("a calm song about mountains and rivers")
    assert a == write_lyrics("a calm song about mountains and rivers")
    assert a != write_lyrics("a calm song about deserts and stars")
    assert write_lyrics("雨夜") != write_lyrics("夏日")


def test_parse_sections() -> None:
    text = "loose line\n\n[Verse 1]\nA\n\nB\n[pre-chorus]\nC\n[intro]\n[CHORUS]\nD\n"
    assert parse_sections(text) == [
        ("verse", ["loose line"]),
        ("verse", ["A", "B"]),
        ("verse", ["C"]),
        ("intro", []),
        ("chorus", ["D"]),
    ]
    assert all(tag in KNOWN_TAGS for tag, _ in parse_sections(VENDOR))
    assert parse_sections("") == []


def test_syllables_english_and_chinese() -> None:
    assert syllables("Morning sunlight") == ["Mor", "ning", "sun", "light"]
    assert len(syllables("Time quietly drifts by this way.")) >= 6
    assert syllables("there's no time") == ["there's", "no", "time"]
    assert syllables("a b c") == ["a", "b", "c"]  # at least one per word
    assert syllables("123, !!") == []
    assert syllables("雨夜的思念，2024！") == ["雨", "夜", "的", "思", "念"]
    assert len(syllables("Hello 世界")) == 4


# ------------------------------------------------------------------ arrangement


def test_duration_clamped_and_follows_lyrics() -> None:
    one = arrange(lyrics="[verse]\nHello there", gender="female")
    assert 30.0 <= one.duration <= 34.0
    long_lyrics = "[verse]\n" + "\n".join(
        f"Line number {i} goes on and on tonight" for i in range(200)
    )
    big = arrange(lyrics=long_lyrics, gender="male")
    assert 200.0 <= big.duration <= 240.0
    assert big.total_frames <= 240 * SR
    eight = arrange(lyrics=VENDOR, gender="female")
    sixteen = arrange(
        lyrics=VENDOR + "\n" + VENDOR.replace("[chorus]", "[bridge]"), gender="female"
    )
    assert eight.duration > 30.0
    assert sixteen.duration > eight.duration + 20.0
    assert eight.duration == pytest.approx(eight.total_frames / eight.sample_rate)
    assert (eight.sample_rate, eight.channels) == (48000, 2)


def test_tempo_and_mode_from_mood() -> None:
    fast = arrange(lyrics=SHORT, gender="female", prompt="upbeat dance party")
    slow = arrange(lyrics=SHORT, gender="female", prompt="melancholic rainy night")
    zh_slow = arrange(lyrics=SHORT, gender="female", prompt="忧伤的钢琴曲，雨夜的思念")
    mid = arrange(lyrics=SHORT, gender="female", prompt="a song about my cat")
    assert 120 <= fast.tempo_bpm <= 135 and not fast.minor
    assert 65 <= slow.tempo_bpm <= 85 and slow.minor
    assert zh_slow.minor and zh_slow.tempo_bpm < 90
    assert 90 <= mid.tempo_bpm <= 110 and not mid.minor
    assert fast.tempo_bpm > mid.tempo_bpm > slow.tempo_bpm
    # Fewer bars per second at a slower tempo -> the same lyrics last longer.
    assert slow.duration > fast.duration


def test_one_note_per_syllable_last_held_longer(short_arr: Arrangement) -> None:
    sung = [s for s in short_arr.sections if s.lines]
    for section in sung:
        notes = section.notes
        expected = sum(len(syllables(line)) for line in section.lines)
        assert len(notes) == expected
        assert [n.syllable for n in notes] == [x for line in section.lines for x in syllables(line)]
        i = 0
        for line in section.lines:
            count = len(syllables(line))
            line_notes = notes[i : i + count]
            assert line_notes[-1].gate > max(n.gate for n in line_notes[:-1])
            i += count


def test_male_sings_an_octave_below_female() -> None:
    female = arrange(lyrics=VENDOR, gender="female", prompt="pop")
    male = arrange(lyrics=VENDOR, gender="male", prompt="pop")
    f_notes = [n.midi for s in female.sections for n in s.notes]
    m_notes = [n.midi for s in male.sections for n in s.notes]
    assert len(f_notes) == len(m_notes) > 0
    assert all(m == f - 12 for f, m in zip(f_notes, m_notes, strict=True))
    assert female.total_frames == male.total_frames


def test_chorus_melody_higher_than_verse() -> None:
    arr = arrange(lyrics=VENDOR, gender="female", prompt="pop")
    verse = [n.midi for s in arr.sections if s.tag == "verse" for n in s.notes]
    chorus = [n.midi for s in arr.sections if s.tag == "chorus" for n in s.notes]
    assert sum(chorus) / len(chorus) > sum(verse) / len(verse) + 1.5


def test_arrange_deterministic() -> None:
    first = arrange(lyrics=VENDOR, gender="male", prompt="x")
    assert first == arrange(lyrics=VENDOR, gender="male", prompt="x")
    with pytest.raises(ValueError):
        arrange(lyrics=VENDOR, gender="robot")


# --------------------------------------------------------------------- render


def test_render_blocks(short_arr: Arrangement, short_pcm: np.ndarray) -> None:
    blocks = list(render(short_arr, block_frames=48000))
    assert all(b.dtype == np.int16 and b.ndim == 2 and b.shape[1] == 2 for b in blocks)
    assert all(0 < b.shape[0] <= 48000 for b in blocks)
    assert sum(b.shape[0] for b in blocks) == short_arr.total_frames
    assert short_pcm.shape == (short_arr.total_frames, 2)
    rms = float(np.sqrt(np.mean(short_pcm.astype(np.float64) ** 2)))
    assert rms > 2000.0  # clearly audible, not a near-silent beep
    # No clipping: never three consecutive samples pinned at full scale.
    pinned = np.abs(short_pcm.astype(np.int32)) >= 32767
    run = pinned[:-2] & pinned[1:-1] & pinned[2:]
    assert not run.any()
    # The two channels differ (a real stereo mix, not duplicated mono).
    assert not np.array_equal(short_pcm[:, 0], short_pcm[:, 1])
    # Starts and ends quietly (fade in/out, no click at the ends).
    assert np.abs(short_pcm[0]).max() < 200 and np.abs(short_pcm[-1]).max() < 200


def test_render_block_size_independent(short_arr: Arrangement, short_pcm: np.ndarray) -> None:
    other = np.concatenate(list(render(short_arr, block_frames=12345)))
    assert np.array_equal(short_pcm, other)


def test_render_is_lazy(short_arr: Arrangement, monkeypatch: pytest.MonkeyPatch) -> None:
    windows: list[tuple[int, int]] = []
    real = _synth._render_block

    def spy(*args: object) -> np.ndarray:
        windows.append((args[4], args[5]))  # type: ignore[arg-type]
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_synth, "_render_block", spy)
    gen = render(short_arr, block_frames=4800)
    assert windows == []  # nothing synthesized before the first block is asked for
    first = next(gen)
    assert first.shape == (4800, 2)
    assert windows == [(0, 4800)]  # only that block's window was synthesized
    next(gen)
    assert windows == [(0, 4800), (4800, 9600)]
    gen.close()


def test_chorus_fuller_than_verse() -> None:
    arr = arrange(lyrics=VENDOR, gender="female", prompt="pop")
    pcm = np.concatenate(list(render(arr))).astype(np.float64)

    def rms(tag: str) -> float:
        spans = [pcm[s.start_frame : s.end_frame] for s in arr.sections if s.tag == tag]
        return float(np.sqrt(np.mean(np.concatenate(spans) ** 2)))

    def width(tag: str) -> float:
        seg = np.concatenate(
            [pcm[s.start_frame : s.end_frame] for s in arr.sections if s.tag == tag]
        )
        side = (seg[:, 0] - seg[:, 1]) / 2
        mid = (seg[:, 0] + seg[:, 1]) / 2
        return float(np.sqrt(np.mean(side**2)) / np.sqrt(np.mean(mid**2)))

    assert rms("chorus") > 1.1 * rms("verse")
    assert width("chorus") > width("verse")
    kinds = {
        tag: {e.kind for s in arr.sections if s.tag == tag for e in s.events}
        for tag in ("verse", "chorus")
    }
    assert kinds["chorus"] > kinds["verse"]
    assert {"lead", "pad", "bass", "kick", "snare", "hat"} <= kinds["verse"]


# --------------------------------------------------------------------- encode


def _skip_id3(data: bytes) -> tuple[bytes, int]:
    assert data[:3] == b"ID3" and data[3] == 3  # ID3v2.3
    size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
    return data[10 : 10 + size], 10 + size


_BITRATES = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]


def _mp3_frames(data: bytes, pos: int) -> int:
    frames = 0
    while pos < len(data):
        assert pos + 4 <= len(data), "truncated frame header"
        b0, b1, b2, _b3 = data[pos : pos + 4]
        assert b0 == 0xFF and (b1 & 0xE0) == 0xE0, f"bad sync at {pos}"
        assert (b1 >> 3) & 3 == 3, "not MPEG-1"
        assert (b1 >> 1) & 3 == 1, "not Layer III"
        bitrate_index = b2 >> 4
        assert 1 <= bitrate_index <= 14
        assert (b2 >> 2) & 3 == 1, "not 48 kHz"
        padding = (b2 >> 1) & 1
        length = 144 * _BITRATES[bitrate_index] * 1000 // 48000 + padding
        assert pos + length <= len(data), "frame runs past the end"
        pos += length
        frames += 1
    assert pos == len(data)
    return frames


def test_encode_mp3(short_arr: Arrangement) -> None:
    chunks = list(encode(short_arr, "mp3"))
    data = b"".join(chunks)
    tag, start = _skip_id3(data)
    assert TITLE.encode() in tag and COMMENT.encode() in tag
    assert b"TIT2" in tag and b"COMM" in tag and b"TXXX" in tag
    frames = _mp3_frames(data, start)
    assert abs(frames * 1152 / 48000 - short_arr.duration) < 1.0
    # Streaming: one chunk per second of audio, each carrying MPEG data.
    assert len(chunks) == math.ceil(short_arr.total_frames / SR)
    assert all(len(c) > 1000 for c in chunks)
    assert data == encode_all(short_arr, "mp3")


def test_encode_wav(short_arr: Arrangement, short_pcm: np.ndarray) -> None:
    chunks = list(encode(short_arr, "wav", chunk_seconds=2.0))
    data = b"".join(chunks)
    assert len(chunks) == math.ceil(short_arr.total_frames / (2 * SR))
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    # Walk the chunks: fmt, LIST/INFO (before data) and data, with exact sizes.
    pos, seen = 12, []
    while pos < len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        seen.append(cid)
        if cid == b"fmt ":
            fmt_tag, ch, rate, _brate, align, bits = struct.unpack("<HHIIHH", body[:16])
            assert (fmt_tag, ch, rate, align, bits) == (1, 2, 48000, 4, 16)
        elif cid == b"LIST":
            assert body[:4] == b"INFO" and COMMENT.encode() in body
        elif cid == b"data":
            assert size == short_arr.total_frames * 4
            assert np.array_equal(np.frombuffer(body, dtype="<i2").reshape(-1, 2), short_pcm)
        pos += 8 + size + (size % 2)
    assert seen == [b"fmt ", b"LIST", b"data"]
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 48000)
        assert w.getnframes() == short_arr.total_frames
        assert len(w.readframes(w.getnframes())) == short_arr.total_frames * 4


def test_encode_deterministic_and_gender_sensitive(short_arr: Arrangement) -> None:
    again = arrange(lyrics=SHORT, gender="female", prompt="gentle acoustic morning")
    assert encode_all(short_arr, "mp3") == encode_all(again, "mp3")
    male = arrange(lyrics=SHORT, gender="male", prompt="gentle acoustic morning")
    assert encode_all(male, "wav") != encode_all(short_arr, "wav")
    assert encode_all(male, "mp3") != encode_all(short_arr, "mp3")
    with pytest.raises(ValueError):
        encode_all(short_arr, "ogg")
