"""What ``FunMusicPanel`` says: its labels (marked for the catalogue, translated where the
widgets are made, in the panel's language) and its counter line.

Split from ``_panel`` so the widget module does not grow with the words.
"""

from __future__ import annotations

import html

from ._errors import quote
from ._i18n import N_, _
from ._limits import Limit, field_name, unit_text

__all__ = [
    "LANGUAGES",
    "MODES",
    "PLACEHOLDER",
    "STATE_WORDS",
    "STREAMING",
    "VOICES",
    "counter_words",
    "one_of",
]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


# Labels are marked here and translated where the widgets are made (in the panel's language).
MODES = ((N_("Auto"), "auto"), (N_("Prompt"), "prompt"), (N_("Lyrics"), "lyrics"))
# The policy's three stream preferences, as the widget's values.
STREAMING = ((N_("Auto"), "auto"), (N_("On"), True), (N_("Off"), False))
LANGUAGES = {"zh": N_("Chinese"), "en": N_("English")}
VOICES = {"female": N_("Female"), "male": N_("Male")}
STATE_WORDS = {
    "queued": N_("Waiting to start"),
    "waiting": N_("Waiting for the first audio"),
    "generating": N_("Generating (not streaming: the audio comes at the end)"),
    "streaming": N_("Streaming"),
    "saving": N_("Saving"),
}
PLACEHOLDER = N_(
    "Describe a song (a prompt), e.g. 'Melancholic piano, rainy night yearning',\n"
    "or write lyrics with structure tags:\n[verse]\n…\n[chorus]\n…"
)


def one_of(name: str, allowed: tuple[str, ...] | list[str], value: object) -> str:
    return _("{name} must be one of {choices}; got {value}").format(
        name=field_name(name), choices=", ".join(allowed), value=quote(value)
    )


def counter_words(
    mode: str, chosen: str, language: str, streamed: bool, stream: object, limit: Limit, count: int
) -> str:
    """The counter's words before its verdict, e.g. "Auto: lyrics · Chinese · streaming
    (auto): <b>412</b> characters (allowed 300–350)"."""
    how = _("streaming") if streamed else _("not streaming")
    if stream == "auto":
        how = _("{how} (auto)").format(how=how)
    if mode == "auto":
        what = _("Auto: {mode}").format(mode=field_name(chosen))
    else:
        what = _({value: label for label, value in MODES}[chosen])  # "Lyrics", "Prompt"
    return _(
        "{what} · {language} · {how}: <b>{count:,}</b> {unit} (allowed {low:,}–{high:,})"
    ).format(
        what=_e(what),
        language=_e(_(LANGUAGES[language])),
        how=_e(how),
        count=count,
        unit=_e(unit_text(limit.unit)),
        low=limit.low,
        high=limit.high,
    )
