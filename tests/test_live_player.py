"""The live player in a real browser: a real kernel streams a real simulator song into it.

Each notebook's one cell shows a ``LivePlayer`` and starts a thread (in the kernel) that streams
a song from a ``SimulatorServer`` at a few times real time and ``feed()``s each chunk; at the
end it shows the song card (``<audio data-funmusic-handoff=…>``), calls ``finish()``, waits for
the browser's ``handed-over`` and then removes the live display: what the magic will do.

Chromium runs with its real autoplay rules (no ``--autoplay-policy`` flag): the test clicks
Play, as a user would, and the hand-over to the card relies on that click's sticky activation.
Muted by Playwright, media still advance: the tests read ``currentTime`` and the AudioContext.

JupyterLab 4 and Notebook 7. Screenshots of what the user sees go to each test's tmp dir.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _jupyterlab import LabPage, LabServer, chromium, serve

import funmusic_jupyter as fm
from funmusic_jupyter.simulator import SimulatorServer

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Browser, Locator, Page, expect
except ImportError:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

# 38 s of song from the simulator (its length follows the prompt), streamed at SPEED x real time.
PROMPT = "upbeat dance party happy summer"
SPEED = 4.0
WAIT_MS = 30_000

# Written next to the notebooks (the kernel's working directory), so each cell is one call.
HELPER = """\
import threading, traceback
import funmusic_jupyter as fm
from funmusic_jupyter._live import LivePlayer
from funmusic_jupyter._render import audio_html
from funmusic_jupyter.simulator import SimulatorServer
from IPython.display import HTML, display


def stream_song(fmt, *, prompt, speed, engine="auto", autoplay=False, with_card=True,
                remove_first=False):
    sim = SimulatorServer(speed=speed).__enter__()  # lives as long as the kernel
    player = LivePlayer(format=fmt, title="Summer party", handoff_id="song-1", engine=engine,
                        autoplay=autoplay)
    live = display(player, display_id=True)
    card = display(HTML(""), display_id=True)

    def run():
        try:
            with fm.stream(prompt=prompt, format=fmt, base_url=sim.base_url) as stream:
                for event in stream:
                    if isinstance(event, fm.AudioChunk):
                        player.feed(event.data)
                    else:
                        song = event.song
            if with_card:
                markup = audio_html(song.audio, fmt).replace(
                    "<audio ", '<audio data-funmusic-handoff="song-1" ', 1)
                card.update(HTML('<div class="test-card">' + markup + '</div>'))
            if remove_first:  # the live display goes before `end`: the view's cleanup hands over
                live.update(HTML('<div class="test-live-gone" data-handed="True"></div>'))
            player.finish("complete")
            handed = player.wait_handed_over(20)
            if with_card and not remove_first:
                live.update(HTML(f'<div class="test-live-gone" data-handed="{handed}"></div>'))
        except BaseException:
            card.update(HTML('<pre class="test-error">' + traceback.format_exc() + '</pre>'))

    threading.Thread(target=run, daemon=True).start()
    return player
"""


def song_cell(fmt: str, *, speed: float = SPEED, **options: object) -> str:
    args = "".join(f", {k}={v!r}" for k, v in options.items())
    return (
        "from live_song import stream_song\n"
        f"player = stream_song({fmt!r}, prompt={PROMPT!r}, speed={speed}{args})"
    )


# -- fixtures ----------------------------------------------------------------------------------
def _server(factory: pytest.TempPathFactory, app: str) -> Iterator[LabServer]:
    for server in serve(factory.mktemp(app), app=app):
        (server.root / "live_song.py").write_text(HELPER)
        yield server


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    yield from _server(tmp_path_factory, "lab")


@pytest.fixture(scope="module")
def notebook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    yield from _server(tmp_path_factory, "notebook")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()  # no --autoplay-policy flag: the browser's real rules


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
        if errors:
            (tmp_path / "page-errors.txt").write_text("\n".join(errors))


# -- helpers -----------------------------------------------------------------------------------
def player_js(player: Locator, expression: str) -> Any:
    """Evaluate ``expression`` with ``p`` the view (``el.__funmusicPlayer``)."""
    return player.evaluate(f"el => {{ const p = el.__funmusicPlayer; return {expression}; }}")


def wait_player(page: Page, player: Locator, condition: str, timeout: float = WAIT_MS) -> None:
    page.wait_for_function(
        f"el => {{ const p = el.__funmusicPlayer; return !!p && ({condition}); }}",
        arg=player.element_handle(),
        timeout=timeout,
    )


def start_song(server: LabServer, page: Page, name: str, cell: str) -> tuple[LabPage, Locator]:
    nb = LabPage.open(server, page, name, [cell])
    nb.run_all()
    nb.assert_no_errors()
    player = nb.output(0).locator(".funmusic-live")
    expect(player).to_have_count(1, timeout=WAIT_MS)
    assert "FunMusic live player" not in nb.output_text(0)  # a widget, not its text repr
    return nb, player


def click_play_when_ready(page: Page, player: Locator) -> dict[str, float]:
    """Wait for Play to be enabled, check the stream is not over, click it, and time it."""
    play = player.get_by_role("button", name="Play")
    expect(play).to_be_enabled(timeout=WAIT_MS)
    state = player_js(
        player,
        "({complete: p.song.complete, bytes: p.song.store.length,"
        " enabledAfter: p.song.stats.playEnabledAt - p.song.stats.firstChunkAt})",
    )
    assert not state["complete"], f"Play was enabled only once the stream was over: {state}"
    clicked = time.monotonic()
    play.click()
    expect(player.get_by_role("button", name="Pause")).to_be_visible()
    wait_player(page, player, "p.engine.position > 0.05")
    advanced = time.monotonic()
    return {
        "first_chunk_to_play_enabled_ms": state["enabledAfter"],
        "click_to_first_advance_ms": (advanced - clicked) * 1000,
    }


def assert_sound_while_streaming(page: Page, player: Locator) -> None:
    """Audio is really being produced, before the stream ends."""
    kind = player_js(player, "p.song.engine")
    before = player_js(player, "p.engine.position")
    page.wait_for_timeout(700)
    if kind == "mse":
        state = player_js(
            player,
            "({t: p.engine.element.currentTime, paused: p.engine.element.paused,"
            " ready: p.engine.element.readyState, complete: p.song.complete})",
        )
        assert not state["paused"] and state["ready"] >= 2, state
        assert state["t"] > before + 0.3, (before, state)
    else:
        state = player_js(
            player,
            "({ctx: p.engine.ctx.state, ctxTime: p.engine.ctx.currentTime,"
            " sources: p.engine.scheduledSources, t: p.engine.position,"
            " complete: p.song.complete})",
        )
        assert state["ctx"] == "running" and state["sources"] > 0, state
        assert state["t"] > before + 0.3, (before, state)
    assert not state["complete"], f"the stream ended before the check: {state}"


def assert_waveform_grows(page: Page, player: Locator) -> None:
    canvas = player.locator("canvas.funmusic-live-wave")
    first = int(canvas.get_attribute("data-bins") or 0)
    page.wait_for_timeout(1200)
    second = int(canvas.get_attribute("data-bins") or 0)
    assert 0 < first < second, (first, second)
    box = canvas.bounding_box()
    assert box and 40 <= box["height"] <= 56, box


def assert_seeks(page: Page, player: Locator) -> None:
    """Click on the waveform within what arrived, then the keyboard: position follows."""
    canvas = player.locator("canvas.funmusic-live-wave")
    received = player_js(player, "p.engine.received")
    span = player_js(player, "Math.max(30, p.engine.received)")  # the waveform's span
    target = received * 0.25
    box = canvas.bounding_box()
    assert box
    canvas.click(position={"x": box["width"] * target / span, "y": box["height"] / 2})
    position = player_js(player, "p.engine.position")
    assert abs(position - target) < 0.6, (position, target, received)
    canvas.focus()
    page.keyboard.press("ArrowRight")  # +5 s
    position2 = player_js(player, "p.engine.position")
    assert abs(position2 - (position + 5)) < 0.6, (position, position2)
    assert canvas.get_attribute("aria-valuenow") is not None
    wait_player(page, player, f"p.engine.position > {position2 + 0.3} && !p.engine.buffering")
    # Play/Pause from the keyboard too (Enter on the focused button): pause, then play again.
    pause = player.get_by_role("button", name="Pause")
    pause.focus()
    page.keyboard.press("Enter")
    expect(player.get_by_role("button", name="Play")).to_be_focused()
    assert player_js(player, "p.engine.playing") is False
    page.keyboard.press("Enter")
    expect(player.get_by_role("button", name="Pause")).to_be_visible()
    wait_player(page, player, "p.engine.playing")


def assert_handed_over(page: Page, nb: LabPage) -> dict[str, Any]:
    """The card took over at the live position, is playing, and the live display is gone."""
    out = nb.output(0)
    error = out.locator(".test-error")
    page.wait_for_function(
        "() => (window.__funmusicHandoffs || []).length > 0"
        " || document.querySelector('.test-error')",
        timeout=WAIT_MS,
    )
    assert error.count() == 0, error.inner_text()
    record: dict[str, Any] = page.evaluate("() => window.__funmusicHandoffs[0]")
    assert record["error"] is None, record
    assert record["id"] == "song-1" and record["playing"] is True, record
    assert record["cardPosition"] > 2.0, f"the card restarted from the beginning: {record}"
    assert abs(record["jumpMs"]) < 200, record
    assert record["gapMs"] < 200, record
    # The live display was replaced, after the browser reported the hand-over.
    gone = out.locator(".test-live-gone")
    expect(gone).to_have_count(1, timeout=WAIT_MS)
    assert gone.get_attribute("data-handed") == "True"
    expect(out.locator(".funmusic-live")).to_have_count(0)
    # One player left, playing on from where the live one was.
    audio = out.locator(".test-card audio")
    expect(audio).to_have_count(1)
    handle = audio.element_handle()
    start = handle.evaluate("a => a.currentTime")
    page.wait_for_timeout(600)
    state = handle.evaluate("a => ({t: a.currentTime, paused: a.paused})")
    assert not state["paused"] and state["t"] > start + 0.3, (start, state)
    assert page.locator("#funmusic-live-audio audio").count() == 0  # the live audio is gone
    return record


def screenshot(nb: LabPage, path: Path) -> None:
    """The notebook as the user sees it, scrolled to the song's output."""
    nb.output(0).scroll_into_view_if_needed()
    nb.page.screenshot(path=str(path))
    nb.output(0).screenshot(path=str(path.with_name(f"{path.stem}-output.png")))


def save_figures(tmp_path: Path, **figures: Any) -> None:
    (tmp_path / "figures.json").write_text(json.dumps(figures, indent=2))


# -- tests -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "engine", "app"),
    [
        ("mp3", "auto", "lab"),  # Media Source Extensions
        ("mp3", "auto", "notebook"),
        ("wav", "auto", "lab"),  # Web Audio, PCM scheduled
        ("wav", "auto", "notebook"),
        ("mp3", "webaudio", "lab"),  # what Firefox does: frame-aligned pieces decoded
    ],
)
def test_plays_while_streaming_and_hands_over(
    fmt: str, engine: str, app: str, request: pytest.FixtureRequest, page: Page, tmp_path: Path
) -> None:
    server: LabServer = request.getfixturevalue(f"{app}_server")
    try:
        cell = song_cell(fmt, engine=engine)
        nb, player = start_song(server, page, f"live_{fmt}_{engine}_{app}", cell)
        expected = "mse" if (fmt, engine) == ("mp3", "auto") else "webaudio"
        assert player_js(player, "p.song.engine") == expected
        expect(player).to_have_attribute("data-engine", expected)
        timing = click_play_when_ready(page, player)
        assert_sound_while_streaming(page, player)
        assert_waveform_grows(page, player)
        screenshot(nb, tmp_path / f"live-{fmt}-{engine}-{app}.png")
        assert_seeks(page, player)
        record = assert_handed_over(page, nb)
        assert record["reason"] == "end"
        screenshot(nb, tmp_path / f"handed-over-{fmt}-{engine}-{app}.png")
        save_figures(tmp_path, **timing, handoff=record)
    finally:
        server.shutdown_kernels()


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_underrun_shows_buffering_and_resumes_by_itself(
    fmt: str, lab_server: LabServer, page: Page, tmp_path: Path
) -> None:
    # Slower than real time: chunk k (1 s of audio) arrives at k / 0.8 s, so playback catches up.
    try:
        nb, player = start_song(lab_server, page, f"underrun_{fmt}", song_cell(fmt, speed=0.8))
        player.get_by_role("button", name="Play").click()
        wait_player(page, player, "p.engine.buffering", timeout=15_000)
        expect(player).to_have_attribute("data-state", "buffering")
        expect(player.locator(".funmusic-live-status")).to_have_text("Buffering…")
        stalled_at = player_js(player, "p.engine.position")
        screenshot(nb, tmp_path / f"buffering-{fmt}.png")
        # More audio arrives: playing again, from where it stopped, with no click.
        wait_player(page, player, f"!p.engine.buffering && p.engine.position > {stalled_at + 0.2}")
        expect(player).to_have_attribute("data-state", re.compile("playing|buffering"))
        assert player_js(player, "p.engine.playing") is True
        assert abs(player_js(player, "p.song.stats.firstChunkAt") or 0) > 0
    finally:
        lab_server.shutdown_kernels()


def test_late_and_reloaded_views_get_every_byte_and_download_it(
    lab_server: LabServer, page: Page, tmp_path: Path
) -> None:
    """The song streams unpaced, before the browser's model can exist; a second view of the
    same player and a reloaded page still get every byte (``need``), and Download gives the
    exact file."""
    with SimulatorServer(speed=0) as sim:
        expected = fm.generate(prompt=PROMPT, format="mp3", stream=True, base_url=sim.base_url)
    cells = [song_cell("mp3", speed=0, with_card=False), "display(player)"]
    try:
        nb = LabPage.open(lab_server, page, "late_views", cells)
        nb.run_all()
        nb.assert_no_errors()
        players = page.locator(".funmusic-live")
        expect(players).to_have_count(2, timeout=WAIT_MS)
        complete = f"p.song.complete && p.song.store.length === {len(expected.audio)}"
        for i in range(2):
            wait_player(page, players.nth(i), complete)
        # Two views, one song: the bytes are kept once, at model level.
        first_song = "document.querySelector('.funmusic-live').__funmusicPlayer.song"
        assert player_js(players.nth(1), f"p.song === {first_song}")
        # No card in this notebook: after its search (10 s) the live player stays the player.
        report = page.wait_for_function(f"() => {first_song}.handoffReport", timeout=WAIT_MS)
        assert report.json_value() == {"position": None, "playing": False, "card": False}
        for i in range(2):
            expect(players.nth(i)).to_have_attribute("data-state", "ready")
            expect(players.nth(i).get_by_role("button", name="Play")).to_be_enabled()

        save_and_reload(nb)
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=WAIT_MS
        )
        nb.wait_kernel_idle()
        players = page.locator(".funmusic-live")
        expect(players).to_have_count(2, timeout=WAIT_MS)
        player = players.first
        # A new page, new models: the kernel sent nothing new, every byte came through `need`.
        wait_player(page, player, complete)
        expect(player.locator(".funmusic-live-time")).to_have_text(re.compile(r"^0:00 / 0:3\d$"))
        with page.expect_download() as info:
            player.get_by_role("button", name="Download").click()
        download = info.value
        assert download.suggested_filename == "Summer-party.mp3"
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        assert path.read_bytes() == expected.audio
        screenshot(nb, tmp_path / "complete-not-played.png")
    finally:
        lab_server.shutdown_kernels()


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_autoplay_after_shift_enter(
    fmt: str, lab_server: LabServer, page: Page, tmp_path: Path
) -> None:
    """``autoplay=True``: the user ran the cell with Shift+Enter, so the browser lets it play."""
    try:
        nb = LabPage.open(lab_server, page, f"autoplay_{fmt}", [song_cell(fmt, autoplay=True)])
        nb.cell(0).locator(".jp-InputArea-prompt").click()  # select the cell, as a user does
        page.keyboard.press("Shift+Enter")
        player = nb.output(0).locator(".funmusic-live")
        expect(player).to_have_count(1, timeout=WAIT_MS)
        # Polled every animation frame: when the playhead first moves, in the page's clock.
        wait_player(
            page, player, "p.engine.position > 0 && (p.song.stats.movedAt ||= performance.now())"
        )
        wait_player(page, player, "p.engine.playing && p.engine.position > 0.3")
        assert player_js(player, "p.song.complete") is False
        expect(player.get_by_role("button", name="Pause")).to_be_visible()
        moved = player_js(player, "p.song.stats.movedAt - p.song.stats.firstChunkAt")
        save_figures(tmp_path, first_chunk_in_browser_to_playhead_moving_ms=moved)
    finally:
        lab_server.shutdown_kernels()


def save_and_reload(nb: LabPage) -> None:
    """Save (the outputs keep the widget's model id) and reload while the kernel lives."""
    page = nb.page
    nb.command("docmanager:save")
    page.wait_for_function(
        "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=WAIT_MS
    )
    page.reload()


def test_autoplay_refused_without_user_activation_says_press_play(
    lab_server: LabServer, page: Page, tmp_path: Path
) -> None:
    """A page with no user activation (reloaded while the song streams): the browser refuses
    autoplay, the player says "press Play", and Play works.

    Playwright evaluates its scripts (evaluate, wait_for_function, expect) with a user gesture,
    which would give the page activation: after the reload this test only reads the page
    through a CDP session's plain Runtime.evaluate, until it clicks Play."""
    try:
        cell = song_cell("mp3", autoplay=True, speed=1.5)
        nb, player = start_song(lab_server, page, "autoplay_refused", cell)
        save_and_reload(nb)
        cdp = page.context.new_cdp_session(page)

        def js(expression: str) -> Any:
            reply = cdp.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
            return reply["result"].get("value")

        status = "document.querySelector('.funmusic-live-status')?.textContent"
        deadline = time.monotonic() + WAIT_MS / 1000
        while "autoplay" not in (js(status) or "") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert js(status) == "The browser blocked autoplay: press Play.", js(status)
        assert js("navigator.userActivation.hasBeenActive") is False
        view = "document.querySelector('.funmusic-live').__funmusicPlayer"
        assert js(f"{view}.engine.playing") is False
        assert js(f"{view}.song.complete") is False
        page.screenshot(path=str(tmp_path / "autoplay-refused.png"))
        player = page.locator(".funmusic-live")
        player.get_by_role("button", name="Play").click()
        wait_player(page, player, "p.engine.playing && p.engine.position > 0.3")
    finally:
        lab_server.shutdown_kernels()


def test_removing_a_playing_view_hands_over_in_its_cleanup(
    lab_server: LabServer, page: Page, tmp_path: Path
) -> None:
    """The live display is removed before `end` (a front end that does not wait): the view's
    cleanup hands playback to the card, which goes on from the same position."""
    try:
        cell = song_cell("mp3", remove_first=True)
        nb, player = start_song(lab_server, page, "removed_first", cell)
        click_play_when_ready(page, player)
        record = assert_handed_over(page, nb)
        assert (record["engine"], record["reason"]) == ("mse", "view removed")
    finally:
        lab_server.shutdown_kernels()


@pytest.mark.parametrize(
    ("remove", "engine"),
    [
        # Firefox: no audio/mpeg Media Source Extensions; MP3 goes through Web Audio by itself.
        (["MediaSource", "ManagedMediaSource"], "webaudio"),
        # Neither Media Source Extensions nor Web Audio: the player says so.
        (["MediaSource", "ManagedMediaSource", "AudioContext", "OfflineAudioContext"], "none"),
    ],
)
def test_browsers_without_mse_or_web_audio(
    remove: list[str], engine: str, lab_server: LabServer, page: Page, tmp_path: Path
) -> None:
    page.context.add_init_script("".join(f"delete window.{name};" for name in remove))
    try:
        nb, player = start_song(lab_server, page, f"no_{engine}", song_cell("mp3"))
        expect(player).to_have_attribute("data-engine", engine, timeout=WAIT_MS)
        if engine == "webaudio":
            click_play_when_ready(page, player)
            assert_sound_while_streaming(page, player)
        else:
            expect(player.locator(".funmusic-live-status")).to_have_text(
                "Live playback is not available in this browser; "
                "the player appears when the song is done."
            )
            expect(player.get_by_role("button", name="Play")).to_be_disabled()
            # The bytes still arrive: Download works, and the waveform is not drawn (no decoder).
            wait_player(page, player, "p.song.store.length > 0")
            expect(player.get_by_role("button", name="Download")).to_be_enabled()
            screenshot(nb, tmp_path / "unsupported.png")
    finally:
        lab_server.shutdown_kernels()
