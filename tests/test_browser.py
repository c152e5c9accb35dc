"""What a user sees and hears: JupyterLab in a real headless Chromium, songs from the simulator.

One JupyterLab server and one browser for the module (each test opens its own notebook, with
its own kernel, in a fresh page). The kernel's embedded simulator runs fast
(``FUNMUSIC_SIMULATOR_SPEED=50``) except in the test that watches progress. Every test leaves a
screenshot of its notebook in its pytest tmp dir.

Needs Debian's ``/usr/bin/chromium``: skipped with the reason when it is missing, except under
``CI=true``, where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _jupyterlab import AUTOPLAY_ARGS, CHROMIUM_ARGS, LabPage, LabServer, chromium, serve

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Browser, Locator, Page, expect
except ImportError:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

LOAD_EXT = "%load_ext funmusic_jupyter"
SPEED = "50"  # audio seconds per wall second in the kernel's embedded simulator
WAIT_MS = 30_000  # any one thing the page must show
PLAY_MS = 10_000

# Two sections, a handful of words: short enough for a quick song (it must not stream: streamed
# English lyrics need 200-250 words).
LYRICS = """[verse]
Morning light on the kitchen floor
Coffee steam and an open door
[chorus]
Sing it loud and sing it slow
Every road will lead us home"""


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    env = {"FUNMUSIC_SIMULATOR_SPEED": SPEED}
    yield from serve(tmp_path_factory.mktemp("jupyterlab"), env=env)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # These tests start the song cards' <audio> from script, with no click.
    yield from chromium(args=[*CHROMIUM_ARGS, *AUTOPLAY_ARGS])


@pytest.fixture
def page(
    lab_server: LabServer, browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh page (its own ``window``); afterwards a screenshot, and the test's kernels go."""
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        # After the runs, whatever happened: the screenshot is what one looks at first.
        try:
            page.screenshot(path=str(tmp_path / f"{request.node.name}.png"), full_page=True)
        except Exception:
            pass
        context.close()
        if errors:
            (tmp_path / "page-errors.txt").write_text("\n".join(errors))
        lab_server.shutdown_kernels()


def open_and_run(server: LabServer, page: Page, name: str, cells: list[str]) -> LabPage:
    nb = LabPage.open(server, page, name, cells)
    nb.run_all()
    return nb


# -- helpers about songs -----------------------------------------------------------------------
def detail(card: Locator, label: str) -> str:
    """The value of one row of the song's metadata table."""
    cell = card.locator(f"tr:has(th:text-is('{label}')) td")
    expect(cell).to_have_count(1)
    text: str = cell.inner_text().strip()
    return text


def billed_duration(card: Locator) -> float:
    text = detail(card, "Duration")  # "37 s (0:37)"
    match = re.match(r"([\d.]+) s \(\d+:\d\d\)$", text)
    assert match, f"Duration row is {text!r}"
    return float(match.group(1))


def assert_plays(page: Page, audio: Locator, mime: str, *, duration: float) -> None:
    """The ``<audio>`` carries ``mime``, loads, lasts ``duration`` (±1 s) and really plays."""
    expect(audio).to_have_count(1)
    # The data URI is on the <audio> itself (a <source>'s src would not survive JupyterLab's
    # sanitizer in an untrusted notebook).
    src = audio.get_attribute("src") or ""
    assert src.startswith(f"data:{mime};base64,"), src[:60]
    handle = audio.element_handle()
    page.wait_for_function("a => a.readyState >= 1 || a.error", arg=handle, timeout=WAIT_MS)
    state = handle.evaluate(
        "a => ({ready: a.readyState, duration: a.duration, error: a.error && a.error.message,"
        " type: a.currentSrc.slice(0, 30)})"
    )
    assert state["error"] is None, state
    assert state["ready"] >= 1, state
    assert abs(state["duration"] - duration) <= 1.0, (state, duration)
    # Started, not awaited (page.evaluate has no timeout); the clock must move (muted is fine).
    handle.evaluate("a => { a.play().catch(e => { a.dataset.playError = String(e); }); }")
    page.wait_for_function(
        "a => (!a.paused && a.currentTime > 0.3) || a.dataset.playError",
        arg=handle,
        timeout=PLAY_MS,
    )
    played = handle.evaluate("a => ({time: a.currentTime, error: a.dataset.playError || null}) ")
    handle.evaluate("a => a.pause()")
    assert played["error"] is None, played


def song_card(output: Locator) -> Locator:
    card = output.locator(".funmusic-song")
    expect(card).to_have_count(1, timeout=WAIT_MS)
    return card


# -- the infrastructure itself -----------------------------------------------------------------
def test_lab_runs_the_venv_kernel_and_renders_widgets(lab_server: LabServer, page: Page) -> None:
    nb = open_and_run(
        lab_server,
        page,
        "plain",
        [
            "import os, sys\n"
            "print(sys.executable)\n"
            "print(sorted(k for k in os.environ if k.startswith('DASHSCOPE')))\n"
            "print(os.environ['FUNMUSIC_SIMULATOR_SPEED'])",
            "import ipywidgets\nipywidgets.IntSlider(value=7, description='knob')",
        ],
    )
    nb.assert_no_errors()
    assert nb.output_text(0).split() == [sys.executable, "[]", SPEED]
    # ipywidgets' front end is loaded: a real slider, not the text repr.
    slider = nb.output(1).locator(".widget-slider")
    expect(slider).to_have_count(1, timeout=WAIT_MS)
    expect(slider).to_contain_text("knob")
    assert "IntSlider(" not in nb.output_text(1)


# -- %%funmusic --------------------------------------------------------------------------------
def test_wait_cell_shows_a_playing_mp3_with_lyrics_and_details(
    lab_server: LabServer, page: Page
) -> None:
    nb = open_and_run(
        lab_server, page, "wait_mp3", [LOAD_EXT, f"%%funmusic --wait --no-stream\n{LYRICS}"]
    )
    nb.assert_no_errors()
    out = nb.output(1)
    card = song_card(out)
    # --wait shows the result once: one output, no progress left over.
    expect(out.locator(".jp-OutputArea-output")).to_have_count(1)
    assert out.locator(".funmusic-progress").count() == 0

    duration = billed_duration(card)
    assert duration > 0
    assert_plays(page, card.locator("audio"), "audio/mpeg", duration=duration)

    # Lyrics: the sections as headings, the lines as text.
    headings = card.locator(".funmusic-lyrics [role='heading']")
    assert [h.lower() for h in headings.all_text_contents()] == ["verse", "chorus"]
    lyrics_text = card.locator(".funmusic-lyrics").inner_text()
    for line in LYRICS.splitlines():
        if not line.startswith("["):
            assert line in lyrics_text

    # Details: duration, cost (billed seconds x price) and the simulated mark.
    cost = detail(card, "Cost")
    match = re.match(r"([\d.]+) CNY \(([\d.]+) s × 0\.002 CNY/s\)$", cost)
    assert match, cost
    assert float(match.group(2)) == duration
    assert float(match.group(1)) == pytest.approx(duration * 0.002, abs=1e-4)
    assert detail(card, "Simulated").startswith("yes")
    expect(card.locator(".funmusic-simulated")).to_be_visible()
    assert detail(card, "Format") == "mp3 (audio/mpeg)"


def test_markup_in_lyrics_is_shown_as_text_never_run(lab_server: LabServer, page: Page) -> None:
    script = "<script>window.__pwned = 1</script>"
    img = '<img src=x onerror="window.__pwned=2">'
    nb = open_and_run(
        lab_server,
        page,
        "markup",
        [
            LOAD_EXT,
            # The control: this very output channel does run markup (the notebook is trusted),
            # so only the escaping protects the song card below.
            "from IPython.display import HTML\n"
            "HTML('<img src=x onerror=\"window.__control = 1\">')",
            f"%%funmusic --wait --no-stream\n[verse]\n{script}\n{img}\n"
            "[chorus]\nLa la la, sing along",
        ],
    )
    nb.assert_no_errors()
    page.wait_for_function("() => window.__control === 1", timeout=WAIT_MS)
    card = song_card(nb.output(2))
    # The song is fully there (its audio loaded) before we look for side effects.
    page.wait_for_function(
        "a => a.readyState >= 1", arg=card.locator("audio").element_handle(), timeout=WAIT_MS
    )
    lyrics = card.locator(".funmusic-lyrics").inner_text()
    assert script in lyrics
    assert img in lyrics
    # The only image is the waveform picture; the lyrics' <img> is text.
    assert card.locator("script, img:not(.funmusic-waveform)").count() == 0
    assert card.locator("img.funmusic-waveform").count() == 1
    assert page.evaluate("() => typeof window.__pwned") == "undefined"


def test_background_cell_turns_its_progress_into_a_wav_player(
    lab_server: LabServer, page: Page, tmp_path: Path
) -> None:
    # Slow enough to see the progress (the embedded simulator reads this when it starts).
    nb = LabPage.open(
        lab_server,
        page,
        "background_wav",
        [
            "import os\nos.environ['FUNMUSIC_SIMULATOR_SPEED'] = '8'",
            LOAD_EXT,
            f"%%funmusic --format wav --no-stream\n{LYRICS}",
            "print('next cell ran')",
        ],
    )
    nb.run_all()
    nb.assert_no_errors()
    out = nb.output(2)
    # Every cell has finished (the kernel is idle) while the song is still in progress.
    expect(out.locator(".funmusic-progress")).to_have_count(1)
    assert out.locator("audio").count() == 0
    assert nb.output_text(3).strip() == "next cell ran"
    nb.screenshot(tmp_path / "progress.png")
    # Mark the output area: the player must arrive in this same element, not in a new one.
    out.evaluate("el => { el.dataset.funmusicTest = 'progress-was-here'; }")

    card = song_card(out)
    expect(out.locator(".funmusic-progress")).to_have_count(0)
    expect(out.locator(".jp-OutputArea-output")).to_have_count(1)
    assert out.get_attribute("data-funmusic-test") == "progress-was-here"
    duration = billed_duration(card)
    assert detail(card, "Format") == "wav (audio/wav)"
    assert_plays(page, card.locator("audio"), "audio/wav", duration=duration)


# -- the panel ---------------------------------------------------------------------------------
def _words(n: int) -> str:
    vocabulary = "sun rain road home light song night river heart sky".split()
    lines = []
    for start in range(0, n, 10):
        lines.append(" ".join(vocabulary[i % 10] for i in range(start, min(n, start + 10))))
    return "[verse]\n" + "\n".join(lines)


def test_panel_counts_refuses_and_makes_a_song(
    lab_server: LabServer, page: Page, tmp_path: Path
) -> None:
    # reuse=False: an earlier test in this server made the same song; this one must make it.
    cell = "from funmusic_jupyter import FunMusicPanel\nFunMusicPanel(reuse=False)"
    nb = open_and_run(lab_server, page, "panel", [cell])
    nb.assert_no_errors()
    out = nb.output(0)
    panel = out.locator(".widget-vbox").first
    textarea = panel.locator("textarea")
    expect(textarea).to_have_count(1, timeout=WAIT_MS)  # a widget, not a text repr
    assert "FunMusicPanel(" not in out.inner_text()
    generate = panel.locator("button", has_text="Generate")
    streaming = panel.locator(".widget-toggle-buttons", has_text="Streaming")
    expect(streaming.locator("button.mod-active")).to_have_text("Auto")
    expect(panel).to_contain_text("Nothing written yet.")
    expect(generate).to_be_disabled()

    # Streaming On, over the streaming limit: Generate is disabled and the panel says why.
    streaming.locator("button", has_text=re.compile(r"^On$")).click()
    textarea.fill(_words(260))
    expect(panel).to_contain_text(
        "Auto: lyrics · English · streaming: 260 words (allowed 200–250) — 10 over the limit",
        timeout=WAIT_MS,
    )
    expect(panel).to_contain_text(
        "English lyrics for streaming must be 200–250 words; got 260 words."
    )
    expect(generate).to_be_disabled()
    expect(generate).to_have_attribute("title", re.compile("must be 200–250 words"))
    nb.screenshot(tmp_path / "over-limit.png")

    # Streaming Auto, as %%funmusic: short lyrics are made without streaming, with a note.
    streaming.locator("button", has_text=re.compile(r"^Auto$")).click()
    textarea.fill(LYRICS)
    sung = [line for line in LYRICS.splitlines() if not line.startswith("[")]
    characters = len("".join("".join(sung).split()))
    expect(panel).to_contain_text(
        f"Auto: lyrics · English · not streaming (auto): {characters} characters (allowed 5–2,000)",
        timeout=WAIT_MS,
    )
    expect(panel).to_contain_text("not streamed: English lyrics for streaming must be 200–250")
    expect(panel).not_to_contain_text("over the limit")
    expect(generate).to_be_enabled()
    generate.click()

    card = song_card(panel)
    expect(panel).to_contain_text("Done:", timeout=WAIT_MS)
    duration = billed_duration(card)
    assert_plays(page, card.locator("audio"), "audio/mpeg", duration=duration)
    headings = card.locator(".funmusic-lyrics [role='heading']")
    assert [h.lower() for h in headings.all_text_contents()] == ["verse", "chorus"]
    assert detail(card, "Simulated").startswith("yes")


# -- the lasting record: a saved notebook reopened elsewhere, with no kernel --------------------
def test_saved_songs_reopen_untrusted_with_players_lyrics_waveforms_and_the_wav_link(
    lab_server: LabServer, browser: Browser, page: Page, tmp_path: Path
) -> None:
    nb = open_and_run(
        lab_server,
        page,
        "lasting",
        [
            LOAD_EXT,
            # Every WAV over 100 kB gets the MP3 preview (the default limit is 8 MB).
            "%config FunMusicMagics.embed_limit = 100_000",
            f"%%funmusic --wait --no-stream --format wav\n{LYRICS}",
            f"%%funmusic --wait --no-stream\n{LYRICS}",
        ],
    )
    nb.assert_no_errors()
    expect(nb.output(2).locator(".funmusic-preview-note")).to_have_count(1, timeout=WAIT_MS)
    nb.command("docmanager:save")
    saved = lab_server.root / "lasting.ipynb"
    page.wait_for_function(
        "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=WAIT_MS
    )
    stored = json.loads(saved.read_text(encoding="utf-8"))
    assert [len(c.get("outputs", [])) for c in stored["cells"]] == [0, 0, 1, 1]

    # A fresh server with its own data directory: it has never signed this notebook, so it
    # opens untrusted and every output goes through JupyterLab's HTML sanitizer.
    elsewhere = LabServer(tmp_path / "elsewhere")
    elsewhere.root.mkdir(parents=True)
    shutil.copy(saved, elsewhere.root / "lasting.ipynb")
    shutil.copytree(lab_server.root / "funmusic-output", elsewhere.root / "funmusic-output")
    with elsewhere:
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        reopened = context.new_page()
        try:
            reopened.goto(elsewhere.notebook_url("lasting"), wait_until="domcontentloaded")
            reopened.wait_for_function(
                "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " return !!w && !!w.context && w.context.path === 'lasting.ipynb'"
                " && w.context.isReady && w.content.model.cells.length === 4; }",
                timeout=60_000,
            )
            # No kernel: the cards must stand on their own.
            elsewhere.shutdown_kernels()
            assert elsewhere.api("GET", "/api/kernels") == []
            trusted = reopened.evaluate(
                "() => { const cells = window.jupyterapp.shell.currentWidget.content.model.cells;"
                " return [...Array(cells.length).keys()].map(i => cells.get(i).trusted); }"
            )
            assert trusted[2:] == [False, False], trusted
            cards = reopened.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .funmusic-song")
            expect(cards).to_have_count(2, timeout=WAIT_MS)
            for index, mime in ((0, "audio/mpeg"), (1, "audio/mpeg")):  # the WAV's preview
                card = cards.nth(index)
                duration = billed_duration(card)
                assert_plays(reopened, card.locator("audio"), mime, duration=duration)
                lyrics = card.locator(".funmusic-lyrics").inner_text()
                assert "Morning light on the kitchen floor" in lyrics
                assert "Every road will lead us home" in lyrics
                waveform = card.locator("img.funmusic-waveform")
                expect(waveform).to_be_visible()
                size = waveform.evaluate("i => [i.naturalWidth, i.naturalHeight]")
                assert size[0] > 100 and size[1] > 10, size  # the PNG decoded
            wav_card = cards.nth(0)
            assert detail(wav_card, "Format") == "wav (audio/wav)"
            link = wav_card.locator("a.funmusic-wav-link")
            expect(link).to_have_count(1)
            name = link.inner_text()
            assert re.fullmatch(r"funmusic-output/[^/]+\.wav", name), name
            fetched = link.evaluate(
                "async a => { const r = await fetch(a.href);"
                " return [r.status, (await r.arrayBuffer()).byteLength]; }"
            )
            assert fetched == [200, (elsewhere.root / name).stat().st_size], fetched
            assert cards.nth(1).locator("a.funmusic-wav-link").count() == 0
            reopened.screenshot(path=str(tmp_path / "reopened.png"), full_page=True)
        finally:
            context.close()
