"""The service's length limits, and the words validation messages use for them.

Split from ``_validation`` along that line: ``limit_for`` is the table in ``_validation``'s
docstring; ``count_text``, ``unit_text`` and ``Limit.range_text`` say a count or a range in the
current language (``412 characters``, ``412 个字``); ``field_name``/``gender_text`` name a
request's fields and voices. ``_validation`` re-exports what it always offered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ._errors import ValidationError
from ._i18n import N_, _, ngettext

if TYPE_CHECKING:
    from ._validation import TextStats

__all__ = [
    "Language",
    "Limit",
    "Mode",
    "Unit",
    "count_text",
    "field_name",
    "gender_text",
    "limit_for",
    "unit_text",
]

Mode = Literal["lyrics", "prompt"]
Language = Literal["zh", "en"]

# The request's fields as messages name them. In English a field is its parameter name
# ("lyrics must be …"); a translation may use its own word (歌词).
_FIELDS = {
    "lyrics": N_("lyrics"),
    "prompt": N_("prompt"),
    "text": N_("text"),
    "model": N_("model"),
    "gender": N_("gender"),
    "format": N_("format"),
    "mode": N_("mode"),
    "stream": N_("stream"),
    "instrumental": N_("instrumental"),
}


_GENDER_WORDS = {"female": N_("female"), "male": N_("male")}


def field_name(name: str) -> str:
    """A request field's name as the current language says it (``lyrics`` -> 歌词)."""
    return _(_FIELDS[name]) if name in _FIELDS else name


def gender_text(gender: str) -> str:
    """A voice as the current language says it (``female`` -> 女声); "" stays ""."""
    return _(_GENDER_WORDS[gender]) if gender in _GENDER_WORDS else gender




Unit = Literal["characters", "words", "Chinese characters or English words"]


@dataclass(frozen=True)
class Limit:
    low: int
    high: int
    unit: Unit  # the English name, also what the code tests: see ``unit_text`` for people
    description: str  # "Chinese lyrics for streaming" …: English; ``describe()`` translates

    def measure(self, stats: TextStats) -> int:
        if self.unit == "characters":
            return stats.characters
        if self.unit == "words":
            return stats.words
        return stats.units

    def describe(self) -> str:
        """``description`` in the current language."""
        return _(self.description)

    def range_text(self) -> str:
        """``300–350 characters`` (``300–350 个字``) in the current language."""
        return _RANGE[self.unit]().format(low=self.low, high=self.high)


# Every description limit_for gives, marked whole so a translation can order its words.
_DESCRIPTIONS = {
    ("lyrics", "zh", True): N_("Chinese lyrics for streaming"),
    ("lyrics", "zh", False): N_("Chinese lyrics for non-streaming"),
    ("lyrics", "en", True): N_("English lyrics for streaming"),
    ("lyrics", "en", False): N_("English lyrics for non-streaming"),
    ("prompt", "zh", True): N_("a prompt for streaming"),
    ("prompt", "zh", False): N_("a prompt for non-streaming"),
    ("prompt", "en", True): N_("a prompt for streaming"),
    ("prompt", "en", False): N_("a prompt for non-streaming"),
}
# A range of a unit, and a count of it: in Chinese with its measure word (300–350 个字).
_RANGE: dict[str, Callable[[], str]] = {
    # TRANSLATORS: "characters" are every non-space character; Chinese says 字, never 字符.
    "characters": lambda: _("{low:,}–{high:,} characters"),
    "words": lambda: _("{low:,}–{high:,} words"),
    "Chinese characters or English words": lambda: _(
        "{low:,}–{high:,} Chinese characters or English words"
    ),
}


def unit_text(unit: str) -> str:
    """A limit's unit as the current language names it (for a counter: "412 characters")."""
    if unit == "characters":
        return _("characters")
    if unit == "words":
        return _("words")
    return _("Chinese characters or English words")


def limit_for(mode: Mode, language: Language, stream: bool) -> Limit:
    """The service's limit for one mode, language and streaming setting."""
    description = _DESCRIPTIONS[(mode, language, stream)]
    if mode == "lyrics":
        if language == "zh":
            low, high = (300, 350) if stream else (5, 350)
            return Limit(low, high, "characters", description)
        if stream:
            return Limit(200, 250, "words", description)
        return Limit(5, 2000, "characters", description)
    if stream:
        return Limit(5, 1000, "Chinese characters or English words", description)
    return Limit(1, 2000, "characters", description)


def _fix_hint(mode: Mode, limit: Limit, got: int, stream: bool, language: Language) -> str:
    other = limit_for(mode, language, not stream)
    if got > limit.high:
        extra = count_text(got - limit.high, limit.unit)
        if stream and other.high > limit.high:
            if mode == "lyrics":
                return _(
                    "Remove at least {count}, or use non-streaming (stream=False, --no-stream) "
                    "for longer lyrics."
                ).format(count=extra)
            return _(
                "Remove at least {count}, or use non-streaming (stream=False, --no-stream) "
                "for longer prompt."
            ).format(count=extra)
        return _("Remove at least {count}.").format(count=extra)
    missing = count_text(limit.low - got, limit.unit)
    if stream:
        return _(
            "Add at least {count}, or use non-streaming (stream=False, --no-stream), which "
            "accepts {range}."
        ).format(count=missing, range=other.range_text())
    return _("Add at least {count}.").format(count=missing)


def count_text(n: int, unit: str) -> str:
    """``1 character``, ``412 characters`` (``412 个字``): a count of a limit's unit."""
    if unit == "characters":
        return ngettext("{count:,} character", "{count:,} characters", n).format(count=n)
    if unit == "words":
        return ngettext("{count:,} word", "{count:,} words", n).format(count=n)
    return ngettext(
        "{count:,} Chinese characters or English words",
        "{count:,} Chinese characters or English words",
        n,
    ).format(count=n)


def _check_length(mode: Mode, stream: bool, stats: TextStats, *, tags: bool) -> None:
    limit = limit_for(mode, stats.language, stream)
    got = limit.measure(stats)
    if limit.low <= got <= limit.high:
        return
    # Say how we counted, so the user can check the number (``len(text)`` counts spaces).
    how = ""
    if limit.unit == "characters":
        how = _(", not counting spaces or tag lines") if tags else _(", not counting spaces")
    raise ValidationError(
        # TRANSLATORS: {what} is e.g. "Chinese lyrics for streaming", {range} "300–350
        # characters", {count} "412 characters", {how} ", not counting spaces", {fix} a sentence.
        _("{what} must be {range}; got {count}{how}. {fix}").format(
            what=limit.describe(),
            range=limit.range_text(),
            count=count_text(got, limit.unit),
            how=how,
            fix=_fix_hint(mode, limit, got, stream, stats.language),
        )
    )
