"""The Chinese teaching notebooks (``notebooks/zh/``), read as files: what nbval cannot see.

nbval executes them and compares their stored outputs (they are in the manifest); this checks
what makes them *Chinese* lessons: they ask for Chinese output themselves (the tests pin the
locale to C.UTF-8, so ``auto`` would be English), their prose is Chinese, and every
``%%funmusic`` cell's lyrics or prompt is Chinese and within the limits its options ask for,
counted as a reader would count them, with a regular expression for Han characters.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

import funmusic_jupyter as fm
from funmusic_jupyter._i18n import gettext_, use_language
from funmusic_jupyter._validation import KNOWN_TAGS, tags_in

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
MANIFEST = NOTEBOOKS / "teaching-notebooks.txt"
ZH = [
    NOTEBOOKS / line.strip()
    for line in MANIFEST.read_text(encoding="utf-8").splitlines()
    if line.strip().startswith("zh/")
]
LANGUAGE = '%config FunMusicMagics.language = "zh"'
HAN = re.compile(r"[\u4e00-\u9fff]")
FENCE = re.compile(r"^```.*?^```$", re.S | re.M)


def _cells(path: Path) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return cells


def _source(cell: dict[str, Any]) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _magic_cells(path: Path) -> list[tuple[list[str], str, set[str]]]:
    """(options, body, tags) of every ``%%funmusic`` cell."""
    out = []
    for cell in _cells(path):
        source = _source(cell)
        if cell["cell_type"] == "code" and source.startswith("%%funmusic"):
            line, _, body = source.partition("\n")
            tags = set(cell.get("metadata", {}).get("tags", []))
            out.append((shlex.split(line)[1:], body, tags))
    return out


def test_the_chinese_notebooks_are_listed() -> None:
    assert [p.relative_to(NOTEBOOKS).as_posix() for p in ZH] == [
        "zh/01_快速上手.ipynb",
        "zh/02_写歌词.ipynb",
    ]
    assert all(p.is_file() for p in ZH)


@pytest.mark.parametrize("path", ZH, ids=lambda p: p.stem)
def test_the_first_code_cell_asks_for_chinese(path: Path) -> None:
    code = [c for c in _cells(path) if c["cell_type"] == "code"]
    first = _source(code[0]).splitlines()
    assert "%load_ext funmusic_jupyter" in first
    assert LANGUAGE in first, first
    # Ran, and the setting was accepted (a bad %config is an error output).
    assert code[0]["execution_count"] == 1
    assert all(o["output_type"] != "error" for o in code[0]["outputs"])


@pytest.mark.parametrize("path", ZH, ids=lambda p: p.stem)
def test_the_prose_is_chinese(path: Path) -> None:
    markdown = [_source(c) for c in _cells(path) if c["cell_type"] == "markdown"]
    assert len(markdown) >= 6
    assert markdown[0].startswith("# ") and HAN.search(markdown[0].splitlines()[0])
    for text in markdown:
        for paragraph in re.split(r"\n\s*\n", FENCE.sub("", text)):
            # Code, option names and English identifiers stay as they are: drop them first.
            words = re.sub(r"`[^`]*`|\[[^\]]*\]\([^)]*\)", "", paragraph)
            if re.search(r"[A-Za-z]{3,}", words):
                assert HAN.search(words), f"an English paragraph in {path.name}:\n{paragraph}"


def _check(options: list[str], body: str) -> fm.SongRequest:
    mode = "lyrics" if "--lyrics" in options else "prompt" if "--prompt" in options else "auto"
    stream = False if "--no-stream" in options else True if "--stream" in options else "auto"
    if stream == "auto":
        # The magic's policy: streamed when the text allows it, else made without streaming.
        try:
            return fm.build_request(text=body, mode=mode, stream=True)
        except fm.ValidationError:
            return fm.build_request(text=body, mode=mode, stream=False)
    return fm.build_request(text=body, mode=mode, stream=stream)


@pytest.mark.parametrize("path", ZH, ids=lambda p: p.stem)
def test_every_song_is_chinese_and_within_its_limits(path: Path) -> None:
    cells = _magic_cells(path)
    assert len(cells) >= 3
    for options, body, tags in cells:
        han = len(HAN.findall(body))
        assert fm.build_request(text=body).language == "zh", body
        assert set(tags_in(body)) <= set(KNOWN_TAGS), body
        if "raises-exception" in tags:
            # Refused before sending: the lesson's point, so it must really be refused.
            with pytest.raises(fm.ValidationError):
                _check(options, body)
            continue
        request = _check(options, body)
        if request.mode == "lyrics":
            assert tags_in(body), "lyrics in a lesson have structure tags"
            assert 5 <= han <= 350, (han, body)
        if "--stream" in options:
            assert request.mode == "lyrics" and 300 <= han <= 350, (han, body)


def test_the_lyrics_lesson_streams_a_whole_song_with_every_tag() -> None:
    writing = NOTEBOOKS / "zh" / "02_写歌词.ipynb"
    streamed = [
        body for options, body, tags in _magic_cells(writing)
        if "--stream" in options and "raises-exception" not in tags
    ]
    assert len(streamed) == 1
    body = streamed[0]
    # The recommended length, counted the two ways the lesson shows: Han characters, and the
    # package's count (non-space characters outside tag lines): equal, since no punctuation.
    han = len(HAN.findall(body))
    assert 300 <= han <= 350
    assert fm.build_request(lyrics=body, stream=True).count == han
    assert set(tags_in(body)) == set(KNOWN_TAGS)
    # The counting cell counts these very lyrics.
    counting = [
        _source(c) for c in _cells(writing)
        if c["cell_type"] == "code" and "build_request(lyrics=lyrics, stream=True)" in _source(c)
    ]
    assert len(counting) == 1 and body.strip() in counting[0]


def _zh(message: str) -> str:
    """``message`` from the Chinese catalogue; it must be translated (have Han characters)."""
    with use_language("zh"):
        text = gettext_(message)
    assert HAN.search(text), f"{message!r} has no Chinese translation"
    return text


@pytest.mark.parametrize("path", ZH, ids=lambda p: p.stem)
def test_the_stored_outputs_are_chinese(path: Path) -> None:
    cards = 0
    for cell in _cells(path):
        if cell["cell_type"] != "code" or not _source(cell).startswith("%%funmusic"):
            continue
        for output in cell["outputs"]:
            if output["output_type"] == "stream":  # the magic's notes
                for line in "".join(output["text"]).splitlines():
                    assert HAN.search(line), line
            html = "".join(output.get("data", {}).get("text/html", ""))
            if 'class="funmusic-song"' in html:
                cards += 1
                summaries = re.findall(r"<summary[^>]*>([^<]*)</summary>", html)
                assert summaries == [_zh("Lyrics"), _zh("Details")]
                rows = re.findall(r"<th[^>]*>([^<]*)</th>", html)
                assert len(rows) >= 8 and all(HAN.search(row) for row in rows), rows
    assert cards >= 2


def test_the_sanitizer_knows_the_chinese_card_rows() -> None:
    # nbval compares the Chinese cards too: the rows that vary on every run must be masked
    # under their Chinese labels, or the notebooks fail on the next run.
    config = (NOTEBOOKS / "nbval-sanitize.cfg").read_text(encoding="ascii")
    decoded = re.sub(r"\\u([0-9a-f]{4})", lambda m: chr(int(m.group(1), 16)), config)
    # The row sections' alternatives: (>(?:Request id|Audio id|…)</th>…
    rows = [set(m.split("|")) for m in re.findall(r"^regex: \(>\(\?:([^)]*)\)", decoded, re.M)]
    english = next(labels for labels in rows if "Request id" in labels)
    for label in english:
        assert any(_zh(label) in labels for labels in rows), label
