"""The product in Chinese, as a reader of Chinese sees it: JupyterLab 4 in headless Chromium.

The locale is C.UTF-8 here (the root conftest.py pins it, and the lab inherits it), so nothing
is Chinese unless asked for: ``FunMusicPanel(language="zh")`` and
``%config FunMusicMagics.language = "zh"``, as the README and the Chinese notebooks say. Each
test makes a new song (``reuse=False``, ``--fresh``), takes screenshots into its pytest tmp dir,
and reads the page's text: the Chinese labels are there (taken from the Chinese catalogue, so
they must be real translations, with Han characters), and no English label is left. What may
stay English is listed in ``VERBATIM``: what the service says and names (codes, model and format
names, ids, file names), never a label of ours.

Needs Debian's ``/usr/bin/chromium`` and a CJK font (Debian's ``fonts-noto-cjk``, which
``.ci/run`` installs): skipped with the reason when either is missing, except under ``CI=true``,
where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from _jupyterlab import CHROMIUM_ARGS, LabPage, LabServer, chromium, serve

from funmusic_jupyter._i18n import gettext_, use_language
from funmusic_jupyter._validation import KNOWN_TAGS

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import Browser, Locator, Page, expect
except ImportError:  # pragma: no cover - the test extra installs it
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("playwright is not installed (pip install -e '.[test]')", allow_module_level=True)

SPEED = "50"  # audio seconds per wall second in the kernel's embedded simulator
SLOW = "4"  # the simulator's default: slow enough to see a song stream
WAIT_MS = 30_000

LOAD_EXT = '%load_ext funmusic_jupyter\n%config FunMusicMagics.language = "zh"'
# Short lyrics: made without streaming (Chinese lyrics stream only with 300-350 characters).
LYRICS = (
    "[verse]\n清晨的阳光洒进窗台\n咖啡的香气飘满房间\n[chorus]\n慢慢来不用着急\n生活本该这样自在"
)
PROMPT = "一首轻快的吉他小调，唱的是放学路上的晚霞"  # a prompt streams

HAN = re.compile(r"[\u4e00-\u9fff]")
# Latin words that may stay in a Chinese page, because they are names, not our labels: the
# service's and the format's, units, and the file names built from them.
VERBATIM = {
    "Fun-Music", "fun-music-v1", "mp3", "wav", "MP3", "WAV", "audio", "mpeg", "CNY", "Hz", "kbps",
    "KB", "MB", "s", "DASHSCOPE_API_KEY",
    # Acronyms Chinese technical writing keeps as they are (请求 ID, URL 过期时间, API 密钥).
    "API", "ID", "URL",
}
# Tokens that are data, not words: ids, file names and paths, times, option names.
DATA = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f-]{4,}"  # uuids (request and audio ids)
    r"|audio_[0-9a-f-]+"
    r"|\S*funmusic-output\S*"  # saved file paths
    r"|\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d)?(?: UTC)?"
    # Option names stay as they are typed: --no-stream, stream=False.
    r"|--[a-z][a-z-]*|\b[a-z_]+=[A-Za-z0-9_]+"
)


def zh(message: str) -> str:
    """``message`` as the Chinese catalogue has it; it must be translated (have Han)."""
    with use_language("zh"):
        text = gettext_(message)
    assert HAN.search(text), f"{message!r} has no Chinese translation: {text!r}"
    return text


def section_tags(output: Locator) -> list[str]:
    """The song cards' lyrics section headings in ``output``: the known structure tags, each
    shown under its Chinese name (``[verse]`` as 主歌), never as the English tag."""
    headings = [t.strip() for t in output.locator(".funmusic-section").all_inner_texts()]
    with use_language("zh"):
        chinese = {gettext_(tag): tag for tag in KNOWN_TAGS}
    assert all(HAN.search(name) for name in chinese), chinese
    assert set(headings) <= set(chinese), headings
    return [chinese[h] for h in headings]


def english_left(text: str, *, content: str = "", tags: Iterable[str] = ()) -> list[str]:
    """The English words in ``text`` that are neither ``VERBATIM`` nor data, after removing
    the user's own ``content`` (lyrics, prompt). Structure tags are lyrics too (the user's or
    the model's), written as tags (``[verse]``) or shown as the card's section headings
    (``Verse``): ``tags`` names those."""
    text = DATA.sub(" ", text)  # first: file names hold the lyrics' first line
    for line in content.splitlines():
        if line.strip():
            text = text.replace(line.strip(), " ")
    for tag in {*re.findall(r"^\[([A-Za-z]+)\]$", content, re.M), *tags}:
        text = re.sub(rf"\b{tag}\b", " ", text, flags=re.I)
    text = re.sub(r"\[[A-Za-z][A-Za-z0-9 _-]*\]", " ", text)  # tags named in a message
    words = re.findall(r"[A-Za-z][A-Za-z_-]*[A-Za-z0-9]|[A-Za-z]", text)
    return [w for w in words if w not in VERBATIM and w.strip("-") not in VERBATIM]


def cjk_font_or_skip() -> None:
    """A CJK font for Chromium (fontconfig's view), or a skip; a failure when ``CI=true``."""
    fc_list = shutil.which("fc-list")
    found = fc_list and subprocess.run(
        [fc_list, ":lang=zh", "family"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if found:
        return
    reason = "no CJK font: Chromium would draw boxes (apt-get install fonts-noto-cjk)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    cjk_font_or_skip()
    env = {"FUNMUSIC_SIMULATOR_SPEED": SPEED}
    yield from serve(tmp_path_factory.mktemp("jupyterlab-zh"), env=env)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium(args=CHROMIUM_ARGS)


@pytest.fixture
def page(
    lab_server: LabServer, browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    # A Chinese reader's browser: zh-CN, so the page's own language is not what makes it Chinese.
    context = browser.new_context(viewport={"width": 1280, "height": 1400}, locale="zh-CN")
    page = context.new_page()
    try:
        yield page
    finally:
        try:
            page.screenshot(path=str(tmp_path / f"{request.node.name}.png"), full_page=True)
        except Exception:
            pass
        context.close()
        lab_server.shutdown_kernels()


def song_card(output: Locator) -> Locator:
    card = output.locator(".funmusic-song")
    expect(card).to_have_count(1, timeout=WAIT_MS)
    return card


def assert_loads(page: Page, audio: Locator) -> None:
    """The card's ``<audio>`` is a playable MP3 (its metadata loads)."""
    expect(audio).to_have_count(1)
    assert (audio.get_attribute("src") or "").startswith("data:audio/mpeg;base64,")
    page.wait_for_function(
        "a => a.readyState >= 1 || a.error", arg=audio.element_handle(), timeout=WAIT_MS
    )
    assert audio.evaluate("a => a.error === null && a.duration > 1")


def assert_chinese_card(card: Locator, content: str) -> None:
    """The song card's headings and details in Chinese, and no English label in it."""
    expect(card.locator("summary")).to_have_text([zh("Lyrics"), zh("Details")])
    rows = card.locator("th").all_inner_texts()
    assert len(rows) >= 8 and all(HAN.search(row) for row in rows), rows
    lyrics = card.locator(".funmusic-lyrics").inner_text()
    for line in content.splitlines():
        if not line.startswith("["):
            assert line in lyrics
    left = english_left(card.inner_text(), content=content, tags=section_tags(card))
    assert not left, f"English left in the card: {left}"


# -- the panel ---------------------------------------------------------------------------------
def test_the_chinese_panel_makes_a_song(lab_server: LabServer, page: Page, tmp_path: Path) -> None:
    cell = 'from funmusic_jupyter import FunMusicPanel\nFunMusicPanel(language="zh", reuse=False)'
    nb = LabPage.open(lab_server, page, "panel_zh", [cell])
    nb.run_all()
    nb.assert_no_errors()
    out = nb.output(0)
    panel = out.locator(".widget-vbox").first
    textarea = panel.locator("textarea")
    expect(textarea).to_have_count(1, timeout=WAIT_MS)
    generate = panel.locator("button", has_text=zh("Generate"))
    expect(generate).to_have_count(1)
    expect(generate).to_be_disabled()  # nothing written yet
    nb.screenshot(tmp_path / "panel-empty.png")
    left = english_left(panel.inner_text())
    assert not left, f"English left in the empty panel: {left}"

    textarea.fill(LYRICS)
    expect(generate).to_be_enabled(timeout=WAIT_MS)
    generate.click()
    card = song_card(panel)
    assert_loads(page, card.locator("audio"))
    assert_chinese_card(card, LYRICS)
    nb.screenshot(tmp_path / "panel-song.png")
    # The whole panel: controls, counter, notes, status, history. The lyrics are the user's.
    left = english_left(panel.inner_text(), content=LYRICS, tags=section_tags(panel))
    assert not left, f"English left in the panel: {left}"


# -- %%funmusic --------------------------------------------------------------------------------
def test_the_chinese_magic_makes_songs_and_streams_one(
    lab_server: LabServer, page: Page, tmp_path: Path
) -> None:
    nb = LabPage.open(
        lab_server,
        page,
        "magic_zh",
        [
            # Slow enough to see the second song stream (the embedded simulator reads this when
            # it starts, in this kernel).
            f"import os\nos.environ['FUNMUSIC_SIMULATOR_SPEED'] = '{SLOW}'\n{LOAD_EXT}",
            f"%%funmusic --wait --fresh --no-stream\n{LYRICS}",
            f"%%funmusic --fresh\n{PROMPT}",
        ],
    )
    nb.run_all()
    nb.assert_no_errors()

    # The background song is still streaming: its progress and live player, in Chinese.
    streaming = nb.output(2)
    live = streaming.locator(".funmusic-live")
    expect(live).to_have_count(1, timeout=WAIT_MS)
    # Play is an icon (▶): its label is for screen readers, and it must be Chinese too.
    expect(live.locator(".funmusic-live-play")).to_have_attribute(
        "aria-label", zh("Play"), timeout=WAIT_MS
    )
    expect(live.locator(".funmusic-live-download")).to_have_text(zh("Download"))
    assert streaming.locator(".funmusic-song").count() == 0, "finished too soon to be seen"
    nb.screenshot(tmp_path / "magic-streaming.png")
    left = english_left(streaming.inner_text(), content=PROMPT)
    assert not left, f"English left while streaming: {left}"

    card = song_card(nb.output(1))
    assert_loads(page, card.locator("audio"))
    assert_chinese_card(card, LYRICS)

    streamed = song_card(streaming)  # the card takes over from the live player
    expect(streaming.locator(".funmusic-live")).to_have_count(0, timeout=WAIT_MS)
    assert_loads(page, streamed.locator("audio"))
    nb.screenshot(tmp_path / "magic-songs.png")
    for index, content in ((1, LYRICS), (2, PROMPT)):
        output = nb.output(index)
        left = english_left(output.inner_text(), content=content, tags=section_tags(output))
        assert not left, f"English left in cell {index}: {left}"
