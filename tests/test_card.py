"""The song's lasting record: notebook size, the MP3 preview, peaks, partial songs, the hand-off.

The long-song tests use a real 200 s song from the simulator's music engine (made once per
module: about 10 s of synthesis), because size targets only mean something for real audio.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import wave
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import lameenc
import numpy as np
import pytest

from funmusic_jupyter import _render
from funmusic_jupyter._card import DEFAULT_EMBED_LIMIT
from funmusic_jupyter._errors import GenerationCancelled, ServerError, StreamInterruptedError
from funmusic_jupyter._models import Song, sidecar_path
from funmusic_jupyter._preview import PREVIEW_BUDGET, preview_bitrate
from funmusic_jupyter._storage import save_partial
from funmusic_jupyter._validation import build_request
from funmusic_jupyter._wav import repair_wav, wav_layout
from funmusic_jupyter._waveform import analyse, song_peaks, waveform_png
from funmusic_jupyter.simulator._encode import encode_all, wav_header
from funmusic_jupyter.simulator._music import Arrangement, arrange

NOTEBOOK_BUDGET = 6_000_000  # bytes a 200 s song may add to the .ipynb
RATE = 48_000
LINES = (
    "Morning light on the kitchen floor",
    "Coffee steam and an open door",
    "Sing it loud and sing it slow",
    "Every road will lead us home",
)


def _lyrics(lines: int) -> str:
    body = [LINES[i % len(LINES)] for i in range(lines)]
    return "\n".join(
        f"[{'verse' if n % 2 == 0 else 'chorus'}]\n" + "\n".join(body[i : i + 4])
        for n, i in enumerate(range(0, lines, 4))
    )


def _arrangement(seconds: float) -> tuple[Arrangement, str]:
    for lines in range(4, 200, 2):
        lyrics = _lyrics(lines)
        arr = arrange(lyrics=lyrics, gender="female", prompt="upbeat summer pop")
        if arr.duration >= seconds:
            return arr, lyrics
    raise AssertionError("no arrangement that long")


def _song(audio: bytes, fmt: str, lyrics: str, seconds: float, **fields: object) -> Song:
    values: dict[str, object] = {
        "audio": audio,
        "format": fmt,
        "lyrics": lyrics,
        "sample_rate": RATE,
        "channels": 2,
        "duration": round(seconds),
        "request_id": "req-0f3a9c",
        "audio_id": "audio_abc123",
        "url": None,
        "expires_at": datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc),
        "time_to_first_audio": 0.25,
        "total_time": 3.5,
        "request": build_request(lyrics=lyrics, format=fmt),
        "simulated": True,
    }
    values.update(fields)
    return Song(**values)  # type: ignore[arg-type]


def _mp3_of(wav: bytes, kbps: int = 128) -> bytes:
    """What the simulator sends for MP3 (128 kbps, LAME quality 7), from the same samples."""
    layout = wav_layout(wav)
    assert layout is not None
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(layout.sample_rate)
    encoder.set_channels(layout.channels)
    encoder.set_quality(7)
    pcm = wav[layout.data_offset : layout.data_offset + layout.data_size]
    return bytes(encoder.encode(pcm)) + bytes(encoder.flush())


@pytest.fixture(scope="module")
def long_song() -> Iterator[tuple[bytes, bytes, str, float]]:
    """(wav, mp3, lyrics, seconds) of a real ~200 s simulated song."""
    arr, lyrics = _arrangement(198.0)
    wav = encode_all(arr, "wav")
    yield wav, _mp3_of(wav), lyrics, arr.duration


def _embedded(html: str) -> list[tuple[str, bytes]]:
    """Every audio data URI in the card: (MIME type, bytes)."""
    return [
        (mime, base64.b64decode(data))
        for mime, data in re.findall(r'src="data:(audio/[a-z0-9.+-]+);base64,([^"]+)"', html)
    ]


# -- notebook size and the preview --------------------------------------------------------------
def test_a_200_s_wav_song_adds_at_most_6_mb_and_its_audio_once(
    long_song: tuple[bytes, bytes, str, float], tmp_path: Path
) -> None:
    wav, _, lyrics, seconds = long_song
    assert seconds >= 198 and len(wav) > 35_000_000  # 48 kHz stereo 16-bit
    song = _song(wav, "wav", lyrics, seconds)
    saved = song.save(tmp_path / "funmusic-output" / "night drive.wav")
    bundle = _render.song_bundle(song, base_dir=tmp_path)
    size = len(json.dumps(bundle))
    assert size <= NOTEBOOK_BUDGET, f"{size:,} bytes"
    html = bundle["text/html"]
    ((mime, preview),) = _embedded(html)  # one audio, and it is the MP3 preview
    assert mime == "audio/mpeg"
    assert html.count("base64,") == 2  # the preview and the waveform picture, nothing else
    assert base64.b64encode(wav[1000:1300]).decode() not in html
    shape = analyse(preview, "mp3")
    assert shape.sample_rate == RATE and shape.seconds == pytest.approx(seconds, abs=0.2)
    # The note says it is a preview, and links the full WAV relative to the notebook's folder.
    assert "Preview: an MP3 at 160 kbps" in html
    assert 'href="funmusic-output/night%20drive.wav"' in html
    assert ">funmusic-output/night drive.wav</a>" in html
    assert saved.read_bytes() == wav
    # text/plain stays the same whatever the embedding.
    assert bundle["text/plain"] == song.summary()


def test_a_200_s_mp3_song_is_embedded_whole_once(
    long_song: tuple[bytes, bytes, str, float],
) -> None:
    _, mp3, lyrics, seconds = long_song
    html = _render.song_html(_song(mp3, "mp3", lyrics, seconds))
    assert _embedded(html) == [("audio/mpeg", mp3)]
    assert "Preview" not in html
    assert len(json.dumps({"text/html": html})) <= NOTEBOOK_BUDGET


def test_embed_limit_decides_for_wav_only(tmp_path: Path) -> None:
    arr, lyrics = _arrangement(4.0)
    wav = encode_all(arr, "wav")
    song = _song(wav, "wav", lyrics, arr.duration)
    assert _embedded(_render.song_html(song)) == [("audio/wav", wav)]  # under the default
    small = _render.song_html(song, embed_limit=len(wav) - 1)
    ((mime, _),) = _embedded(small)
    assert mime == "audio/mpeg"
    assert "The full WAV is not saved" in small  # never saved: nothing to link
    mp3 = _mp3_of(wav)
    assert _embedded(_render.song_html(_song(mp3, "mp3", lyrics, 4), embed_limit=0)) == [
        ("audio/mpeg", mp3)
    ]
    # Song's own display takes the limit too.
    bundle = song._repr_mimebundle_(embed_limit=0)
    assert _embedded(bundle["text/html"])[0][0] == "audio/mpeg"
    assert DEFAULT_EMBED_LIMIT == 8_000_000


def test_preview_bitrate_keeps_the_notebook_budget() -> None:
    assert preview_bitrate(200) == 160  # 5.33 MB of base64
    assert preview_bitrate(30) == 192
    assert preview_bitrate(250) == 128
    for seconds in (10, 100, 200, 240, 300, 600):
        kbps = preview_bitrate(seconds)
        assert kbps * 1000 / 8 * seconds * 4 / 3 <= PREVIEW_BUDGET or kbps == 32


# -- peaks ------------------------------------------------------------------------------------
def _wav_file(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(samples.shape[1])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def test_peaks_of_a_known_pattern() -> None:
    # Segments of 48 blocks of 1024 frames, so no block straddles two of them.
    t = np.arange(48 * 1024) / RATE
    tone = np.sin(2 * np.pi * 440 * t)
    silence = np.zeros(len(t))
    mono = np.concatenate([silence, 0.5 * tone, silence, 0.25 * tone]) * 32767
    stereo = np.stack([mono, mono], axis=1)
    assert song_peaks(_wav_file(stereo), "wav", 4) == pytest.approx([0, 0.5, 0, 0.25], abs=0.01)
    # Channels are mixed to their mean: one silent channel halves the peak.
    half = np.stack([mono, np.zeros_like(mono)], axis=1)
    assert song_peaks(_wav_file(half), "wav", 4) == pytest.approx([0, 0.25, 0, 0.125], abs=0.01)
    # More bars than blocks, and empty audio.
    assert len(song_peaks(_wav_file(stereo[:100]), "wav", 50)) == 50
    assert song_peaks(_wav_file(stereo[:0]), "wav", 3) == [0.0, 0.0, 0.0]


def test_mp3_and_wav_of_one_song_give_close_peaks(
    long_song: tuple[bytes, bytes, str, float],
) -> None:
    wav, mp3, _, _ = long_song
    from_wav = np.array(song_peaks(wav, "wav", 240))
    from_mp3 = np.array(song_peaks(mp3, "mp3", 240))
    assert from_wav.max() > 0.3  # a real song, not silence
    assert np.mean(np.abs(from_wav - from_mp3)) < 0.06
    assert np.corrcoef(from_wav, from_mp3)[0, 1] > 0.95


def test_waveform_is_a_small_png_in_the_card(long_song: tuple[bytes, bytes, str, float]) -> None:
    _, mp3, lyrics, seconds = long_song
    png = waveform_png(song_peaks(mp3, "mp3"))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) < 3000
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (480, 40)
    html = _render.song_html(_song(mp3, "mp3", lyrics, seconds))
    (src,) = re.findall(r'<img class="funmusic-waveform" alt="[^"]*" src="([^"]+)"', html)
    assert base64.b64decode(src.split(",", 1)[1]) == png
    assert "<svg" not in html  # JupyterLab's sanitizer would drop it in untrusted notebooks


# -- partial songs ----------------------------------------------------------------------------
def _cut_wav(seconds: float = 3.0, cut: float = 1.0) -> tuple[bytes, int]:
    """A streamed WAV cut mid-stream (and mid-frame): its header announces ``seconds``."""
    total = int(seconds * RATE)
    pcm = (np.sin(np.arange(total * 2) / 30.0) * 8000).astype("<i2").tobytes()
    head = wav_header(total, RATE, 2)
    return head + pcm[: int(cut * RATE) * 4 + 3], int(cut * RATE)


def test_a_cut_wav_gets_a_true_header() -> None:
    cut, frames = _cut_wav()
    with wave.open(io.BytesIO(cut)) as broken:  # the header promises the whole 3 s
        assert broken.getnframes() == 3 * RATE
    fixed = repair_wav(cut)
    assert len(fixed) == len(cut)
    with wave.open(io.BytesIO(fixed)) as reader:
        assert reader.getnframes() == frames
        assert reader.getframerate() == RATE and reader.getnchannels() == 2
        assert len(reader.readframes(frames)) == frames * 4
    layout = wav_layout(fixed)
    assert layout is not None and fixed[layout.data_offset :] == cut[layout.data_offset :]
    assert repair_wav(fixed) is fixed  # already right: untouched
    assert repair_wav(b"ID3 not a wav") == b"ID3 not a wav"


def test_a_saved_partial_wav_is_repaired(tmp_path: Path) -> None:
    cut, frames = _cut_wav()
    request = build_request(lyrics="[verse]\nla la la", format="wav")
    path = save_partial(cut, request, GenerationCancelled("stopped"), tmp_path)
    with wave.open(str(path)) as reader:
        assert reader.getnframes() == frames
    assert json.loads(sidecar_path(path).read_text())["header_repaired"] is True


def test_a_stop_is_neutral_and_plays_the_partial_song(tmp_path: Path) -> None:
    cut, frames = _cut_wav(seconds=30.0, cut=23.2)
    error = GenerationCancelled("stopped before the song was finished", partial_audio=cut)
    path = tmp_path / "out" / "song.partial.wav"
    path.parent.mkdir()
    path.write_bytes(repair_wav(cut))
    bundle = _render.error_bundle(
        error, partial_path=path, title="[verse]\nRain", base_dir=tmp_path
    )
    html = bundle["text/html"]
    assert 'class="funmusic-stopped"' in html
    assert "Stopped at 23 s: partial song saved to " in html
    link = '<a href="out/song.partial.wav" class="funmusic-partial-link">out/song.partial.wav</a>'
    assert link in html
    assert "funmusic-error" not in html and "217, 83, 79" not in html and "✕" not in html
    assert "Cancelled" not in html and "GenerationCancelled" not in html
    assert 'class="funmusic-partial"' in html and "PARTIAL" in html
    ((mime, embedded),) = _embedded(html)
    assert mime == "audio/wav"
    with wave.open(io.BytesIO(embedded)) as reader:  # what the browser gets has a true header
        assert reader.getnframes() == frames
    assert bundle["text/plain"] == "Song stopped (partial audio saved)"


def test_a_failure_stays_red_and_still_offers_the_partial_audio(
    long_song: tuple[bytes, bytes, str, float],
) -> None:
    _, mp3, _, seconds = long_song
    partial = mp3[: len(mp3) // 2 + 77]  # cut mid-frame: plays as it is
    error = StreamInterruptedError("the connection broke", request_id="r-1", partial_audio=partial)
    html = _render.error_html(error, partial_path=Path("/elsewhere/x.partial.mp3"), title="Hi")
    assert 'class="funmusic-error"' in html and "217, 83, 79" in html
    assert "Song failed: Hi" in html
    assert "PARTIAL" in html
    assert _embedded(html) == [("audio/mpeg", partial)]
    match = re.search(r"The first (\d+) s arrived", html)
    assert match and abs(int(match.group(1)) - seconds / 2) <= 2
    # No audio at all: the red box says so, and has no player.
    empty = _render.error_html(ServerError("boom", status_code=500, code="InternalError"))
    assert "none arrived" in empty and "<audio" not in empty


# -- the hand-off to the live player ----------------------------------------------------------
def test_handoff_attribute_only_when_asked() -> None:
    arr, lyrics = _arrangement(4.0)
    song = _song(_mp3_of(encode_all(arr, "wav")), "mp3", lyrics, 4)
    plain = _render.song_html(song)
    assert "data-funmusic-handoff" not in plain
    assert plain == _render.song_html(song)  # deterministic: checked notebooks compare it
    marked = _render.song_html(song, handoff_id='job-7"<x')
    (audio,) = re.findall(r"<audio [^>]*>", marked)
    assert 'data-funmusic-handoff="job-7&quot;&lt;x"' in audio
    stopped = GenerationCancelled("stopped", partial_audio=song.audio[:5000])
    (partial_audio,) = re.findall(r"<audio [^>]*>", _render.error_html(stopped, handoff_id="j"))
    assert 'data-funmusic-handoff="j"' in partial_audio
    assert "data-funmusic-handoff" not in _render.error_html(stopped)


# -- a saved notebook exported with nbconvert ----------------------------------------------------
def test_the_card_survives_nbconvert_html_with_its_player_lyrics_and_waveform(
    long_song: tuple[bytes, bytes, str, float],
) -> None:
    """The song's record renders with no kernel: ``jupyter nbconvert --to html`` keeps the
    player (audio data on the ``<audio>`` itself), the lyrics and the waveform picture."""
    import nbconvert
    import nbformat
    _, mp3, lyrics, seconds = long_song
    song = _song(mp3, "mp3", lyrics, seconds)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%%funmusic --wait\n" + lyrics)
    cell.outputs = [nbformat.v4.new_output("display_data", data=_render.song_bundle(song))]
    nb.cells.append(cell)
    html, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert _embedded(html) == [("audio/mpeg", mp3)]
    assert re.search(r'<audio[^>]*src="data:audio/mpeg;base64,', html)
    assert "Coffee steam and an open door" in html
    assert re.search(r'<img[^>]*src="data:image/png;base64,', html)  # the waveform
