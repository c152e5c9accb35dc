"""README.zh-CN.md is the Chinese README.md, and the two must not drift apart.

A translation cannot be compared word for word, but what a reader copies can: every fenced code
block of README.md is in README.zh-CN.md, verbatim and in the same order; every inline code span
(option names, settings, variables, paths) is there too; the sections are the same, level by
level. The two link each other at the top, and the Chinese one is Chinese: every paragraph of
prose has Han characters, so no English paragraph is left untranslated.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EN = ROOT / "README.md"
ZH = ROOT / "README.zh-CN.md"

FENCE = re.compile(r"^```[^\n]*\n.*?^```$", re.S | re.M)
HEADING = re.compile(r"^(#{1,6}) (.+)$", re.M)
INLINE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HAN = re.compile(r"[\u4e00-\u9fff]")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def code_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every heading outside code blocks."""
    return [(len(m.group(1)), m.group(2)) for m in HEADING.finditer(FENCE.sub("", text))]


def inline_code(text: str) -> set[str]:
    """Inline code spans outside code blocks, with a line break inside one read as a space."""
    return {" ".join(s.split()) for s in INLINE.findall(FENCE.sub("", text))}


def prose_paragraphs(text: str) -> list[str]:
    """Paragraphs that are prose: not code blocks, headings, tables or link lines."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", FENCE.sub("", text)):
        block = block.strip()
        if not block or block.startswith(("#", "|")):
            continue
        words = INLINE.sub("", LINK.sub("", block))
        if re.search(r"[A-Za-z]{3,}.*\s.*[A-Za-z]{3,}", words, re.S):  # some words left over
            paragraphs.append(block)
    return paragraphs


def test_each_links_the_other_at_the_top() -> None:
    en_top = _text(EN).splitlines()[:3]
    zh_top = _text(ZH).splitlines()[:3]
    assert en_top[0] == zh_top[0] == "# funmusic-jupyter"
    assert any("](README.zh-CN.md)" in line for line in en_top), en_top
    assert any("](README.md)" in line for line in zh_top), zh_top


@pytest.mark.parametrize("path", [EN, ZH], ids=["en", "zh"])
def test_relative_links_point_at_files(path: Path) -> None:
    targets = [t for t in LINK.findall(_text(path)) if "://" not in t and not t.startswith("#")]
    assert targets, "no relative link at all?"
    for target in targets:
        assert (ROOT / target.split("#")[0]).exists(), target


def test_every_code_block_is_in_the_chinese_readme_verbatim_and_in_order() -> None:
    en, zh = code_blocks(_text(EN)), code_blocks(_text(ZH))
    assert len(en) >= 9
    rest = iter(zh)
    for block in en:
        # A subsequence: the Chinese README may add blocks of its own (Chinese lyrics).
        assert any(block == other for other in rest), f"missing or out of order:\n{block}"


def test_the_sections_match_level_by_level() -> None:
    en, zh = headings(_text(EN)), headings(_text(ZH))
    assert [level for level, _ in en] == [level for level, _ in zh]
    assert sum(level == 2 for level, _ in en) == sum(level == 2 for level, _ in zh) >= 9
    # Titles are translated, but what they name in code is the same.
    for (_, en_title), (_, zh_title) in zip(en, zh, strict=True):
        assert INLINE.findall(en_title) == INLINE.findall(zh_title), (en_title, zh_title)


def test_every_inline_code_span_is_in_the_chinese_readme() -> None:
    missing = inline_code(_text(EN)) - inline_code(_text(ZH))
    assert not missing, f"in README.md but not in README.zh-CN.md: {sorted(missing)}"


def test_the_chinese_readme_has_no_english_paragraph_left() -> None:
    text = _text(ZH)
    assert len(HAN.findall(text)) > 3000
    untranslated = [p for p in prose_paragraphs(text) if not HAN.search(p)]
    assert not untranslated, untranslated


def test_both_describe_the_language_setting() -> None:
    needed = [
        "FUNMUSIC_LANGUAGE",
        "LC_ALL",
        "LC_MESSAGES",
        "LANG",
        '%config FunMusicMagics.language = "zh"',
        'FunMusicPanel(language="zh")',
        "notebooks/zh/",
    ]
    for path, title in ((EN, "## Language / 语言"), (ZH, "## 语言 / Language")):
        text = _text(path)
        start = text.index(title + "\n")
        end = text.index("\n## ", start + 1)
        section = text[start:end]
        for item in needed:
            assert f"`{item}`" in section or item in code_blocks(section)[0], (path.name, item)
        # The auto values and the two languages, as the setting spells them.
        for value in ("`auto`", "`en`", "`zh`"):
            assert value in section, (path.name, value)
