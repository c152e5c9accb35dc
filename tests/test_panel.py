"""FunMusicPanel driven from Python, against the real simulator over loopback.

Values are set on the widgets and buttons are ``.click()``-ed, as a user would; a bounded poll
waits for the background worker. Nothing here asserts on timings.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest

import funmusic_jupyter
from funmusic_jupyter import ConfigurationError, FunMusicPanel, ValidationError, build_request
from funmusic_jupyter._models import sidecar_path
from funmusic_jupyter._worker import get_worker
from funmusic_jupyter.simulator import FAULT_HEADER, SimulatorServer

LYRICS = """[verse]
Morning sunlight slips through the curtain
Coffee aroma fills up the room

[chorus]
Take it slow, there's no hurry
"""
PROMPT = "A cheerful ukulele song about a lazy breakfast"
FAKE_KEY = "sk-fake-panel-key-0123456789-abcdef"
TIMEOUT = 60.0


def english_lyrics(words: int) -> str:
    """Tagged English lyrics with exactly ``words`` words, eight to a line."""
    pool = "sun rain moon road light home song heart".split()
    body = [pool[i % len(pool)] for i in range(words)]
    lines = [" ".join(body[i : i + 8]) for i in range(0, words, 8)]
    return (
        "[verse]\n"
        + "\n".join(lines[: len(lines) // 2])
        + "\n[chorus]\n"
        + "\n".join(lines[len(lines) // 2 :])
    )


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


def finish(panel: FunMusicPanel) -> None:
    """Wait for the current song, then for the panel to be idle again."""
    panel.wait(TIMEOUT)
    wait_until(lambda: not panel.busy)


def all_widgets(root: widgets.Widget) -> Iterator[widgets.Widget]:
    """Every widget reachable from ``root`` through its synced traits (children, layout, style…)."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        w = todo.pop()
        if w.model_id in seen:
            continue
        seen.add(w.model_id)
        yield w
        for name in w.keys:
            value = getattr(w, name)
            items = value if isinstance(value, (list, tuple)) else [value]
            todo.extend(v for v in items if isinstance(v, widgets.Widget))


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:  # unpaced: songs come as fast as they are made
        yield server


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimulatorServer]:
    # Real time: a one-minute song takes a minute, so there is time to press Cancel.
    with SimulatorServer(speed=1.0) as server:
        yield server


@pytest.fixture
def panel(sim: SimulatorServer, tmp_path: Path) -> Iterator[FunMusicPanel]:
    p = FunMusicPanel(base_url=sim.base_url, output_dir=tmp_path / "songs")
    yield p
    p.close()


# -- the counter and the Generate button ---------------------------------------------------------


def test_streaming_english_lyrics_over_the_limit_disable_generate(panel: FunMusicPanel) -> None:
    text = english_lyrics(251)
    panel.stream.value = True
    panel.text.value = text

    assert "251" in panel.counter.value
    assert "1 over the limit" in panel.counter.value
    assert "200–250" in panel.counter.value
    assert panel.generate_button.disabled
    with pytest.raises(ValidationError) as refused:
        build_request(text=text, stream=True)
    # The very message the client would raise, shown before anything can be sent.
    assert panel.reason == str(refused.value)
    assert str(refused.value).split(";")[0] in panel.message.value
    assert "251 words" in panel.message.value

    panel.generate_button.click()  # a click on a disabled button (from code) sends nothing
    assert not panel.busy and panel.job is None

    panel.text.value = english_lyrics(250)
    assert "250" in panel.counter.value and "over the limit" not in panel.counter.value
    assert not panel.generate_button.disabled
    assert panel.reason == ""


def test_counter_follows_mode_language_and_streaming(panel: FunMusicPanel) -> None:
    chinese = "[verse]\n" + "月光洒在小河上" * 5  # 35 Han characters
    panel.text.value = chinese
    panel.stream.value = True
    assert "Chinese" in panel.counter.value and "<b>35</b>" in panel.counter.value
    assert "265 short of the minimum" in panel.counter.value
    assert panel.generate_button.disabled
    assert "300–350 characters" in panel.reason

    panel.stream.value = False  # non-streaming Chinese lyrics: 5–350 characters
    assert "not streaming" in panel.counter.value
    assert not panel.generate_button.disabled

    panel.text.value = "Sad piano"
    assert "Auto: prompt" in panel.counter.value
    panel.stream.value = True  # a streaming prompt needs at least five words
    assert panel.generate_button.disabled
    assert "Add at least 3" in panel.reason

    panel.mode.value = "lyrics"
    panel.stream.value = False
    assert "Lyrics" in panel.counter.value and "characters" in panel.counter.value
    assert not panel.generate_button.disabled


def test_unsupported_script_and_empty_text_are_refused_with_the_reason(
    panel: FunMusicPanel,
) -> None:
    assert panel.generate_button.disabled  # nothing written yet
    assert "Nothing written yet" in panel.counter.value
    panel.text.value = "[verse]\nさくらが咲いた"
    assert panel.generate_button.disabled
    assert "Japanese kana" in panel.reason and "Japanese kana" in panel.message.value


def test_warnings_are_shown_and_do_not_block(panel: FunMusicPanel) -> None:
    panel.stream.value = False
    panel.text.value = LYRICS + "\n[hook]\nOne more line to sing\n"
    assert "unknown structure tag" in panel.message.value
    assert not panel.generate_button.disabled


# -- a song --------------------------------------------------------------------------------------


def test_a_song_appears_with_player_history_and_saved_files(
    panel: FunMusicPanel, tmp_path: Path
) -> None:
    panel.stream.value = False
    panel.gender.value = "male"
    panel.text.value = LYRICS
    panel.generate_button.click()
    assert panel.busy or panel.job is not None
    song = panel.wait(TIMEOUT)
    wait_until(lambda: not panel.busy)

    assert song is not None and song.simulated
    assert song.gender == "male" and song.mode == "lyrics"
    assert "<audio" in panel.result.value
    assert "audio/mpeg" in panel.result.value
    assert "Morning sunlight slips through the curtain" in panel.result.value
    assert panel.history == (song,)
    assert song.saved_path is not None and song.saved_path.exists()
    assert song.saved_path.parent == (tmp_path / "songs").resolve()
    assert song.saved_path.with_suffix(".json").exists()
    assert str(song.saved_path) in panel.status.value
    assert str(song.saved_path) in panel.saved_label.value
    label = panel.history_select.options[0][0]
    assert label.startswith("#1 Morning sunlight slips through the curtain")
    assert not panel.generate_button.disabled and panel.cancel_button.disabled
    assert panel.progress.value == 1.0
    # The song ran on the magic's shared worker.
    assert panel.job in get_worker().jobs()


def test_history_is_newest_first_and_each_song_can_be_shown_again(panel: FunMusicPanel) -> None:
    panel.stream.value = False
    panel.text.value = LYRICS
    panel.generate_button.click()
    first = panel.wait(TIMEOUT)
    wait_until(lambda: not panel.busy)

    panel.text.value = PROMPT  # a prompt: titled by the prompt itself
    panel.format.value = "wav"
    panel.generate_button.click()
    second = panel.wait(TIMEOUT)
    wait_until(lambda: not panel.busy)

    assert first is not None and second is not None
    assert panel.history == (second, first)
    labels = [label for label, _ in panel.history_select.options]
    assert labels[0].startswith("#2 " + PROMPT) and "wav" in labels[0]
    assert labels[1].startswith("#1 Morning sunlight")
    assert "audio/wav" in panel.result.value  # the newest is on show, with WAV's MIME type

    panel.history_select.value = panel.history_select.options[1][1]
    assert str(first.saved_path) in panel.saved_label.value
    panel.show_button.click()
    assert "audio/mpeg" in panel.result.value and "audio/wav" not in panel.result.value
    assert "Morning sunlight slips through the curtain" in panel.result.value
    assert repr(panel) == "FunMusicPanel(backend='api', songs=2, state='idle')"


def test_streaming_song_reports_progress_and_finishes(panel: FunMusicPanel) -> None:
    panel.stream.value = True
    panel.text.value = PROMPT
    assert not panel.generate_button.disabled
    panel.generate_button.click()
    song = panel.wait(TIMEOUT)
    wait_until(lambda: not panel.busy)
    assert song is not None and song.request.stream
    assert panel.job is not None and panel.job.chunks > 1
    assert "<audio" in panel.result.value
    assert panel.status.value.startswith("Done:")


# -- cancel, errors ------------------------------------------------------------------------------


def test_cancel_mid_stream_keeps_the_partial_and_the_panel_usable(
    slow_sim: SimulatorServer, tmp_path: Path
) -> None:
    panel = FunMusicPanel(base_url=slow_sim.base_url, output_dir=tmp_path)
    panel.stream.value = True
    panel.text.value = PROMPT
    panel.generate_button.click()
    # The click returned while the song is still being made: the kernel is free.
    assert panel.busy
    assert panel.generate_button.disabled and not panel.cancel_button.disabled
    wait_until(lambda: panel.job is not None and panel.job.chunks >= 1)
    assert "of audio" in panel.status.value or "Waiting" in panel.status.value

    panel.cancel_button.click()
    finish(panel)

    job = panel.job
    assert job is not None and job.state == "cancelled"
    assert job.partial_path is not None and job.partial_path.exists()
    assert job.partial_path.name.endswith(".partial.mp3")
    assert job.partial_path.stat().st_size > 0
    sidecar = json.loads(sidecar_path(job.partial_path).read_text(encoding="utf-8"))
    assert sidecar["complete"] is False
    assert "Stopped at " in panel.result.value and "funmusic-error" not in panel.result.value
    assert panel.status.value.startswith("Stopped at ") and "Cancelled" not in panel.status.value
    assert panel.progress.bar_style == ""
    assert str(job.partial_path) in panel.result.value
    assert "Traceback" not in panel.result.value
    assert panel.history == ()
    assert not panel.generate_button.disabled and panel.cancel_button.disabled

    # Still usable: a second song starts, and can be stopped too.
    panel.generate_button.click()
    assert panel.busy and panel.job is not job
    panel.cancel_button.click()
    finish(panel)
    assert panel.job is not None and panel.job.state == "cancelled"
    assert not panel.generate_button.disabled
    panel.close()


def test_server_error_shows_code_and_request_id_then_panel_recovers(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    panel = FunMusicPanel(
        base_url=sim.base_url, output_dir=tmp_path, headers={FAULT_HEADER: "status=500"}
    )
    panel.stream.value = False
    panel.text.value = LYRICS
    panel.generate_button.click()
    assert panel.wait(TIMEOUT) is None
    wait_until(lambda: not panel.busy)

    error = panel.job.error if panel.job else None
    assert error is not None and getattr(error, "request_id", None)
    assert "funmusic-error" in panel.result.value
    assert "500 InternalError" in panel.result.value
    assert error.request_id in panel.result.value
    assert "Traceback" not in panel.result.value
    assert panel.status.value.startswith("Failed")
    assert not panel.generate_button.disabled and panel.cancel_button.disabled

    panel.headers = {}
    panel.generate_button.click()
    song = panel.wait(TIMEOUT)
    assert song is not None and "<audio" in panel.result.value
    assert panel.history == (song,)
    panel.close()


def test_broken_stream_shows_the_error_and_saves_the_partial(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    panel = FunMusicPanel(
        base_url=sim.base_url, output_dir=tmp_path, headers={FAULT_HEADER: "drop-after=2"}
    )
    panel.text.value = PROMPT  # streaming by default
    panel.generate_button.click()
    assert panel.wait(TIMEOUT) is None
    wait_until(lambda: not panel.busy)
    job = panel.job
    assert job is not None and job.state == "failed"
    assert job.partial_path is not None and job.partial_path.stat().st_size > 0
    assert "Song failed" in panel.result.value
    assert "Partial audio saved to" in panel.result.value
    # A real failure stays red, and still plays what arrived.
    assert "funmusic-error" in panel.result.value and "PARTIAL" in panel.result.value
    assert panel.result.value.count("<audio") == 1
    assert panel.status.value.startswith("Failed: ") and panel.progress.bar_style == "danger"
    assert not panel.generate_button.disabled
    panel.close()


def test_embed_limit_gives_wav_songs_a_preview_and_show_reuses_the_card(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    panel = FunMusicPanel(base_url=sim.base_url, output_dir=tmp_path, embed_limit=0)
    panel.stream.value = False
    panel.format.value = "wav"
    panel.text.value = LYRICS
    panel.generate_button.click()
    song = panel.wait(TIMEOUT)
    wait_until(lambda: not panel.busy)
    assert song is not None and song.format == "wav"
    card = panel.result.value
    assert "data:audio/mpeg;base64," in card and "data:audio/wav" not in card
    assert "Preview: an MP3 at " in card and 'class="funmusic-wav-link"' in card
    panel.result.value = ""
    panel.show_button.click()
    assert panel.result.value == card  # built once on the worker thread, not encoded again
    panel.close()


def test_content_inspection_error_is_shown(sim: SimulatorServer, tmp_path: Path) -> None:
    panel = FunMusicPanel(
        base_url=sim.base_url,
        output_dir=tmp_path,
        headers={FAULT_HEADER: "inspection"},
        stream=False,
        text=LYRICS,
    )
    panel.generate_button.click()
    assert panel.wait(TIMEOUT) is None
    wait_until(lambda: not panel.busy)
    assert "DataInspectionFailed" in panel.result.value
    panel.close()


# -- the key, the repr, the settings -------------------------------------------------------------


def _state_text(panel: FunMusicPanel) -> str:
    states = []
    for w in all_widgets(panel):
        states.append(json.dumps(w.get_state(), default=repr, ensure_ascii=False))
    return "\n".join(states)


def test_no_widget_state_ever_holds_the_key(
    sim: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", FAKE_KEY)
    panel = FunMusicPanel(base_url=sim.base_url, output_dir=tmp_path, stream=False, text=LYRICS)
    assert panel.settings.api_key == FAKE_KEY  # the key is configured, and used
    assert "DASHSCOPE_API_KEY" in panel.backend_info.value
    panel.generate_button.click()
    assert panel.wait(TIMEOUT) is not None
    panel.headers = {FAULT_HEADER: "status=503"}
    panel.generate_button.click()
    panel.wait(TIMEOUT)
    wait_until(lambda: not panel.busy)
    assert "503" in panel.result.value

    widget_count = sum(1 for _ in all_widgets(panel))
    assert widget_count > 20  # the walk reaches children, layouts and styles
    text = _state_text(panel)
    assert FAKE_KEY not in text
    assert FAKE_KEY[-8:] not in text
    assert FAKE_KEY not in repr(panel)
    assert FAKE_KEY not in str(panel._repr_mimebundle_())
    panel.close()


def test_an_api_key_argument_stays_out_of_traits(sim: SimulatorServer, tmp_path: Path) -> None:
    panel = FunMusicPanel(api_key=FAKE_KEY, base_url=sim.base_url, output_dir=tmp_path)
    assert panel.settings.api_key_source == "argument"
    assert FAKE_KEY not in _state_text(panel)
    assert all(FAKE_KEY not in repr(getattr(panel, name)) for name in panel.trait_names())
    panel.close()


def test_an_api_key_argument_is_in_no_public_attribute_of_its_job(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    panel = FunMusicPanel(
        api_key=FAKE_KEY, base_url=sim.base_url, output_dir=tmp_path, text=LYRICS, stream=False
    )
    panel.generate_button.click()
    song = panel.wait(TIMEOUT)
    job = panel.job
    assert job is not None and job.song is song
    public = {name: getattr(job, name) for name in dir(job) if not name.startswith("_")}
    assert public and all(FAKE_KEY not in repr(value) for value in public.values())
    assert FAKE_KEY not in repr(job)
    panel.close()


def test_without_a_key_the_panel_says_it_uses_the_simulator() -> None:
    panel = FunMusicPanel()
    assert panel.settings.backend == "simulator"
    assert "offline simulator" in panel.backend_info.value
    assert "no API key" in panel.backend_info.value
    panel.close()


def test_repr_is_deterministic(panel: FunMusicPanel, sim: SimulatorServer) -> None:
    other = FunMusicPanel(base_url=sim.base_url)
    expected = "FunMusicPanel(backend='api', songs=0, state='idle')"
    assert repr(panel) == repr(other) == expected
    bundle = panel._repr_mimebundle_()
    assert bundle["text/plain"] == expected
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert not re.search(r"0x[0-9a-f]{6,}", repr(panel))
    assert repr(FunMusicPanel()) == "FunMusicPanel(backend='simulator', songs=0, state='idle')"
    other.close()


def test_bad_arguments_fail_in_one_line(sim: SimulatorServer) -> None:
    with pytest.raises(ValidationError, match="gender must be one of female, male; got 'robot'"):
        FunMusicPanel(gender="robot", base_url=sim.base_url)
    with pytest.raises(ValidationError, match="mode must be one of"):
        FunMusicPanel(mode="poem", base_url=sim.base_url)
    with pytest.raises(ValidationError, match="embed_limit must be a whole number of bytes >= 0"):
        FunMusicPanel(embed_limit=-5, base_url=sim.base_url)
    with pytest.raises(ConfigurationError, match="backend 'api' needs an API key"):
        FunMusicPanel(backend="api")


def _initial_values(panel: FunMusicPanel) -> dict[str, Any]:
    return {
        "text": panel.text.value,
        "mode": panel.mode.value,
        "gender": panel.gender.value,
        "format": panel.format.value,
        "stream": panel.stream.value,
    }


def test_constructor_sets_the_controls(sim: SimulatorServer) -> None:
    panel = FunMusicPanel(
        base_url=sim.base_url,
        text=LYRICS,
        mode="lyrics",
        gender="male",
        format="wav",
        stream=False,
    )
    assert _initial_values(panel) == {
        "text": LYRICS,
        "mode": "lyrics",
        "gender": "male",
        "format": "wav",
        "stream": False,
    }
    assert not panel.generate_button.disabled
    panel.close()


def test_the_panel_is_public_and_lazy() -> None:
    assert "FunMusicPanel" in funmusic_jupyter.__all__
    assert funmusic_jupyter.FunMusicPanel is FunMusicPanel
    assert issubclass(FunMusicPanel, widgets.DOMWidget)


def test_instrumental_checkbox_sends_is_instrumental(panel: FunMusicPanel) -> None:
    panel.stream.value = False
    panel.text.value = PROMPT
    panel.instrumental.value = True
    panel.generate_button.click()
    song = panel.wait(TIMEOUT)
    wait_until(lambda: not panel.busy)
    assert song is not None and song.request.instrumental and song.lyrics == ""
    assert "none: instrumental (no vocals)" in panel.result.value


def test_preview_model_panel_disables_the_voice_and_sends_none(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    p = FunMusicPanel(base_url=sim.base_url, output_dir=tmp_path, model="fun-music-preview")
    try:
        assert p.gender.disabled
        p.stream.value = False
        p.text.value = PROMPT
        assert not p.generate_button.disabled, p.message.value
        p.generate_button.click()
        song = p.wait(TIMEOUT)
        wait_until(lambda: not p.busy)
        assert song is not None and "gender" not in song.request.payload()["input"]
        assert "not chosen (the model&#x27;s own voice" in p.result.value or (
            "not chosen (the model's own voice" in p.result.value
        )
    finally:
        p.close()
