"""The language switch and the Chinese catalogue (``_i18n``, ``funmusic_jupyter/locale``).

Catalogue checks first (complete, no fuzzy entry, the same placeholders in both languages, the
code's marked strings all in it, the committed ``.mo`` current), then language resolution, then
each surface (magic, panel, CLI) speaking Chinese under ``zh`` and English under ``en``.
"""

from __future__ import annotations

import gettext
import re
import threading
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from funmusic_jupyter import _i18n
from funmusic_jupyter._errors import ConfigurationError
from funmusic_jupyter._i18n import (
    _,
    check_language,
    clip,
    current_language,
    ngettext,
    resolve_language,
    use_language,
)

PACKAGE = Path(_i18n.__file__).resolve().parent
LOCALE = PACKAGE / "locale"
PO = LOCALE / "zh_CN" / "LC_MESSAGES" / "funmusic.po"
MO = PO.with_suffix(".mo")
POT = LOCALE / "funmusic.pot"
# The keywords pybabel extracts with (locale/README.md): its defaults (_, ngettext, pgettext,
# N_…) and _i18n's own name for gettext.
KEYWORDS = {**DEFAULT_KEYWORDS, "gettext_": None}
# {name…} (ours), %(name)s and bare %s / %r (argparse's own messages, which we translate too).
_PLACEHOLDER = re.compile(
    r"\{(\w*)[^{}]*\}|%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]|(?<!%)(%[sr])"
)


def _catalogue() -> Catalog:
    with PO.open("rb") as fh:
        return read_po(fh, locale="zh_CN")


def _entries() -> list[Message]:
    return [m for m in _catalogue() if m.id]


def _key(m: Message) -> tuple[str | None, str]:
    return (m.context, m.id if isinstance(m.id, str) else m.id[0])


def _texts(value: str | tuple[str, ...] | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _placeholders(text: str) -> list[str]:
    """The placeholders of ``text``: named ones by name, bare ``%s`` in order of appearance."""
    found = _PLACEHOLDER.findall(text.replace("{{", "").replace("}}", ""))
    named = sorted({a or b for a, b, _bare in found if a or b})
    return named + [bare for _a, _b, bare in found if bare]


# -- the catalogue ---------------------------------------------------------------------------


def test_every_entry_is_translated_and_none_is_fuzzy() -> None:
    entries = _entries()
    assert len(entries) > 0
    untranslated = [m.id for m in entries if not all(_texts(m.string))]
    fuzzy = [m.id for m in entries if m.fuzzy]
    assert untranslated == []
    assert fuzzy == []


def test_translations_keep_the_placeholders_of_the_english() -> None:
    wrong = []
    for m in _entries():
        wanted = _placeholders(_texts(m.id)[-1])  # a plural's forms share their placeholders
        for text in _texts(m.string):
            if _placeholders(text) != wanted:
                wrong.append((m.id, text))
    assert wrong == []


def test_the_placeholder_check_can_fail() -> None:
    # The check above compares names: a renamed or dropped placeholder is caught.
    assert _placeholders("got {count:,}, remove {extra}") == ["count", "extra"]
    assert _placeholders("当前 {count:,} 个") != _placeholders("got {count:,}, remove {extra}")
    assert _placeholders("%(count)d of %(total)s") == ["count", "total"]
    assert _placeholders("unrecognized arguments: %s") == ["%s"]
    assert _placeholders("无法识别的参数") != _placeholders("unrecognized arguments: %s")
    assert _placeholders("%%funmusic {{{commands}}}") == ["commands"]


def test_every_marked_string_in_the_code_is_in_the_catalogue() -> None:
    # Re-extract, as `pybabel extract` does, and compare the msgids.
    marked = set()
    for _filename, _lineno, message, _comments, context in extract_from_dir(
        str(PACKAGE), keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)
    ):
        key = message if isinstance(message, str) else message[0]
        marked.add((context, key))
    in_po = {_key(m) for m in _entries()}
    assert marked, "no marked string found: the extraction is broken"
    assert sorted(marked - in_po, key=str) == []
    # The template is the extraction's record: it lists the same strings.
    with POT.open("rb") as fh:
        in_pot = {_key(m) for m in read_po(fh) if m.id}
    assert in_pot == marked
    assert in_po == marked  # nothing obsolete left behind either


def test_the_committed_mo_is_current_with_the_po() -> None:
    fresh = Path(MO.parent / "_fresh.mo")
    try:
        with fresh.open("wb") as fh:
            write_mo(fh, _catalogue())
        with fresh.open("rb") as a, MO.open("rb") as b:
            expected = gettext.GNUTranslations(a)._catalog  # type: ignore[attr-defined]
            committed = gettext.GNUTranslations(b)._catalog  # type: ignore[attr-defined]
    finally:
        fresh.unlink(missing_ok=True)
    assert committed == expected


def test_runtime_reads_the_mo_with_the_standard_gettext() -> None:
    translation = gettext.translation("funmusic", LOCALE, languages=["zh_CN"])
    assert translation.gettext("{source} must be one of {choices}; got {value}") != (
        "{source} must be one of {choices}; got {value}"
    )


# -- choosing the language -------------------------------------------------------------------


@pytest.fixture
def no_language_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("FUNMUSIC_LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_session_is_pinned_to_english() -> None:
    # The root conftest.py: a developer's Chinese locale must not change the notebooks' outputs.
    assert current_language() == "en"
    assert resolve_language("auto") == "en"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "zh_TW.UTF-8"}, "zh"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({}, "en"),
        # gettext's order: LC_ALL, then LC_MESSAGES, then LANG; the first one set decides.
        ({"LC_ALL": "en_GB.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),
        ({"LC_MESSAGES": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),
        ({"LC_ALL": "", "LC_MESSAGES": "", "LANG": "zh_CN.UTF-8"}, "zh"),
    ],
)
def test_auto_follows_the_locale(
    no_language_env: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    for name, value in variables.items():
        no_language_env.setenv(name, value)
    assert resolve_language("auto") == expected
    assert resolve_language(None) == expected
    assert current_language() == expected


def test_the_environment_variable_decides_auto(no_language_env: pytest.MonkeyPatch) -> None:
    no_language_env.setenv("LANG", "en_US.UTF-8")
    no_language_env.setenv("FUNMUSIC_LANGUAGE", "zh")
    assert resolve_language("auto") == "zh"
    assert current_language() == "zh"
    # An explicit setting wins over the variable.
    assert resolve_language("en") == "en"
    no_language_env.setenv("FUNMUSIC_LANGUAGE", " ZH ")
    assert resolve_language(None) == "zh"
    no_language_env.setenv("FUNMUSIC_LANGUAGE", "auto")
    no_language_env.setenv("LANG", "zh_CN.UTF-8")
    assert resolve_language(None) == "zh"


def test_unknown_values_are_refused_in_one_line(no_language_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_language("fr")
    assert str(info.value) == "language must be one of auto, en, zh; got 'fr'"
    no_language_env.setenv("FUNMUSIC_LANGUAGE", "klingon")
    with pytest.raises(ConfigurationError) as info:
        resolve_language("auto")
    assert str(info.value) == "FUNMUSIC_LANGUAGE must be one of auto, en, zh; got 'klingon'"
    # The message itself never fails: a bad variable means English where nothing was chosen.
    assert current_language() == "en"
    with pytest.raises(ConfigurationError):
        check_language(3)


def test_use_language_is_scoped_to_the_block_and_the_thread() -> None:
    message = "{source} must be one of {choices}; got {value}"
    seen: dict[str, str] = {}
    inside = threading.Event()
    release = threading.Event()

    def other_thread() -> None:
        with use_language("zh"):
            seen["other"] = _(message)
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other_thread)
    thread.start()
    assert inside.wait(5)
    # Another thread speaking Chinese changes nothing here.
    seen["here"] = _(message)
    release.set()
    thread.join(5)
    assert seen["here"] == message
    assert seen["other"] != message and "必须" in seen["other"]
    with use_language("zh"):
        assert current_language() == "zh"
        with use_language("en"):
            assert _(message) == message
        assert _(message) == seen["other"]
    assert current_language() == "en"


def test_ngettext_has_one_form_in_chinese() -> None:
    singular, plural = "{count:,} character", "{count:,} characters"
    assert ngettext(singular, plural, 1) == singular
    assert ngettext(singular, plural, 2) == plural
    with use_language("zh"):
        assert ngettext(singular, plural, 1) == ngettext(singular, plural, 2) == "{count:,} 个字"


# -- typography ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abcdef", 3, "abc"),
        ("abc", 3, "abc"),
        ("雨夜的钢琴曲", 4, "雨夜的钢"),
        ("cafe\u0301s", 4, "caf"),  # é as e + combining accent: not split
        ("ab👍🏽cd", 3, "ab"),  # thumbs up + skin tone
        ("ab❤\ufe0fcd", 3, "ab"),  # heart + variation selector
        ("a👩\u200d💻b", 3, "a"),  # woman technologist: a ZWJ sequence
        ("a👩\u200d💻b", 4, "a👩\u200d💻"),
        ("🇨🇳🇯🇵", 3, "🇨🇳"),  # two flags: never half a flag
        ("ab\ud83d\ude00", 3, "ab"),  # a surrogate pair (text from JavaScript)
    ],
)
def test_clip_never_cuts_a_character_apart(text: str, limit: int, expected: str) -> None:
    assert clip(text, limit) == expected


# -- messages --------------------------------------------------------------------------------

CHINESE_LYRICS_412 = "[verse]\n" + "雨夜的钢琴声轻轻响起\n" * 41 + "雨夜"  # 41 × 10 + 2 = 412


def test_a_length_error_counts_in_chinese_in_chinese() -> None:
    from funmusic_jupyter._errors import ValidationError
    from funmusic_jupyter._validation import build_request

    with pytest.raises(ValidationError) as english:
        build_request(text=CHINESE_LYRICS_412, stream=True)
    assert str(english.value) == (
        "Chinese lyrics for streaming must be 300–350 characters; got 412 characters, not "
        "counting spaces or tag lines. Remove at least 62 characters."
    )
    with use_language("zh"), pytest.raises(ValidationError) as chinese:
        build_request(text=CHINESE_LYRICS_412, stream=True)
    assert str(chinese.value) == (
        "流式生成的中文歌词须为 300–350 个字；当前 412 个字（不计空格和结构标签行）。"
        "请删去至少 62 个字。"
    )
    # The exception's class, what IPython shows first, stays English.
    assert chinese.value.one_line().startswith("ValidationError: 流式生成的中文歌词")


def test_quote_cuts_whole_characters_and_counts_in_the_language() -> None:
    from funmusic_jupyter._errors import quote

    text = "雨" * 39 + "👍🏽" + "x" * 10
    assert quote(text) == repr("雨" * 39) + "… (51 characters)"
    with use_language("zh"):
        assert quote(text) == repr("雨" * 39) + "…（共 51 字）"


_LITERAL_CALL = re.compile(r"""\b(?:_|N_|gettext_)\(\s*(["'])((?:\\.|(?!\1).)+)\1\s*\)""")


def test_no_marked_literal_hides_where_the_extractor_cannot_see_it() -> None:
    # Babel (on Python 3.11) does not look inside f-strings: a _("…") written in one would
    # never reach the catalogue and silently stay English. Every one-line literal call in the
    # source, wherever it is, must be in the catalogue.
    in_po = {m.id for m in _entries()}
    missing = []
    for path in PACKAGE.rglob("*.py"):
        for match in _LITERAL_CALL.finditer(path.read_text(encoding="utf-8")):
            text = match.group(2).encode("utf-8").decode("unicode_escape").encode(
                "latin-1"
            ).decode("utf-8")
            if text not in in_po:
                missing.append((path.name, text))
    assert missing == []


def test_text_tables_line_up_by_display_width() -> None:
    from funmusic_jupyter._i18n import display_width, pad
    from funmusic_jupyter._spending import CostReport

    assert display_width("abc") == 3 and display_width("合计") == 4
    assert display_width("cafe\u0301") == 4
    assert pad("合计", 6) == "合计  " and pad("7", 3, right=True) == "  7"
    report = CostReport(currency="CNY", price_per_second=0.002, session=False)
    with use_language("zh"):
        lines = report.text().splitlines()
    # The columns of the heading and of the total row start at the same terminal column.
    head, total = lines[0], lines[1]
    second = [display_width(line[: line.index(cell)]) for line, cell in
              ((head, "Fun-Music"), (total, "0 首"))]
    assert second[0] == second[1]
    assert repr(report).splitlines()[0].startswith("day  ")
