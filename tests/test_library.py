"""The song library: reuse instead of re-billing, the table of songs, spending and the budget.

Against the real simulator over loopback, its requests counted at the server (an ASGI wrapper
around the simulator's app), through a real IPython shell for the magics.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

import funmusic_jupyter as fm
from funmusic_jupyter import _spending
from funmusic_jupyter._config import resolve_settings
from funmusic_jupyter._errors import BudgetExceededError, FunMusicWarning
from funmusic_jupyter._html import format_money
from funmusic_jupyter._library import find_reusable, scan, song_key
from funmusic_jupyter._validation import build_request
from funmusic_jupyter._worker import current_worker
from funmusic_jupyter.simulator import SimulatorServer

PROMPT = "A cheerful ukulele song about breakfast and sunshine"
OTHER = "Slow jazz ballad for a rainy evening in the city"
GENERATION = "/services/audio/music/generation"


class Counting:
    """ASGI wrapper that counts generation requests (the billable ones) reaching the app, and
    drops the simulator's ``x-funmusic-simulated`` header: its songs then look like the real
    service's, which are billed (the simulator's own are free and never count)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state  # SimulatorServer.state reads app.state.simulator
        self.posts = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            self.posts += 1

        async def send_as_service(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [
                        (k, v)
                        for k, v in message["headers"]
                        if k.lower() != b"x-funmusic-simulated"
                    ],
                }
            await send(message)

        await self.app(scope, receive, send_as_service)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(speed=0)
    server.app = Counting(server.app)
    with server:
        yield server


def posts(sim: SimulatorServer) -> int:
    app = sim.app
    assert isinstance(app, Counting)
    return app.posts


@pytest.fixture(autouse=True)
def _fresh_session() -> Iterator[None]:
    _spending._reset_session()
    yield
    _spending._reset_session()


@pytest.fixture
def ip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: SimulatorServer
) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    monkeypatch.chdir(tmp_path)
    shell.run_line_magic("load_ext", "funmusic_jupyter")
    # The simulator as if it were the service: songs count as billed, as with a real key.
    shell.run_line_magic("config", "FunMusicMagics.backend = 'api'")
    shell.run_line_magic("config", f"FunMusicMagics.base_url = {sim.base_url!r}")
    yield shell
    worker = current_worker()
    for job in worker.cancel_all() if worker else []:
        job.wait(10)
    shell.run_line_magic("unload_ext", "funmusic_jupyter")
    shell.config.pop("FunMusicMagics", None)
    shell.user_ns.pop("song", None)


def run(shell: InteractiveShell, line: str, body: str) -> CapturedIO:
    with capture_output() as captured:
        shell.run_cell_magic("funmusic", line, body)
    return captured


def text(captured: CapturedIO) -> str:
    return "\n".join(o.data.get("text/plain", "") for o in captured.outputs)


def html(captured: CapturedIO) -> str:
    return "\n".join(o.data.get("text/html", "") for o in captured.outputs)


# -- the key ---------------------------------------------------------------------------------------
def test_the_key_changes_with_everything_that_decides_the_song() -> None:
    api = resolve_settings(backend="api", api_key="sk-test-0123456789abcdef")
    sim = resolve_settings(backend="simulator")
    base = dict(text=PROMPT, gender="female", format="mp3", model="fun-music-v1")
    key = song_key(build_request(**base), api)
    assert key == song_key(build_request(**base), api)  # stable
    assert key == song_key(build_request(**base, stream=True), api)  # streaming does not decide
    others = [
        song_key(build_request(**{**base, "text": OTHER}), api),
        song_key(build_request(**{**base, "gender": "male"}), api),
        song_key(build_request(**{**base, "format": "wav"}), api),
        song_key(build_request(**{**base, "model": "fun-music-v2"}), api),
        song_key(build_request(**base, seed=3), api),
        song_key(build_request(**base, instrumental=True), api),
        song_key(build_request(**base), sim),
        song_key(
            build_request(**base),
            resolve_settings(
                backend="api", api_key="sk-test-0123456789abcdef", endpoint="speech-synthesizer"
            ),
        ),
    ]
    assert key not in others and len(set(others)) == len(others)


# -- reuse in the magic ---------------------------------------------------------------------------
def test_an_unchanged_cell_run_again_sends_nothing_and_says_so(
    ip: InteractiveShell, sim: SimulatorServer
) -> None:
    before = posts(sim)
    first = run(ip, "--wait --out song", PROMPT)
    assert posts(sim) == before + 1
    made = ip.user_ns["song"]
    assert "reused" not in text(first)
    second = run(ip, "--wait --out song", PROMPT)
    assert posts(sim) == before + 1  # nothing sent
    assert "reused from funmusic-output/" in text(second)
    assert "not billed; --fresh makes a new take" in text(second)
    assert ip.user_ns["song"].audio == made.audio
    # Not --wait either: a reused song is shown at once, one display, no live player.
    third = run(ip, "--out song", PROMPT)
    assert posts(sim) == before + 1
    assert len(third.outputs) == 1 and "reused from" in text(third)
    # --fresh makes a new take and keeps the old one.
    run(ip, "--wait --fresh", PROMPT)
    assert posts(sim) == before + 2
    assert len([e for e in scan("funmusic-output") if not e.partial]) == 2
    # Something that decides the song changed: a new one.
    run(ip, "--wait -g male", PROMPT)
    assert posts(sim) == before + 3


def test_reuse_off_and_partial_songs_never_reused(
    ip: InteractiveShell, sim: SimulatorServer
) -> None:
    before = posts(sim)
    run(ip, "--wait --fault drop-after=2", PROMPT)  # a broken stream: a partial song
    assert [e.partial for e in scan("funmusic-output")] == [True]
    run(ip, "--wait", PROMPT)
    assert posts(sim) == before + 2  # the partial one was not reused
    ip.run_line_magic("config", "FunMusicMagics.reuse = False")
    run(ip, "--wait", PROMPT)
    assert posts(sim) == before + 3


# -- reuse in the Python API ----------------------------------------------------------------------
def test_generate_reuses_only_when_asked(
    sim: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    options: dict[str, Any] = {"backend": "api", "base_url": sim.base_url}
    before = posts(sim)
    made = fm.generate(prompt=PROMPT, reuse=True, **options)  # saved, so it can be found
    assert made.saved_path is not None and made.made_at is None
    again = fm.generate(prompt=PROMPT, reuse=True, **options)
    assert posts(sim) == before + 1
    assert again.audio == made.audio and again.made_at is not None
    assert "not billed; reuse=False makes a new take" in again._repr_mimebundle_()["text/plain"]
    fm.generate(prompt=PROMPT, **options)  # not asked: a new request
    assert posts(sim) == before + 2


@pytest.mark.anyio
async def test_agenerate_reuses_too(sim: SimulatorServer, tmp_path: Path) -> None:
    out = tmp_path / "songs"
    before = posts(sim)
    options: dict[str, Any] = {"backend": "api", "base_url": sim.base_url, "output_dir": out}
    await fm.agenerate(prompt=OTHER, reuse=True, **options)
    song = await fm.agenerate(prompt=OTHER, reuse=True, **options)
    assert posts(sim) == before + 1 and song.made_at is not None
    from funmusic_jupyter._api import aclose_default_clients

    await aclose_default_clients()


def test_find_reusable_is_the_shared_check(sim: SimulatorServer, tmp_path: Path) -> None:
    settings = resolve_settings(backend="api", base_url=sim.base_url)
    request = build_request(text=PROMPT)
    assert find_reusable(request, settings, tmp_path) is None  # empty directory
    fm.generate(
        prompt=PROMPT, backend="api", base_url=sim.base_url, reuse=True, output_dir=tmp_path
    )
    found = find_reusable(request, settings, tmp_path)
    assert found is not None and found.saved_path is not None
    sim_settings = resolve_settings(backend="simulator")
    assert find_reusable(request, sim_settings, tmp_path) is None  # another backend


# -- the library -----------------------------------------------------------------------------------
def test_library_lists_newest_first_and_survives_bad_sidecars(
    ip: InteractiveShell, sim: SimulatorServer
) -> None:
    run(ip, "--wait", PROMPT)
    time.sleep(1.1)  # file names and saved_at have one-second resolution
    run(ip, "--wait -f wav --lyrics", "[verse]\nHello there my friend\n[chorus]\nSing with me")
    out = Path("funmusic-output")
    # An older version's sidecar, a corrupt one, and a song whose audio was deleted by hand.
    (out / "old.json").write_text(json.dumps({"complete": True, "duration": 3}))
    (out / "broken.json").write_text("{not json")
    gone = out / "gone.mp3"
    gone.write_bytes(b"x")
    (out / "gone.json").write_text((out / next(out.glob("*_a-cheerful*.json")).name).read_text())
    gone.unlink()
    with pytest.warns(FunMusicWarning) as caught:
        songs = fm.library()
    skipped = sorted(str(w.message).split(":")[1].strip() for w in caught)
    assert skipped == ["skipped broken.json", "skipped gone.json", "skipped old.json"]
    assert len(songs) == 2
    newest, oldest = songs
    assert (newest.mode, newest.format, newest.title) == ("lyrics", "wav", "Hello there my friend")
    assert (oldest.mode, oldest.format) == ("prompt", "mp3") and oldest.title == PROMPT
    assert not newest.simulated and not newest.partial and newest.duration
    assert newest.cost(0.002) == round(newest.duration * 0.002, 6)
    assert newest.path.is_file()
    table = songs._repr_html_()
    rel = os.path.relpath(newest.path, Path.cwd())
    assert f'<a href="{rel}"' in table
    assert f'<audio controls preload="none" src="{rel}"' in table  # fetched only on Play
    assert "base64" not in table and "<script" not in table
    assert repr(songs).splitlines()[0] == "2 songs in funmusic-output"


def test_funmusic_list_shows_the_table(ip: InteractiveShell, sim: SimulatorServer) -> None:
    run(ip, "--wait", PROMPT)
    time.sleep(1.1)
    run(ip, "--wait", OTHER)
    with capture_output() as captured:
        ip.run_line_magic("funmusic", "list 1")
    shown = captured.outputs[0].data
    assert shown["text/plain"].startswith("1 song in funmusic-output")
    assert "Slow jazz ballad" in shown["text/plain"] and "cheerful" not in shown["text/plain"]
    assert 'preload="none"' in shown["text/html"]
    with capture_output() as captured:
        ip.run_line_magic("funmusic", "list")
    assert captured.outputs[0].data["text/plain"].startswith("2 songs")
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="N must be a whole number"):
        ip.run_line_magic("funmusic", "list x")


# -- spending --------------------------------------------------------------------------------------
def test_cost_separates_the_service_from_the_simulator(
    ip: InteractiveShell, sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNMUSIC_SIMULATOR_SPEED", "0")
    run(ip, "--wait --out song", PROMPT)
    billed = ip.user_ns["song"].duration
    run(ip, "--wait --backend simulator --out song", OTHER)  # free
    free = ip.user_ns["song"].duration
    report = fm.library().cost()
    assert report.billed_seconds == billed and report.simulated_seconds == free
    assert report.cost == round(billed * 0.002, 6)
    with capture_output() as captured:
        ip.run_line_magic("funmusic", "cost")
    shown = captured.outputs[0].data["text/plain"]
    assert f"1 song, {billed:g} s" in shown and f"1 song, {free:g} s" in shown
    session = f"this kernel session: {format_money(report.cost, 'CNY')} ({billed:g} s billed)"
    assert session in shown  # the session's running total: the billed song only


def test_the_card_shows_the_sessions_running_total(ip: InteractiveShell) -> None:
    first = run(ip, "--wait --out song", PROMPT)
    seconds = ip.user_ns["song"].duration
    assert "Session total</th><td" in html(first)
    assert f"({seconds:g} s billed)" in html(first)


def test_budget_refuses_the_request_that_would_cross_it(
    ip: InteractiveShell, sim: SimulatorServer
) -> None:
    ip.run_line_magic("config", "FunMusicMagics.budget = 0.01")
    run(ip, "--wait --out song", PROMPT)  # under the budget: made
    spent = ip.user_ns["song"].duration * 0.002
    assert spent >= 0.01  # simulator songs are long enough that one reaches it
    before = posts(sim)
    with pytest.raises(BudgetExceededError) as refused:
        ip.run_cell_magic("funmusic", "--wait", OTHER)
    assert posts(sim) == before  # never sent
    message = str(refused.value)
    assert "0.01 CNY budget" in message and "budget reached" in message
    assert "%config FunMusicMagics.budget" in message and "\n" not in message
    # A reused song costs nothing, so it is still shown; the simulator is free.
    assert "reused from" in text(run(ip, "--wait", PROMPT))
    # (--backend simulator goes to the configured base URL, this same server, as a simulator.)
    run(ip, "--wait --backend simulator", OTHER)
    assert posts(sim) == before + 1
    # The Python API follows the configured budget too.
    with pytest.raises(BudgetExceededError):
        fm.generate(prompt=OTHER, backend="api", base_url=sim.base_url)
    assert posts(sim) == before + 1
    ip.run_line_magic("config", "FunMusicMagics.budget = None")
    run(ip, "--wait", OTHER)
    assert posts(sim) == before + 2


# -- the panel -------------------------------------------------------------------------------------
def _panel(sim: SimulatorServer, out: Path, **kwargs: Any) -> Any:
    from funmusic_jupyter import FunMusicPanel

    return FunMusicPanel(
        backend="api", base_url=sim.base_url, output_dir=out, text=PROMPT, **kwargs
    )


def _click(panel: Any) -> Any:
    panel.generate_button.click()
    song = panel.wait(60)
    deadline = time.monotonic() + 60
    while panel.busy:  # the run ends just after the job does
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return song


def test_the_panel_reuses_and_lists_the_library_across_panels(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    out = tmp_path / "songs"
    before = posts(sim)
    first = _panel(sim, out)
    made = _click(first)
    assert posts(sim) == before + 1 and made.made_at is None
    # A new panel (as after a kernel restart): the history comes from the output directory.
    second = _panel(sim, out)
    assert repr(second).endswith("songs=0, state='idle')")  # this session's songs: none yet
    labels = [label for label, _ in second.history_select.options]
    assert len(labels) == 1 and "A cheerful ukulele song" in labels[0]
    second.history_select.value = second.history_select.options[0][1]
    second.show_button.click()
    assert "<audio" in second.result.value and "base64" in second.result.value
    reused = _click(second)
    assert posts(sim) == before + 1  # nothing sent
    assert reused.audio == made.audio and reused.made_at is not None
    assert "reused from" in second.result.value and "Reused" in second.status.value
    assert len(second.history_select.options) == 1  # listed once, not twice
    second.reuse = False
    _click(second)
    assert posts(sim) == before + 2


def test_the_panel_follows_the_budget(sim: SimulatorServer, tmp_path: Path) -> None:
    panel = _panel(sim, tmp_path / "songs", budget=0.0)
    before = posts(sim)
    assert _click(panel) is None
    assert posts(sim) == before
    assert "budget reached" in panel.result.value


@pytest.mark.parametrize("is_async", [False, True])
def test_streaming_api_checks_the_budget_and_counts_the_song(
    sim: SimulatorServer, is_async: bool
) -> None:
    # fm.stream / fm.astream follow the same budget and spending as generate().
    async def astreamed(budget: float) -> Any:
        async with fm.astream(prompt=OTHER, backend="api", base_url=sim.base_url,
                              budget=budget) as song_stream:
            async for _ in song_stream:
                pass
        return song_stream.song

    def streamed(budget: float) -> Any:
        if is_async:
            return asyncio.run(astreamed(budget))
        with fm.stream(prompt=OTHER, backend="api", base_url=sim.base_url,
                       budget=budget) as song_stream:
            for _ in song_stream:
                pass
        return song_stream.song

    song = streamed(1.0)
    assert song is not None and not song.simulated and song.key
    assert _spending.session_seconds() == pytest.approx(song.duration)
    before = posts(sim)
    with pytest.raises(BudgetExceededError, match="budget reached"):
        streamed(song.duration * 0.002 / 2)
    assert posts(sim) == before  # refused before anything was sent
