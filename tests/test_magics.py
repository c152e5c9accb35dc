"""%%funmusic and %funmusic through a real IPython shell, against the real simulator."""

from __future__ import annotations

import _thread
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from funmusic_jupyter import _magics
from funmusic_jupyter._errors import GenerationCancelled, ValidationError
from funmusic_jupyter._models import Song, sidecar_path
from funmusic_jupyter._worker import current_worker, get_worker
from funmusic_jupyter.simulator import SimulatorServer

FAKE_KEY = "sk-fake-magic-test-0123456789-abcdef0123"
PROMPT = "A cheerful ukulele song about breakfast and sunshine"
LYRICS = "[verse]\nHello there my friend\nThe morning light is new\n[chorus]\nSing it loud with me"


@pytest.fixture(scope="module")
def fast() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as sim:
        yield sim


@pytest.fixture(scope="module")
def slow() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=2) as sim:
        yield sim


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    monkeypatch.chdir(tmp_path)
    shell.run_line_magic("load_ext", "funmusic_jupyter")
    yield shell
    # A song a test left running must not update the next test's captured output.
    worker = current_worker()
    for job in worker.cancel_all() if worker else []:
        job.wait(10)
    shell.run_line_magic("unload_ext", "funmusic_jupyter")
    # %config writes into the shell's config: forget it, so the next test starts from defaults.
    shell.config.pop("FunMusicMagics", None)
    shell.user_ns.pop("song", None)


def magics(shell: InteractiveShell) -> _magics.FunMusicMagics:
    instance = shell.magics_manager.registry["FunMusicMagics"]
    assert isinstance(instance, _magics.FunMusicMagics)
    return instance


@pytest.fixture
def api(ip: InteractiveShell, fast: SimulatorServer) -> InteractiveShell:
    """The shell, pointed at the fast simulator as if it were the service."""
    ip.run_line_magic("config", "FunMusicMagics.backend = 'api'")
    ip.run_line_magic("config", f"FunMusicMagics.base_url = {fast.base_url!r}")
    return ip


def run(shell: InteractiveShell, line: str, body: str) -> CapturedIO:
    with capture_output() as captured:
        shell.run_cell_magic("funmusic", line, body)
    return captured


def all_text(captured: CapturedIO) -> str:
    parts = [captured.stdout, captured.stderr]
    for out in captured.outputs:
        parts.extend(str(v) for v in out.data.values())
    return "\n".join(parts)


def wait_until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# -- registration and help -------------------------------------------------------------------


def test_registers_line_and_cell_magic_and_unloads(ip: InteractiveShell) -> None:
    assert ip.find_cell_magic("funmusic") is not None
    assert ip.find_line_magic("funmusic") is not None
    instance = magics(ip)
    assert instance in ip.configurables
    assert instance.parent is ip  # so %config and ipython_config.py reach it
    hooks = ip.events.callbacks["post_run_cell"]
    assert hooks.count(instance._show_finished) == 1
    _magics.unload_ipython_extension(ip)
    assert ip.find_cell_magic("funmusic") is None
    assert instance not in ip.configurables
    assert instance._show_finished not in hooks
    _magics.load_ipython_extension(ip)
    assert hooks.count(magics(ip)._show_finished) == 1


def test_help_lists_options_and_examples(ip: InteractiveShell) -> None:
    with capture_output() as captured:
        ip.run_cell("%%funmusic?")
    text = captured.stdout
    for option in ("--gender", "-g", "--format", "-f", "--lyrics", "--prompt", "--no-stream",
                   "--wait", "--out", "--save", "--model", "--backend"):
        assert option in text
    assert "Examples" in text
    assert "%funmusic status" in text and "%funmusic stop" in text


# -- option parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", {"gender": "female", "format": "mp3", "mode": "prompt", "stream": True}),
        ("--gender male", {"gender": "male"}),
        ("-g male", {"gender": "male"}),
        ("-g MALE", {"gender": "male"}),
        ("--format wav", {"format": "wav"}),
        ("-f wav", {"format": "wav"}),
        ("--lyrics --no-stream", {"mode": "lyrics"}),
        ("--prompt", {"mode": "prompt"}),
        ("--no-stream", {"stream": False}),
        ("--stream", {"stream": True}),
        ("--model fun-music-preview", {"model": "fun-music-preview"}),
        ("-g male -f wav --no-stream --lyrics", {"gender": "male", "format": "wav",
                                                 "stream": False, "mode": "lyrics"}),
    ],
)
def test_options_shape_the_request(
    ip: InteractiveShell, line: str, expected: dict[str, Any]
) -> None:
    instance = magics(ip)
    request, notes = instance._request(instance._parse(line), PROMPT)
    assert notes == []  # PROMPT fits the streaming limits: nothing to explain
    for name, value in expected.items():
        assert getattr(request, name) == value


def test_parsing_keeps_quoted_values_whole(ip: InteractiveShell) -> None:
    opts = magics(ip)._parse("--save 'my songs/first one.mp3' --out=song")
    assert opts.save == "my songs/first one.mp3"
    assert opts.out == "song"


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("--gender robot", "invalid choice: 'robot'"),
        ("-g", "expected one argument"),
        ("-f ogg", "invalid choice: 'ogg'"),
        ("--backend cloud", "invalid choice: 'cloud'"),
        ("--colour red", "unrecognized arguments: --colour red"),
        ("--gen male", "unrecognized arguments"),  # no abbreviations: options stay unambiguous
        ("--out 1song", "--out needs a Python variable name; got '1song'"),
        ("--out class", "--out needs a Python variable name"),
        ("--lyrics --prompt", "not both"),
        ("--stream --no-stream", "not both"),
        ("--save 'unclosed", "cannot split the options"),
        ("-h", "unrecognized arguments: -h"),
    ],
)
def test_bad_options_are_one_line_usage_errors(
    ip: InteractiveShell, line: str, fragment: str
) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("funmusic", line, PROMPT)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_usage_error_in_a_cell_shows_one_line_and_no_traceback(ip: InteractiveShell) -> None:
    with capture_output() as captured:
        result = ip.run_cell("%%funmusic --gender robot\n" + PROMPT)
    assert isinstance(result.error_in_exec, UsageError)
    assert captured.stderr.strip().count("\n") == 0
    assert captured.stderr.startswith("UsageError: %%funmusic: argument -g/--gender")
    assert "Traceback" not in captured.stdout + captured.stderr


@pytest.mark.parametrize("body", ["", "   \n\t\n"])
def test_empty_body_is_a_usage_error(ip: InteractiveShell, body: str) -> None:
    jobs_before = len(get_worker().jobs())
    # IPython itself refuses a cell magic with a truly empty body; a blank one is ours.
    with pytest.raises(UsageError, match="body is empty|got an empty cell") as info:
        ip.run_cell_magic("funmusic", "--wait", body)
    assert "\n" not in str(info.value)
    assert len(get_worker().jobs()) == jobs_before


def test_validation_error_is_one_line_and_nothing_is_sent(api: InteractiveShell) -> None:
    jobs_before = len(get_worker().jobs())
    # Streaming English lyrics need 200-250 words: with --stream this is refused before sending.
    with pytest.raises(ValidationError, match="200–250 words"):
        api.run_cell_magic("funmusic", "--wait --stream", LYRICS)
    with capture_output() as captured:
        result = api.run_cell("%%funmusic --wait --stream\n" + LYRICS)
    assert isinstance(result.error_in_exec, ValidationError)
    shown = (captured.stdout + captured.stderr).strip()
    assert shown.startswith("ValidationError: English lyrics for streaming must be")
    assert "\n" not in shown and "Traceback" not in shown
    assert len(get_worker().jobs()) == jobs_before


def test_default_streaming_falls_back_for_lyrics_only_non_streaming_accepts(
    ip: InteractiveShell,
) -> None:
    instance = magics(ip)
    request, notes = instance._request(instance._parse(""), LYRICS)
    assert request.stream is False and request.mode == "lyrics"
    assert len(notes) == 1
    assert notes[0].startswith("not streamed: English lyrics for streaming must be 200–250 words")
    # Configured off, or --no-stream: no note, since nothing surprising happened.
    assert instance._request(instance._parse("--no-stream"), LYRICS)[1] == []


def test_default_streaming_does_not_hide_an_error_of_both_modes(ip: InteractiveShell) -> None:
    instance = magics(ip)
    with pytest.raises(ValidationError, match="non-streaming must be 5–2,000 characters"):
        instance._request(instance._parse(""), "[verse]\n" + "la " * 1100)
    with pytest.raises(ValidationError, match="Japanese kana"):
        instance._request(instance._parse(""), "[verse]\nさくら さくら")


def test_fallback_note_is_shown_with_the_song(api: InteractiveShell) -> None:
    captured = run(api, "--wait", LYRICS)
    text = "\n".join(o.data.get("text/html", "") for o in captured.outputs)
    assert "not streamed: English lyrics for streaming must be 200–250 words" in text
    assert "<audio" in text


def test_line_magic_usage_errors(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="expected one of status, stop"):
        ip.run_line_magic("funmusic", "dance")
    with pytest.raises(UsageError, match="options belong to the cell magic"):
        ip.run_line_magic("funmusic", "--gender male")
    with pytest.raises(UsageError, match="no song '999'"):
        ip.run_line_magic("funmusic", "stop 999")
    with capture_output() as captured:
        ip.run_line_magic("funmusic", "")
    assert "%%funmusic" in captured.outputs[0].data["text/plain"]


# -- end to end (--wait) ---------------------------------------------------------------------


def test_wait_displays_the_final_song_once(api: InteractiveShell, tmp_path: Path) -> None:
    captured = run(api, "--wait --out song", PROMPT)
    assert len(captured.outputs) == 1
    out = captured.outputs[0]
    assert out.update is False and not out.transient
    html = out.data["text/html"]
    assert html.count("<audio") == 1
    assert 'src="data:audio/mpeg;base64,' in html and "audio/wav" not in html
    song = api.user_ns["song"]
    assert isinstance(song, Song)
    assert out.data["text/plain"] == song.summary()
    assert song.request.stream is True
    assert song.lyrics.splitlines()[1] in html  # the lyrics the service wrote
    assert ">Request id</th>" in html and ">Cost</th>" in html
    assert captured.stdout == "" and captured.stderr == ""
    # Saved before it was shown, in ./funmusic-output, with a sidecar.
    assert song.saved_path is not None
    assert song.saved_path.parent == tmp_path / "funmusic-output"
    assert song.saved_path.read_bytes() == song.audio
    assert json.loads(sidecar_path(song.saved_path).read_text())["complete"] is True


def test_wav_and_male_through_the_shell(api: InteractiveShell) -> None:
    captured = run(api, "-g male -f wav --no-stream --lyrics --wait --out song", LYRICS)
    song = api.user_ns["song"]
    assert (song.format, song.gender, song.mode) == ("wav", "male", "lyrics")
    assert song.request.stream is False
    assert song.audio[:4] == b"RIFF"
    html = captured.outputs[0].data["text/html"]
    assert 'src="data:audio/wav;base64,' in html and "audio/mpeg" not in html
    assert song.saved_path.suffix == ".wav"


def test_config_defaults_apply_to_the_next_cell(api: InteractiveShell) -> None:
    api.run_line_magic("config", 'FunMusicMagics.gender = "male"')
    api.run_line_magic("config", 'FunMusicMagics.format = "wav"')
    api.run_line_magic("config", "FunMusicMagics.stream = False")
    api.run_line_magic("config", "FunMusicMagics.price_per_second = 0.01")
    api.run_line_magic("config", 'FunMusicMagics.currency = "USD"')
    captured = run(api, "--wait --out song", LYRICS)
    song = api.user_ns["song"]
    assert (song.gender, song.format, song.request.stream) == ("male", "wav", False)
    cost = f"{song.duration * 0.01:.2f} USD"
    assert cost in captured.outputs[0].data["text/html"]
    # An option on the line still wins over the configured default.
    run(api, "--wait --out song -g female", LYRICS)
    assert api.user_ns["song"].gender == "female"


def test_read_timeout_bounds_a_stalled_song_that_is_not_streamed(api: InteractiveShell) -> None:
    api.run_line_magic("config", "FunMusicMagics.read_timeout = 1.0")
    captured = run(api, "--wait --no-stream --fault stall-after=0", LYRICS)
    (shown,) = captured.outputs
    # The configured timeout is the one that fired (not the client's 600 s default), and the
    # song was not retried: it may already be billed.
    assert "APITimeoutError: no answer within read_timeout=1 s" in shown.data["text/plain"]
    assert "not retried" in shown.data["text/plain"]
    assert "<audio" not in shown.data["text/html"]


def test_config_rejects_bad_values(ip: InteractiveShell, caplog: pytest.LogCaptureFixture) -> None:
    ip.run_line_magic("config", 'FunMusicMagics.gender = "robot"')
    ip.run_line_magic("config", "FunMusicMagics.price_per_second = -1.0")
    assert magics(ip).gender == "female"
    assert magics(ip).price_per_second == 0.002
    assert "'robot'" in caplog.text
    assert "price_per_second must be >= 0; got -1.0" in caplog.text


def test_embed_limit_is_a_trait_the_cards_follow(
    api: InteractiveShell, caplog: pytest.LogCaptureFixture
) -> None:
    api.run_line_magic("config", "FunMusicMagics.embed_limit = -1")
    assert "embed_limit must be >= 0 bytes; got -1" in caplog.text
    assert magics(api).embed_limit == 8_000_000
    # Every WAV is over a zero limit: the cell's card and a Song shown on its own both embed
    # the MP3 preview instead.
    api.run_line_magic("config", "FunMusicMagics.embed_limit = 0")
    captured = run(api, "-f wav --no-stream --wait --out song", LYRICS)
    html = captured.outputs[0].data["text/html"]
    assert "data:audio/mpeg;base64," in html and "data:audio/wav" not in html
    assert "Preview: an MP3 at " in html and 'class="funmusic-wav-link"' in html
    song = api.user_ns["song"]
    assert "data:audio/mpeg;base64," in song._repr_mimebundle_()["text/html"]
    with capture_output() as config:
        api.run_line_magic("funmusic", "config")
    assert "embed_limit" in config.outputs[0].data["text/plain"]


def test_body_is_sent_exactly_as_typed(api: InteractiveShell) -> None:
    body = (
        "[verse]\nPay {price} for ${x} and $HOME {{ not }} %s {0}\n"
        "The {morning} light is $new\n[chorus]\nSing {it} loud"
    )
    api.user_ns.update(price="TEN", x="EX", HOME="HOUSE", new="NEW")
    run(api, "--wait --no-stream --out song", body)
    song = api.user_ns["song"]
    assert song.request.text == body
    assert song.lyrics == body  # the simulator sings the lyrics as sent


def test_line_is_expanded_but_not_the_body(api: InteractiveShell) -> None:
    api.user_ns["voice"] = "male"
    with capture_output():
        api.run_cell(
            "%%funmusic --wait --no-stream --gender $voice --out song\n"
            "[verse]\nI owe $voice {voice}"
        )
    song = api.user_ns["song"]
    assert song.gender == "male"
    assert song.request.text == "[verse]\nI owe $voice {voice}"


def test_warnings_are_notes_not_python_warnings(api: InteractiveShell) -> None:
    # filterwarnings=error: a Python warning would fail this test.
    body = "[verse]\nHello there my friend\n[hook]\nSing it loud with me"
    captured = run(api, "--wait --no-stream", body)
    out = captured.outputs[0]
    assert "note: unknown structure tag(s) [hook]" in out.data["text/plain"]
    assert 'class="funmusic-note"' in out.data["text/html"]


def test_save_writes_a_copy_too(api: InteractiveShell, tmp_path: Path) -> None:
    target = tmp_path / "mine" / "first song.mp3"
    captured = run(api, f"--wait --no-stream --save '{target}' --out song", LYRICS)
    song = api.user_ns["song"]
    assert target.read_bytes() == song.audio
    assert json.loads(sidecar_path(target).read_text())["complete"] is True
    auto = list((tmp_path / "funmusic-output").glob("*.mp3"))
    assert len(auto) == 1 and auto[0].read_bytes() == song.audio
    html = captured.outputs[0].data["text/html"]
    assert str(target) in html and str(auto[0]) in html


def test_output_dir_is_configurable(api: InteractiveShell, tmp_path: Path) -> None:
    api.run_line_magic("config", f"FunMusicMagics.output_dir = {str(tmp_path / 'songs')!r}")
    run(api, "--wait --no-stream --out song", LYRICS)
    assert api.user_ns["song"].saved_path.parent == tmp_path / "songs"


def test_api_error_shows_a_box_not_a_traceback(api: InteractiveShell, tmp_path: Path) -> None:
    with capture_output() as captured:
        result = api.run_cell("%%funmusic --wait --fault status=500\n" + PROMPT)
    assert result.success
    assert captured.stdout == "" and captured.stderr == ""
    (out,) = captured.outputs
    assert out.data["text/plain"].startswith("Song failed: 500 InternalError: ")
    assert 'class="funmusic-error"' in out.data["text/html"]
    assert "Traceback" not in out.data["text/html"]
    assert not (tmp_path / "funmusic-output").exists() or not any(
        (tmp_path / "funmusic-output").iterdir()
    )


def test_broken_stream_keeps_the_partial_audio(api: InteractiveShell, tmp_path: Path) -> None:
    captured = run(api, "--wait --fault drop-after=2 --out song", PROMPT)
    (out,) = captured.outputs
    assert "song" not in api.user_ns
    partial = list((tmp_path / "funmusic-output").glob("*.partial.mp3"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0
    meta = json.loads(sidecar_path(partial[0]).read_text())
    assert meta["complete"] is False and meta["error"]["type"] == "StreamInterruptedError"
    assert str(partial[0]) in out.data["text/html"]
    assert out.data["text/plain"].endswith("(partial audio saved)")
    assert meta["request_id"] in out.data["text/html"]
    assert meta["request_id"] not in out.data["text/plain"]


def test_simulator_backend(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNMUSIC_SIMULATOR_SPEED", "0")
    captured = run(ip, "--wait --no-stream --backend simulator --out song", LYRICS)
    song = ip.user_ns["song"]
    assert song.simulated
    assert "SIMULATED" in captured.outputs[0].data["text/html"]
    assert "note:" not in captured.outputs[0].data["text/plain"]  # asked for it: no note
    # With nothing configured, auto means the simulator, and the output says so. (--fresh:
    # auto resolves to the same simulator, so the same cell would otherwise be reused.)
    captured = run(ip, "--wait --no-stream --fresh --out song", LYRICS)
    assert ip.user_ns["song"].simulated
    assert "note: no API key configured" in captured.outputs[0].data["text/plain"]


def test_the_key_never_shows(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", FAKE_KEY)
    with SimulatorServer(speed=0, api_key=FAKE_KEY) as sim:
        ip.run_line_magic("config", f"FunMusicMagics.base_url = {sim.base_url!r}")
        with capture_output() as config_out:
            ip.run_line_magic("funmusic", "config")
        text = config_out.outputs[0].data["text/plain"]
        assert "present (from DASHSCOPE_API_KEY)" in text
        song_out = run(ip, "--wait --no-stream --out song", LYRICS)  # the key got it through
        assert isinstance(ip.user_ns["song"], Song)
        with capture_output() as status_out:
            ip.run_line_magic("funmusic", "status")
    for captured in (config_out, song_out, status_out):
        shown = all_text(captured)
        assert FAKE_KEY not in shown
        assert FAKE_KEY[3:] not in shown
    for path in (tmp_path / "funmusic-output").iterdir():
        assert FAKE_KEY not in path.read_bytes().decode("latin-1")


def test_config_shows_the_effective_settings(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", 'FunMusicMagics.endpoint = "speech-synthesizer"')
    with capture_output() as captured:
        ip.run_line_magic("funmusic", "config")
    out = captured.outputs[0]
    text = out.data["text/plain"]
    assert "effective api key          absent" in text
    assert "/services/audio/tts/SpeechSynthesizer" in text
    assert "price_per_second" in text and "0.002" in text
    assert 'class="funmusic-config"' in out.data["text/html"]
    ip.run_line_magic("config", "FunMusicMagics.backend = 'api'")
    with capture_output() as captured:
        ip.run_line_magic("funmusic", "config")
    assert "not usable: backend 'api' needs an API key" in captured.outputs[0].data["text/plain"]


# -- background mode, status, stop, interrupt ------------------------------------------------


def test_background_cell_returns_at_once_then_updates_in_place(
    api: InteractiveShell, tmp_path: Path
) -> None:
    with capture_output() as captured:
        started = time.monotonic()
        api.run_cell_magic("funmusic", "--out song", PROMPT)
        returned = time.monotonic() - started
        first = captured.outputs[0]  # the progress display (updates may already follow)
        assert not first.update
        display_id = first.transient["display_id"]
        assert "funmusic-progress" in first.data["text/html"]
        assert first.data["text/plain"] == (
            "funmusic: making 'A cheerful ukulele song about breakfast and sunshine' "
            "in the background"
        )
        job = current_worker().jobs()[-1]  # type: ignore[union-attr]
        assert job.wait(60)
        # A plain shell has no front end to redraw in place, and the worker thread never
        # prints: nothing has been shown since the progress line...
        time.sleep(0.3)
        assert len(captured.outputs) == 1
        # ...until the main thread runs the next cell, after which the result is shown once.
        api.run_cell("pass")
    assert returned < job.elapsed
    # (Live progress is for kernels: tests/test_kernel.py.)
    (update,) = captured.outputs[1:]
    assert update.update and update.transient["display_id"] == display_id
    final = update.data
    assert "<audio" in final["text/html"] and "data:audio/mpeg;base64," in final["text/html"]
    assert final["text/plain"] == job.song.summary()  # type: ignore[union-attr]
    assert api.user_ns["song"] is job.song
    assert captured.stdout == "" and captured.stderr == ""


def test_status_and_stop(ip: InteractiveShell, slow: SimulatorServer, tmp_path: Path) -> None:
    ip.run_line_magic("config", "FunMusicMagics.backend = 'api'")
    ip.run_line_magic("config", f"FunMusicMagics.base_url = {slow.base_url!r}")
    with capture_output() as captured:
        ip.run_cell_magic("funmusic", "", PROMPT)
        job = current_worker().jobs()[-1]  # type: ignore[union-attr]
        wait_until(lambda: job.chunks >= 2)
        with capture_output() as status:
            ip.run_line_magic("funmusic", "status")
        text = status.outputs[0].data["text/plain"]
        assert f"{job.id:>3}  streaming" in text
        assert "funmusic-status" in status.outputs[0].data["text/html"]
        with capture_output() as stopped:
            ip.run_cell(f"%funmusic stop {job.id}")
        assert job.state == "cancelled"
        # The stop's message, then (shown by the main thread after that cell) the song's own
        # display, updated in place.
        message, final = stopped.outputs
        # Human words, the partial song's path, and no error type.
        assert re.fullmatch(
            rf"Song {job.id}: Stopped at \d+ s: partial song saved to .+\.partial\.mp3",
            message.data["text/plain"],
        ), message.data["text/plain"]
        wait_until(lambda: slow.state.active_syntheses == 0, timeout=10)
    assert job.partial_path is not None and job.partial_path.stat().st_size >= job.bytes_received
    assert final.transient["display_id"] == captured.outputs[0].transient["display_id"]
    assert final.update and "Stopped at " in final.data["text/html"]
    assert 'class="funmusic-stopped"' in final.data["text/html"]
    assert "funmusic-error" not in final.data["text/html"]
    # The path as the user reads it: relative to the working directory (the notebook's).
    assert job.partial_path.relative_to(Path.cwd()).as_posix() in final.data["text/html"]
    with capture_output() as again:
        ip.run_line_magic("funmusic", f"stop {job.id}")
        ip.run_line_magic("funmusic", "stop")
        ip.run_line_magic("funmusic", "status")
    assert again.outputs[0].data["text/plain"] == f"song {job.id} is already cancelled"
    assert again.outputs[1].data["text/plain"] == "no song is running"
    assert "cancelled" in again.outputs[2].data["text/plain"]


def test_stop_all(ip: InteractiveShell, slow: SimulatorServer) -> None:
    ip.run_line_magic("config", "FunMusicMagics.backend = 'api'")
    ip.run_line_magic("config", f"FunMusicMagics.base_url = {slow.base_url!r}")
    with capture_output() as captured:
        ip.run_cell_magic("funmusic", "", PROMPT)
        ip.run_cell_magic("funmusic", "-g male", PROMPT)
        jobs = current_worker().jobs()[-2:]  # type: ignore[union-attr]
        wait_until(lambda: all(j.chunks >= 1 for j in jobs))
        ip.run_line_magic("funmusic", "stop")
        ip.run_cell("pass")  # a plain shell shows finished songs after the next cell
    assert [j.state for j in jobs] == ["cancelled", "cancelled"]
    text = [o.data["text/plain"] for o in captured.outputs if not o.update][-1]
    assert text.count(": Stopped at ") == 2
    finals = [o.data["text/plain"] for o in captured.outputs if o.update][-2:]
    assert finals == ["Song stopped (partial audio saved)"] * 2


def test_interrupt_during_wait_cancels_and_keeps_the_partial_audio(
    ip: InteractiveShell, slow: SimulatorServer, tmp_path: Path
) -> None:
    ip.run_line_magic("config", "FunMusicMagics.backend = 'api'")
    ip.run_line_magic("config", f"FunMusicMagics.base_url = {slow.base_url!r}")
    jobs_before = len(get_worker().jobs())

    def interrupt_when_streaming() -> None:
        wait_until(lambda: len(get_worker().jobs()) > jobs_before)
        job = get_worker().jobs()[-1]
        wait_until(lambda: job.chunks >= 2)
        _thread.interrupt_main()  # what a kernel interrupt does: KeyboardInterrupt in main

    threading.Thread(target=interrupt_when_streaming, daemon=True).start()
    with capture_output() as captured, pytest.raises(GenerationCancelled) as info:
        ip.run_cell_magic("funmusic", "--wait --out song", PROMPT)
    job = get_worker().jobs()[-1]
    assert job.state == "cancelled"
    assert job.partial_path is not None and job.partial_path.exists()
    assert "interrupted" in str(info.value) and str(job.partial_path) in str(info.value)
    assert info.value._render_traceback_() == [info.value.one_line()]
    (out,) = captured.outputs
    assert "Stopped at " in out.data["text/html"]
    assert "song" not in ip.user_ns
    wait_until(lambda: slow.state.active_syntheses == 0, timeout=10)


def test_status_of_a_song_that_is_not_streamed(ip: InteractiveShell, slow: SimulatorServer) -> None:
    ip.run_line_magic("config", "FunMusicMagics.backend = 'api'")
    ip.run_line_magic("config", f"FunMusicMagics.base_url = {slow.base_url!r}")
    with capture_output():
        ip.run_cell_magic("funmusic", "--no-stream", LYRICS)
        job = current_worker().jobs()[-1]  # type: ignore[union-attr]
        wait_until(lambda: job.state == "generating")
        with capture_output() as status:
            ip.run_line_magic("funmusic", "status")
        assert job.wait(60) and job.song is not None
        with capture_output() as done:
            ip.run_line_magic("funmusic", "status")
    # No chunks and no audio yet: a dash, not "0.0 s" and "0 chunks".
    columns = re.split(r"\s{2,}", status.outputs[0].data["text/plain"].splitlines()[-1].strip())
    assert columns[:4] == [job.id, "generating", "—", "—"], columns
    # Done: the song's length, still no chunks.
    columns = re.split(r"\s{2,}", done.outputs[0].data["text/plain"].splitlines()[-1].strip())
    assert columns[:4] == [job.id, "done", f"{job.song.duration:.1f} s", "—"], columns


def test_status_table_never_breaks_words() -> None:
    # JupyterLab narrows a wide table; a cell styled ``word-break: break-all`` then splits
    # words mid-way ("waitin g"). Only the file column (a path, one long word) may break anywhere.
    from funmusic_jupyter import _render
    from funmusic_jupyter._validation import build_request
    from funmusic_jupyter._worker import Job

    job = Job(
        worker=None,  # type: ignore[arg-type]
        job_id="7",
        request=build_request(text="A waiting song about long words", stream=False),
        client_options={},
        output_dir=None,
        headers=None,
    )
    job.state = "generating"
    html = _render.status_html([job])
    cells = dict(zip(re.findall(r"<th[^>]*>([^<]*)</th>", html),
                     re.findall(r'<td style="([^"]*)"', html), strict=True))
    assert set(cells) == {"job", "state", "song", "audio", "chunks", "elapsed", "file", "error"}
    for column, style in cells.items():
        assert ("break-all" in style) == (column == "file"), (column, style)
    for column in ("job", "state", "audio", "chunks", "elapsed"):
        assert "white-space: nowrap" in cells[column]
    assert "overflow-wrap: break-word" in cells["song"]


def test_instrumental_flag_makes_a_song_without_vocals(api: InteractiveShell) -> None:
    captured = run(api, "--instrumental -f wav --wait --out song", PROMPT)
    song = api.user_ns["song"]
    assert song.request.instrumental is True and song.lyrics == ""
    assert song.request.payload()["input"]["is_instrumental"] is True
    html = captured.outputs[0].data["text/html"]
    assert "none: instrumental (no vocals)" in html  # the card's Gender row


def test_preview_model_leaves_the_default_voice_out_but_refuses_an_explicit_one(
    api: InteractiveShell,
) -> None:
    api.run_line_magic("config", "FunMusicMagics.gender = 'male'")  # a default, not a choice
    run(api, "--model fun-music-preview --wait --out song", PROMPT)
    song = api.user_ns["song"]
    assert song.model == "fun-music-preview" and "gender" not in song.request.payload()["input"]
    api.user_ns.pop("song")
    with capture_output() as captured:
        result = api.run_cell("%%funmusic --model fun-music-preview -g female --wait\n" + PROMPT)
    assert isinstance(result.error_in_exec, ValidationError)
    shown = (captured.stdout + captured.stderr).strip()
    assert "fun-music-preview takes no gender; got gender='female'" in shown
    assert "\n" not in shown and "Traceback" not in shown
