"""The one renderer: player MIME types, escaping, the metadata table, the error box, text/plain."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from funmusic_jupyter import _render
from funmusic_jupyter._errors import (
    GenerationCancelled,
    ServerError,
    StreamInterruptedError,
    ValidationError,
)
from funmusic_jupyter._models import Song
from funmusic_jupyter._validation import build_request

LYRICS = (
    "[verse]\nMorning sunlight slips through the curtain,\n"
    "Coffee aroma fills up the room.\n\n[chorus]\nSing it loud, sing it now"
)


def make_song(**overrides: object) -> Song:
    fields: dict[str, object] = {
        "audio": b"ID3\x03not-really-an-mp3",
        "format": "mp3",
        "lyrics": LYRICS,
        "sample_rate": 48000,
        "channels": 2,
        "duration": 62,
        "request_id": "req-0f3a9c",
        "audio_id": "audio_abc123",
        "url": "http://127.0.0.1:1/oss/x.mp3?Expires=1",
        "expires_at": datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc),
        "time_to_first_audio": 0.25,
        "total_time": 3.5,
        "request": build_request(lyrics=LYRICS),
        "simulated": False,
    }
    fields.update(overrides)
    return Song(**fields)  # type: ignore[arg-type]


def rows(song: Song, **kw: object) -> dict[str, str]:
    return dict(_render.song_rows(song, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(("fmt", "mime"), [("mp3", "audio/mpeg"), ("wav", "audio/wav")])
def test_player_has_the_right_mime_type_and_embeds_the_audio_once(fmt: str, mime: str) -> None:
    audio = bytes(range(256)) * 3
    song = make_song(format=fmt, audio=audio, request=build_request(lyrics=LYRICS, format=fmt))
    html = _render.song_html(song)
    encoded = base64.b64encode(audio).decode("ascii")
    assert html.count(encoded) == 1
    # On the <audio> itself: JupyterLab's sanitizer (untrusted notebooks) strips a <source>'s src.
    assert re.search(f'<audio [^>]*src="data:{mime};base64,{re.escape(encoded)}"', html)
    assert "<source" not in html
    assert html.count("<audio") == 1
    other = {"audio/mpeg": "audio/wav", "audio/wav": "audio/mpeg"}[mime]
    assert other not in html
    # The bundle carries the audio in the HTML only: no second copy under another MIME key.
    bundle = _render.song_bundle(song)
    assert set(bundle) == {"text/plain", "text/html"}
    assert encoded not in bundle["text/plain"]


def test_player_never_autoplays() -> None:
    assert "autoplay" not in _render.audio_html(b"abc", "mp3")


def test_lyrics_are_escaped_and_sections_become_headings() -> None:
    evil = "[verse]\n<script>alert('x')</script> & <b>bold</b>\n[chorus]\nla \"la\" la"
    song = make_song(lyrics=evil)
    html = _render.song_html(song)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "la &quot;la&quot; la" in html
    headings = re.findall(r'role="heading" aria-level="4"[^>]*>([^<]*)<', html)
    assert headings == ["verse", "chorus"]
    # The tags themselves are not printed as lyric lines.
    assert "[verse]" not in html


def test_lyrics_stanzas_and_tags_with_numbers() -> None:
    html = _render.lyrics_html("[Chorus 2]\nline one\nline two\n\nline three")
    assert re.findall(r'role="heading"[^>]*>([^<]*)<', html) == ["Chorus 2"]
    assert "line one<br>line two" in html
    assert html.count("white-space: pre-wrap") == 2  # two stanzas


def test_escapes_every_field_from_the_service() -> None:
    song = make_song(request_id="<img src=x onerror=alert(1)>", audio_id="a&b")
    html = _render.song_html(song)
    # The only <img> is the waveform; the request id is text.
    assert html.count("<img") == 1 and "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "a&amp;b" in html


def test_metadata_table_fields() -> None:
    song = make_song(saved_path=Path("/tmp/out/song.mp3"))
    table = rows(song)
    assert table["Model"] == "fun-music-v1"
    assert table["Mode"] == "lyrics"
    assert table["Gender"] == "female"
    assert table["Format"] == "mp3 (audio/mpeg)"
    assert table["Sample rate"] == "48,000 Hz"
    assert table["Channels"] == "2 (stereo)"
    assert table["Duration"] == "62 s (1:02)"
    assert table["Request id"] == "req-0f3a9c"
    assert table["Audio id"] == "audio_abc123"
    assert table["Time to first audio"] == "0.25 s"
    assert table["Total time"] == "3.50 s"
    assert table["Saved to"] == str(Path("/tmp/out/song.mp3"))
    assert table["Simulated"] == "no"
    # Expiry in local time: the same instant, shown in this machine's zone.
    local = song.expires_at.astimezone()  # type: ignore[union-attr]
    assert table["URL expires"].startswith(f"{local:%Y-%m-%d %H:%M:%S}")
    html = _render.song_html(song)
    for label, value in table.items():
        assert f">{label}</th>" in html
        assert value.replace("&", "&amp;").split("\n")[0] in html


def test_missing_values_show_a_dash() -> None:
    song = make_song(time_to_first_audio=None, expires_at=None, request_id=None, audio_id=None)
    table = rows(song)
    assert table["Time to first audio"] == "—"
    assert table["URL expires"] == "—"
    assert table["Request id"] == "—"
    assert table["Saved to"] == "not saved"


def test_saved_paths_list_the_output_copy_too() -> None:
    song = make_song(saved_path=Path("/data/mine.mp3"))
    table = rows(song, also_saved=[Path("/out/auto.mp3"), Path("/data/mine.mp3")])
    assert table["Saved to"].splitlines() == [
        str(Path("/data/mine.mp3")),
        str(Path("/out/auto.mp3")),
    ]


@pytest.mark.parametrize(
    ("duration", "price", "currency", "expected"),
    [
        (62, 0.002, "CNY", "0.124 CNY"),
        (200, 0.002, "CNY", "0.40 CNY"),
        (30, 0.002, "CNY", "0.06 CNY"),
        (61.5, 0.01, "USD", "0.615 USD"),
        (0, 0.002, "CNY", "0.00 CNY"),
        (7, 0.00013, "EUR", "0.0009 EUR"),
    ],
)
def test_cost_uses_the_configured_price(
    duration: float, price: float, currency: str, expected: str
) -> None:
    song = make_song(duration=duration)
    cost = rows(song, price_per_second=price, currency=currency)["Cost"]
    assert cost.startswith(expected + " (")
    assert f"× {price:g} {currency}/s" in cost


def test_simulated_mark() -> None:
    real = _render.song_html(make_song(simulated=False))
    fake = _render.song_html(make_song(simulated=True))
    assert "SIMULATED" not in real and "funmusic-simulated" not in real
    assert 'class="funmusic-simulated"' in fake and "SIMULATED" in fake
    assert rows(make_song(simulated=True))["Simulated"].startswith("yes")
    assert "simulated" in _render.song_text(make_song(simulated=True))


def test_song_text_is_deterministic_and_has_no_ids_or_timings() -> None:
    a = make_song(request_id="r1", audio_id="a1", total_time=1.0, time_to_first_audio=0.1)
    b = make_song(request_id="r2", audio_id="a2", total_time=9.0, time_to_first_audio=3.0)
    notes = ["unknown structure tag(s) [hook]"]
    assert _render.song_text(a, notes=notes) == _render.song_text(b, notes=notes)
    text = _render.song_text(a, notes=notes)
    assert "r1" not in text and "a1" not in text
    assert text.endswith("\nnote: unknown structure tag(s) [hook]")


def test_song_repr_uses_the_same_renderer() -> None:
    song = make_song()
    bundle = song._repr_mimebundle_()
    assert bundle == {"text/plain": song.summary(), "text/html": _render.song_html(song)}


def test_notes_are_shown_in_the_card_escaped() -> None:
    html = _render.song_html(make_song(), notes=["both <lyrics> and a prompt"])
    assert 'class="funmusic-note"' in html
    assert "both &lt;lyrics&gt; and a prompt" in html


def test_html_is_self_contained() -> None:
    html = _render.song_html(make_song()) + _render.error_html(ServerError("x", status_code=500))
    html += _render.progress_html(title="t", state="streaming")
    assert "<script" not in html
    assert "<link" not in html
    assert "http://" not in html.replace("http://127.0.0.1:1/oss/x.mp3?Expires=1", "")
    assert "https://" not in html


def test_error_box_content() -> None:
    error = ServerError(
        "The server had an <error>.",
        status_code=500,
        code="InternalError",
        request_id="rid-42",
        partial_audio=b"x" * 1234,
    )
    html = _render.error_html(error, partial_path=Path("/out/a.partial.mp3"), title="[verse]\nHi")
    assert 'class="funmusic-error"' in html
    assert "500 InternalError" in html
    assert "The server had an &lt;error&gt;." in html
    assert "rid-42" in html
    assert str(Path("/out/a.partial.mp3")) + " (1,234 bytes)" in html
    assert "Song failed: Hi" in html
    assert "Traceback" not in html


def test_error_box_without_partial_audio() -> None:
    error = StreamInterruptedError("broke", request_id="r")
    assert "none arrived" in _render.error_html(error)


def test_cancelled_box() -> None:
    html = _render.error_html(GenerationCancelled("stopped"))
    assert "Stopped before any audio arrived" in html
    assert 'class="funmusic-error"' not in html
    stopped = GenerationCancelled("stopped", partial_audio=b"ab")
    assert _render.error_text(stopped, partial_path="/x") == "Song stopped (partial audio saved)"
    assert _render.error_text(GenerationCancelled("stopped")) == (
        "Song stopped before any audio arrived"
    )


def test_error_text_is_deterministic_without_request_id_or_path() -> None:
    one = ServerError("boom", status_code=503, code="ServiceUnavailable", request_id="id-1")
    two = ServerError("boom", status_code=503, code="ServiceUnavailable", request_id="id-2")
    assert _render.error_text(one, partial_path="/a") == _render.error_text(two, partial_path="/b")
    text = _render.error_text(one, partial_path="/a")
    assert text == "Song failed: 503 ServiceUnavailable: boom (partial audio saved)"
    assert "id-1" not in text


def test_error_box_for_other_errors() -> None:
    text = _render.error_text(ValidationError("too long"))
    assert text == "Song failed: ValidationError: too long"
    assert _render.error_text(OSError("disk full")) == "Song failed: OSError: disk full"


def test_progress_html_and_text() -> None:
    html = _render.progress_html(
        title="[verse]\nSing <loud>", state="streaming", seconds=12.04, chunks=13,
        bytes_received=300_000, elapsed=4.26, job_id="7", notes=["a note"],
    )
    assert "Sing &lt;loud&gt;" in html
    assert "12.0 s of audio · 13 chunks · 293 KB · 4.3 s elapsed" in html
    assert "<progress" in html
    assert "job 7" in html
    assert "a note" in html
    # The text is the same whatever the numbers: nbval records the first version it sees.
    assert _render.progress_text(title="[verse]\nSing <loud>") == (
        "funmusic: making 'Sing <loud>' in the background"
    )


def test_settings_table_escapes() -> None:
    html = _render.settings_html({"base URL": "<x>"})
    assert "&lt;x&gt;" in html
    assert _render.settings_text({"a": 1, "long name": "v"}) == (
        "funmusic settings\n  a          1\n  long name  v"
    )


def test_format_money() -> None:
    assert _render.format_money(0.4, "CNY") == "0.40 CNY"
    assert _render.format_money(1.23456, "CNY") == "1.2346 CNY"
    assert _render.format_money(12, "") == "12.00"
