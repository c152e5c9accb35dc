"""Hear a song while it streams, end to end: ``%%funmusic`` and the panel, in a real browser.

A user's path, in JupyterLab 4 and Notebook 7 with Debian's headless Chromium and *no*
``--autoplay-policy`` flag (the page may play because the user pressed Shift+Enter or clicked):

- run a streaming cell with Shift+Enter, click the live player's Play;
- audio is really produced before the stream ends (the live ``<audio>``'s clock moves, or a
  running ``AudioContext`` for WAV);
- the song completes while it plays: playback goes on from the same position in the card's
  ``<audio>`` (the hand-over), with one player left in the output;
- the saved notebook reopens in a fresh server with no kernel, with its player and lyrics.

The kernel's embedded simulator streams at 4x real time (its default), so a one-minute song
arrives in about 15 s while playback, at 1x, is still near its start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _jupyterlab import LabPage, LabServer, chromium, serve
from test_live_player import assert_sound_while_streaming, click_play_when_ready, player_js

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Browser, Locator, Page, expect
except ImportError:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

SPEED = "4"
WAIT_MS = 30_000
PROMPT = "A short happy tune about tea"  # streams (a prompt), about a minute long

LOAD_EXT = "%load_ext funmusic_jupyter"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()  # what a user's Chromium has: no flag that lets pages play unasked


def _server(factory: pytest.TempPathFactory, app: str) -> Iterator[LabServer]:
    yield from serve(factory.mktemp(app), app=app, env={"FUNMUSIC_SIMULATOR_SPEED": SPEED})


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    yield from _server(tmp_path_factory, "lab")


@pytest.fixture(scope="module")
def notebook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    yield from _server(tmp_path_factory, "notebook")


@pytest.fixture
def page(browser: Browser, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    try:
        yield page
    finally:
        try:
            page.screenshot(path=str(tmp_path / f"{request.node.name}.png"), full_page=True)
        except Exception:
            pass
        context.close()
        for name in ("lab_server", "notebook_server"):
            if name in request.fixturenames:
                request.getfixturevalue(name).shutdown_kernels()


def shift_enter(nb: LabPage, index: int) -> None:
    """Run one cell as a user does: click into it, press Shift+Enter (a real user gesture)."""
    nb.cell(index).locator(".jp-InputArea-editor").click()
    nb.page.keyboard.press("Shift+Enter")


def start_streaming_cell(server: LabServer, page: Page, name: str, cell: str) -> LabPage:
    nb = LabPage.open(server, page, name, [LOAD_EXT, cell])
    shift_enter(nb, 0)
    nb.wait_kernel_idle()
    shift_enter(nb, 1)
    return nb


def assert_card_took_over(page: Page, out: Locator, played: float) -> dict[str, Any]:
    """The song's card plays on from the live position; the live player left the output."""
    page.wait_for_function("() => (window.__funmusicHandoffs || []).length > 0", timeout=90_000)
    record: dict[str, Any] = page.evaluate("() => window.__funmusicHandoffs[0]")
    assert record["error"] is None and record["playing"] is True, record
    assert record["cardPosition"] >= played, f"the card restarted: {record}, live was at {played}"
    assert abs(record["jumpMs"]) < 200 and record["gapMs"] < 200, record
    card = out.locator(".funmusic-song")
    expect(card).to_have_count(1, timeout=WAIT_MS)
    # One player: the live one is removed once the browser reported the hand-over.
    expect(out.locator(".funmusic-live")).to_have_count(0, timeout=WAIT_MS)
    expect(out.locator("audio")).to_have_count(1)
    audio = card.locator(f"audio[data-funmusic-handoff='{record['id']}']")
    expect(audio).to_have_count(1)
    handle = audio.element_handle()
    start = handle.evaluate("a => a.currentTime")
    page.wait_for_timeout(600)
    state = handle.evaluate("a => ({t: a.currentTime, paused: a.paused})")
    assert not state["paused"] and state["t"] > start + 0.3, (start, state)
    return record


def assert_sound_then_hand_over(
    page: Page, out: Locator, tmp_path: Path, name: str
) -> dict[str, Any]:
    player = out.locator(".funmusic-live")
    expect(player).to_have_count(1, timeout=WAIT_MS)
    # Live before the end: sound comes while the song is still streaming.
    click_play_when_ready(page, player)
    assert_sound_while_streaming(page, player)
    played = float(player_js(player, "p.engine.position"))
    page.screenshot(path=str(tmp_path / f"{name}-live.png"))
    record = assert_card_took_over(page, out, played)
    page.screenshot(path=str(tmp_path / f"{name}-card.png"))
    return record


@pytest.mark.parametrize(("app", "fmt"), [("lab", "mp3"), ("lab", "wav"), ("notebook", "mp3")])
def test_streaming_cell_plays_live_then_the_card_plays_on(
    app: str, fmt: str, request: pytest.FixtureRequest, page: Page, tmp_path: Path
) -> None:
    server: LabServer = request.getfixturevalue(f"{app}_server")
    name = f"stream-{app}-{fmt}"
    nb = start_streaming_cell(server, page, name, f"%%funmusic -f {fmt}\n{PROMPT}")
    out = nb.output(1)
    assert_sound_then_hand_over(page, out, tmp_path, name)
    expect(out.locator(".funmusic-progress")).to_have_count(0)
    nb.assert_no_errors()
    if app == "lab" and fmt == "mp3":
        assert_reopens_without_a_kernel(nb, server, tmp_path, name)


def assert_reopens_without_a_kernel(
    nb: LabPage, server: LabServer, tmp_path: Path, name: str
) -> None:
    """Saved, then opened by a fresh server (new data dirs: the notebook is not trusted) with
    no kernel running: the card, its player and its lyrics render; no dead widget."""
    lyrics = nb.output(1).locator(".funmusic-lyrics div").nth(1).inner_text().splitlines()[0]
    nb.command("docmanager:save")
    path = server.root / f"{name}.ipynb"
    nb.page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=WAIT_MS)
    server.shutdown_kernels()
    fresh = LabServer(tmp_path / "reopened")
    fresh.root.mkdir(parents=True)
    (fresh.root / path.name).write_bytes(path.read_bytes())
    with fresh:
        page = nb.page
        page.goto(fresh.notebook_url(name), wait_until="domcontentloaded")
        card = page.locator(".jp-NotebookPanel .funmusic-song")
        expect(card).to_have_count(1, timeout=60_000)
        expect(card.locator("audio")).to_have_count(1)
        expect(card.locator(".funmusic-lyrics")).to_contain_text(lyrics)
        expect(page.locator(".jp-NotebookPanel")).not_to_contain_text("Error displaying widget")
        expect(page.locator(".jp-NotebookPanel .funmusic-live")).to_have_count(0)
        audio = card.locator("audio").element_handle()
        page.wait_for_function("a => a.readyState >= 1", arg=audio, timeout=WAIT_MS)
        page.screenshot(path=str(tmp_path / f"{name}-reopened.png"))


def test_panel_plays_live_then_its_card_plays_on(
    lab_server: LabServer, page: Page, tmp_path: Path
) -> None:
    nb = LabPage.open(
        lab_server,
        page,
        "panel-live",
        [
            "from funmusic_jupyter import FunMusicPanel\n"
            f"FunMusicPanel(text={PROMPT!r}, reuse=False)  # made, not reused: a fresh take"
        ],
    )
    nb.run_all()
    out = nb.output(0)
    generate = out.get_by_role("button", name="Generate")
    expect(generate).to_be_enabled(timeout=WAIT_MS)
    generate.click()
    record = assert_sound_then_hand_over(page, out, tmp_path, "panel")
    assert record["cardPosition"] > 0
    expect(out).to_contain_text("Done:", timeout=WAIT_MS)
    nb.assert_no_errors()
