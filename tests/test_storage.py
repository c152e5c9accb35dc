"""The output directory: names, no overwriting, sidecars for finished and partial songs."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from funmusic_jupyter._errors import GenerationCancelled, StreamInterruptedError
from funmusic_jupyter._models import Song, sidecar_path
from funmusic_jupyter._storage import (
    first_line,
    output_directory,
    save_partial,
    save_song,
    slugify,
    unique_path,
)
from funmusic_jupyter._validation import build_request

LYRICS = "[intro]\n\n[verse]\nMorning sunlight slips through the curtain,\nCoffee fills the room."
NAME = re.compile(r"^\d{8}-\d{6}_(?P<slug>[^_]+)(?:_(?P<rid>[^_.]+))?(?:-\d+)?\.")


def make_song(request_id: str | None = "3fa2b1c8-77aa-4bcd-9e0f-001122334455") -> Song:
    return Song(
        audio=b"ID3 fake mp3 bytes",
        format="mp3",
        lyrics=LYRICS,
        sample_rate=48000,
        channels=2,
        duration=30,
        request_id=request_id,
        audio_id="audio_1",
        url=None,
        expires_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        time_to_first_audio=None,
        total_time=1.0,
        request=build_request(lyrics=LYRICS),
    )


def test_first_line_skips_tags_and_blank_lines() -> None:
    assert first_line(LYRICS) == "Morning sunlight slips through the curtain,"
    assert first_line("  a prompt  \nsecond") == "a prompt"
    assert first_line("[verse]\n") == ""


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Morning sunlight slips through the curtain,", "morning-sunlight-slips-through-the"),
        ("Rock & Roll!!  tonight", "rock-roll-tonight"),
        ("雨夜的钢琴 piano", "雨夜的钢琴-piano"),
        ("../../etc/passwd", "etc-passwd"),
        ("under_score", "under-score"),
        ("!!!", "song"),
        ("a" * 50, "a" * 40),
        ("", "song"),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


def test_save_song_names_and_sidecar(tmp_path: Path) -> None:
    song = make_song()
    path = save_song(song, tmp_path / "out")
    assert path.parent == (tmp_path / "out").resolve()
    match = NAME.match(path.name)
    assert match, path.name
    assert match["slug"] == "morning-sunlight-slips-through-the"
    assert match["rid"] == "3fa2b1c8"
    assert path.suffix == ".mp3"
    assert path.read_bytes() == song.audio
    meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    assert meta["complete"] is True
    assert meta["request_id"] == song.request_id
    assert song.saved_path == path


def test_never_overwrites(tmp_path: Path) -> None:
    paths = [save_song(make_song(), tmp_path) for _ in range(3)]
    assert len(set(paths)) == 3
    assert all(p.read_bytes() == b"ID3 fake mp3 bytes" for p in paths)
    assert len(list(tmp_path.glob("*.json"))) == 3
    # A stem whose sidecar alone exists is not reused either.
    (tmp_path / "x.json").write_text("{}")
    assert unique_path(tmp_path, "x", ".mp3").name == "x-2.mp3"


def test_concurrent_saves_get_distinct_names(tmp_path: Path) -> None:
    songs = [make_song() for _ in range(8)]
    threads = [threading.Thread(target=save_song, args=(s, tmp_path)) for s in songs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({s.saved_path for s in songs}) == 8
    assert len(list(tmp_path.glob("*.mp3"))) == 8


def test_no_request_id(tmp_path: Path) -> None:
    path = save_song(make_song(request_id=None), tmp_path)
    match = NAME.match(path.name)
    assert match and match["rid"] is None


def test_save_partial_writes_audio_and_incomplete_sidecar(tmp_path: Path) -> None:
    request = build_request(lyrics=LYRICS, format="wav")
    error = StreamInterruptedError(
        "the connection broke", request_id="abcdef12-3456", partial_audio=b"RIFF"
    )
    path = save_partial(b"RIFF....partial", request, error, tmp_path, simulated=True, elapsed=1.5)
    assert path.name.endswith("_abcdef12.partial.wav")
    assert path.read_bytes() == b"RIFF....partial"
    meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    assert sidecar_path(path).name.endswith(".partial.json")
    assert meta["complete"] is False
    assert meta["simulated"] is True
    assert meta["bytes"] == len(b"RIFF....partial")
    assert meta["mime_type"] == "audio/wav"
    assert meta["request_id"] == "abcdef12-3456"
    assert meta["elapsed"] == 1.5
    assert meta["error"] == {
        "type": "StreamInterruptedError",
        "status_code": None,
        "code": None,
        "message": "the connection broke",
        "request_id": "abcdef12-3456",
    }
    assert meta["request"]["lyrics"] == request.text


def test_save_partial_for_a_cancelled_song(tmp_path: Path) -> None:
    request = build_request(prompt="a quiet song")
    path = save_partial(b"abc", request, GenerationCancelled("stopped"), tmp_path)
    meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    assert path.name.endswith(".partial.mp3")
    assert meta["error"] == {"type": "GenerationCancelled", "message": "stopped"}
    assert meta["request_id"] is None


def test_output_directory_default_is_relative_and_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert output_directory() == Path("funmusic-output")
    assert (tmp_path / "funmusic-output").is_dir()
    assert output_directory(tmp_path / "a" / "b").is_dir()
