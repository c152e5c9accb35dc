"""Song: metadata, the sidecar written by save(), and the deterministic text summary."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

from funmusic_jupyter._models import Song, mime_type_for, sidecar_path
from funmusic_jupyter._validation import build_request

LYRICS = "[verse]\nMorning sunlight slips through the curtain,\nCoffee aroma fills up the room."


def make_song(**overrides: object) -> Song:
    fields: dict[str, object] = {
        "audio": b"ID3\x03fake-but-bytes",
        "format": "mp3",
        "lyrics": LYRICS,
        "sample_rate": 48000,
        "channels": 2,
        "duration": 62,
        "request_id": "req-123",
        "audio_id": "audio_abc",
        "url": "http://127.0.0.1:1/oss/x.mp3?Expires=1",
        "expires_at": datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc),
        "time_to_first_audio": 0.25,
        "total_time": 3.5,
        "request": build_request(lyrics=LYRICS),
        "simulated": True,
    }
    fields.update(overrides)
    return Song(**fields)  # type: ignore[arg-type]


def test_mime_types() -> None:
    assert mime_type_for("mp3") == "audio/mpeg"
    assert mime_type_for("wav") == "audio/wav"
    assert make_song(format="wav").mime_type == "audio/wav"


def test_save_writes_audio_and_sidecar(tmp_path: Path) -> None:
    song = make_song()
    path = song.save(tmp_path / "songs" / "first")
    assert path.suffix == ".mp3"
    assert path.read_bytes() == song.audio
    meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    assert meta["complete"] is True
    assert meta["simulated"] is True
    assert meta["request_id"] == "req-123"
    assert meta["expires_at"] == "2026-11-22T12:00:00+00:00"
    assert meta["lyrics"] == LYRICS
    assert meta["request"]["lyrics"] == LYRICS
    assert meta["bytes"] == len(song.audio)
    assert song.saved_path == path
    # No temporary files are left behind by the atomic write.
    assert sorted(p.name for p in path.parent.iterdir()) == ["first.json", "first.mp3"]


def test_save_into_directory_names_file_after_request(tmp_path: Path) -> None:
    path = make_song().save(tmp_path)
    assert path.name == "req-123.mp3"


def test_save_to_a_json_name_keeps_the_audio(tmp_path: Path) -> None:
    # "song.json" used to get the audio, then the sidecar written over it: the song was lost.
    song = make_song()
    path = song.save(tmp_path / "song.json")
    assert path.name == "song.mp3" and path.read_bytes() == song.audio
    assert json.loads((tmp_path / "song.json").read_text(encoding="utf-8"))["complete"] is True


def test_concurrent_saves_to_one_path_all_succeed(tmp_path: Path) -> None:
    # One fixed temporary name made a save rename another's file away (FileNotFoundError).
    song = make_song(audio=b"\xff\xfb" * 200_000)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def save() -> None:
        barrier.wait()
        for _ in range(5):
            try:
                song.save(tmp_path / "same.mp3")
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=save) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (tmp_path / "same.mp3").read_bytes() == song.audio
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.json", "same.mp3"]


def test_summary_is_deterministic_and_has_no_ids_or_timings() -> None:
    a = make_song()
    b = make_song(request_id="other", audio_id="other", total_time=99.0, time_to_first_audio=9.0)
    assert a.summary() == b.summary() == repr(a)
    text = a.summary()
    assert "req-123" not in text and "audio_abc" not in text and "3.5" not in text
    assert "simulated" in text
    assert "Morning sunlight" in text


def test_first_line_skips_tags() -> None:
    assert make_song().first_line() == "Morning sunlight slips through the curtain,"
    assert make_song(lyrics="[verse]\n[chorus]").first_line() == ""


def test_cost() -> None:
    assert make_song(duration=200).cost(0.002) == 0.4
