"""Checks every request against the service's rules before anything is sent.

The same code runs in the client (so a bad request costs nothing) and in the simulator (so it
refuses exactly what the client refuses, with the same words).

Rules, as documented in the README:

Mode
    ``lyrics=`` or ``prompt=`` forces the mode. Plain ``text`` is *lyrics* when it has a
    structure tag (a line that is only ``[intro]``, ``[verse]``, ``[chorus 2]``,
    ``[pre-chorus]``… ), else a *prompt*. Both lyrics and prompt given: lyrics are used and the
    prompt is dropped, with a warning (the service ignores the prompt too).
Language
    Han characters are Chinese; Latin letters are English. Kana, Hangul and any other script are
    refused. Mixed text is Chinese when it has at least as many Han characters as English words,
    else English.
Text
    Refused when it holds no Han character and no Latin letter (emoji, punctuation or invisible
    characters only): there is nothing to sing. Refused too when it cannot be sent as UTF-8
    (a lone surrogate). The payload is checked by serialising it exactly as it is sent
    (``SongRequest.body``): the same bytes go on the wire.
Counting
    Structure-tag lines never count. *Characters* are every character that is not white space
    (messages say "not counting spaces", so the user can tell why ``len(text)`` differs).
    *Words* are runs of Latin letters, digits and apostrophes; in a mixed streaming prompt each
    Han character counts as one word, since the service counts "Chinese characters or English
    words".
Instrumental and the preview model (from the vendor's newer pages, not the original reference)
    ``instrumental=True`` sends ``"is_instrumental": true`` (a song with no vocals); it must be
    a real ``bool``. ``fun-music-preview`` takes a prompt only: lyrics, and any gender (the
    default one too, since it would silently do nothing), are refused before sending, and no
    ``gender`` is sent for it. The magic and the panel leave their default voice out for it.
Limits (``fun-music-v1``; other model names skip the length limits but keep every other check)

    =================  ======================  ==================================
    field              non-streaming           streaming
    =================  ======================  ==================================
    lyrics, Chinese    5–350 characters        300–350 characters
    lyrics, English    5–2,000 characters      200–250 words
    prompt             1–2,000 characters      5–1,000 Chinese characters + words
    =================  ======================  ==================================
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import ValidationError, quote
from ._i18n import _
from ._limits import (
    Language,
    Limit,
    Mode,
    _check_length,
    field_name,
    limit_for,
)

__all__ = [
    "GENDERS",
    "FORMATS",
    "KNOWN_TAGS",
    "Limit",
    "SongRequest",
    "TextStats",
    "build_request",
    "detect_mode",
    "encode_payload",
    "first_line",
    "limit_for",
    "text_stats",
    "validate_payload",
]

DEFAULT_MODEL = "fun-music-v1"
#: Takes a prompt only: no lyrics, no gender (vendor pages of 2026; see the module docstring).
PREVIEW_MODEL = "fun-music-preview"
LIMITED_MODELS = frozenset({DEFAULT_MODEL})
GENDERS = ("female", "male")
FORMATS = ("mp3", "wav")
KNOWN_TAGS = ("intro", "verse", "chorus", "bridge", "outro")
_RESERVED_INPUT = frozenset({"lyrics", "prompt", "gender", "format"})


# A line that is only a bracketed label: "[verse]", "[Chorus 2]", "[pre-chorus]".
_TAG_LINE = re.compile(r"^[ \t]*\[([A-Za-z][A-Za-z0-9 _\-]{0,23})\][ \t]*$", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z0-9\u00C0-\u024F\u1E00-\u1EFF]+(?:['’][A-Za-z\u00C0-\u024F]+)*")


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The request body's bytes, as httpx's ``json=`` would make them (httpx 0.28/0.29
    ``encode_json``): the validator checks these very bytes and the clients send them."""
    return json.dumps(
        payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def _check_sendable(name: str, value: object) -> None:
    """Refuse what ``encode_payload`` cannot send, naming the field and what is wrong."""
    try:
        encode_payload({"v": value})
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end][:1] if isinstance(exc.object, str) else ""
        where = ""
        if isinstance(value, str) and bad in value:
            where = _(" at character {position:,}").format(position=value.index(bad) + 1)
        raise ValidationError(
            _(
                "{name} must be valid Unicode text; got a lone surrogate {bad!r}{where}, which "
                "cannot be sent as UTF-8 (text pasted from a broken source?)"
            ).format(name=field_name(name), bad=bad, where=where)
        ) from None
    except ValueError:
        raise ValidationError(
            _("{name} must be JSON without NaN or infinity; got {value}").format(
                name=field_name(name), value=quote(value)
            )
        ) from None
    except TypeError:
        raise ValidationError(
            _("{name} must be JSON-serialisable; got {type}").format(
                name=field_name(name), type=type(value).__name__
            )
        ) from None


def _is_latin_letter(ch: str) -> bool:
    return ch.isalpha() and not _is_han(ch) and _script_of(ch) is None


def _is_han(ch: str) -> bool:
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0x20000 <= o <= 0x2EBEF
        or 0xF900 <= o <= 0xFAFF
        or 0x30000 <= o <= 0x3134F
    )


def _script_of(ch: str) -> str | None:
    """The script of a letter we must refuse, or None when the letter is allowed."""
    o = ord(ch)
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9D:
        return _("Japanese kana")
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return _("Korean hangul")
    if _is_han(ch) or o < 0x250 or 0x1E00 <= o <= 0x1EFF or 0xFF21 <= o <= 0xFF5A:
        return None
    name = unicodedata.name(ch, "")
    if not name:
        return _("an unsupported script")
    # The script's own name stays as Unicode writes it (Cyrillic, Thai…).
    return _("{name} script").format(name=name.split(" ")[0].title())


@dataclass(frozen=True)
class TextStats:
    language: Language
    characters: int  # non-space characters outside tag lines
    words: int  # Latin words outside tag lines
    han: int  # Han characters outside tag lines

    @property
    def units(self) -> int:
        """Chinese characters plus English words: the streaming prompt's measure."""
        return self.han + self.words


def _strip_tags(text: str) -> str:
    return _TAG_LINE.sub("", text)


def tags_in(text: str) -> list[str]:
    """The structure tags of ``text``, lower-cased, without numbers (``[Chorus 2]`` -> chorus)."""
    out = []
    for m in _TAG_LINE.finditer(text):
        label = m.group(1).strip().lower()
        out.append(re.sub(r"[\s_\-]*\d+$", "", label))
    return out


def first_line(text: str) -> str:
    """The first line of ``text`` that is not a structure tag (``[verse]``), stripped: a title."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not _TAG_LINE.fullmatch(stripped):
            return stripped
    return ""


def text_stats(text: str) -> TextStats:
    body = _strip_tags(text)
    characters = sum(1 for ch in body if not ch.isspace())
    han = sum(1 for ch in body if _is_han(ch))
    words = len(_WORD.findall(body))
    language: Language = "zh" if han > 0 and han >= words else "en"
    return TextStats(language, characters, words, han)


def detect_mode(text: str) -> Mode:
    """Lyrics if ``text`` has a structure tag line, else a prompt."""
    return "lyrics" if _TAG_LINE.search(text) else "prompt"


def _check_script(text: str, what: str, offset: int = 0) -> None:
    """Refuse other scripts, quoting the first offending run as written and where it starts.

    ``offset`` is how many characters of the user's text precede ``text``, so the position is
    one the user can find in what they wrote.
    """
    for i, ch in enumerate(text):
        if ch.isalpha():
            script = _script_of(ch)
            if script is not None:
                end = i
                # The run as written: Han characters inside it (kanji between kana) belong to it.
                while end < len(text) and (
                    _script_of(text[end]) == script
                    or _is_han(text[end])
                    or unicodedata.combining(text[end])
                ):
                    end += 1
                raise ValidationError(
                    _(
                        "{what} must be Chinese or English; got {script} ({excerpt} at "
                        "character {position:,}). Fun-Music sings only Chinese and English: "
                        "translate the text."
                    ).format(
                        what=field_name(what),
                        script=script,
                        excerpt=quote(text[i:end], 20),
                        position=offset + i + 1,
                    )
                )


def _check_has_letters(text: str, what: str) -> None:
    # Emoji, punctuation or zero-width spaces alone would be sent and billed for nothing.
    if not any(_is_han(ch) or _is_latin_letter(ch) for ch in _strip_tags(text)):
        raise ValidationError(
            _(
                "{what} must have Chinese or English words (at least one Han character or Latin "
                "letter); got {value}, which has none"
            ).format(what=field_name(what), value=quote(text))
        )


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise ValidationError(
            _("{name} must be one of {choices}; got {value}").format(
                name=field_name(name), choices=", ".join(allowed), value=quote(value)
            )
        )
    return value.strip().lower()


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(
            _("{name} must be True or False; got {value}").format(
                name=field_name(name), value=quote(value)
            )
        )


@dataclass(frozen=True)
class SongRequest:
    """A request that passed every check: what will be sent, and what we learned on the way."""

    model: str
    mode: Mode
    text: str
    gender: str
    format: str
    stream: bool
    language: Language
    count: int  # the measure the limit is about
    unit: str
    extra_input: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    instrumental: bool = False  # sent as input.is_instrumental

    @property
    def limit(self) -> Limit:
        return limit_for(self.mode, self.language, self.stream)

    def payload(self) -> dict[str, Any]:
        """The JSON body. It holds no key: the key only ever travels in a header."""
        inp: dict[str, Any] = {self.mode: self.text}
        if self.gender:  # empty for fun-music-preview, which takes no gender
            inp["gender"] = self.gender
        inp["format"] = self.format
        if self.instrumental:  # only when asked: the service's default is a song with vocals
            inp["is_instrumental"] = True
        inp.update(self.extra_input)
        return {"model": self.model, "input": inp}

    def body(self) -> bytes:
        """The exact bytes the clients send (``encode_payload`` of ``payload()``)."""
        return encode_payload(self.payload())

    def describe(self) -> dict[str, Any]:
        """For sidecars and tables: the request as sent, nothing secret in it."""
        return {
            "model": self.model,
            "mode": self.mode,
            self.mode: self.text,
            "gender": self.gender,
            "format": self.format,
            "stream": self.stream,
            "language": self.language,
            "instrumental": self.instrumental,
            "extra_input": dict(self.extra_input),
        }


def build_request(
    *,
    text: str | None = None,
    prompt: str | None = None,
    lyrics: str | None = None,
    gender: str | None = None,
    format: str = "mp3",
    stream: bool = False,
    model: str = DEFAULT_MODEL,
    mode: str = "auto",
    instrumental: bool = False,
    **extra_input: Any,
) -> SongRequest:
    """Validate a request and return it, or raise ``ValidationError`` saying what to fix.

    ``text`` is mode-neutral (the magic's cell body, the panel's text area): ``mode`` is
    ``"auto"``, ``"lyrics"`` or ``"prompt"``. ``prompt``/``lyrics`` are the API's own fields.
    ``gender`` defaults to female (``None``: not given, which ``fun-music-preview`` requires);
    ``instrumental=True`` asks for a song with no vocals.
    """
    warnings: list[str] = []
    if mode not in ("auto", "lyrics", "prompt"):
        raise ValidationError(
            _("{name} must be one of {choices}; got {value}").format(
                name=field_name("mode"), choices="auto, lyrics, prompt", value=quote(mode)
            )
        )
    if not isinstance(model, str) or not model.strip():
        raise ValidationError(_model_error(model))
    for name, value in (("text", text), ("prompt", prompt), ("lyrics", lyrics)):
        if value is not None and not isinstance(value, str):
            raise ValidationError(
                _("{name} must be a string; got {type}").format(
                    name=field_name(name), type=type(value).__name__
                )
            )
    if text is not None:
        if prompt is not None or lyrics is not None:
            raise ValidationError(_("pass either text= or prompt=/lyrics=, not both"))
        chosen: Mode = detect_mode(text) if mode == "auto" else mode  # type: ignore[assignment]
        if chosen == "lyrics":
            lyrics = text
        else:
            prompt = text
    elif mode == "lyrics" and lyrics is None and prompt is not None:
        lyrics, prompt = prompt, None
    elif mode == "prompt" and prompt is None and lyrics is not None:
        prompt, lyrics = lyrics, None

    has_lyrics = lyrics is not None and lyrics.strip() != ""
    has_prompt = prompt is not None and prompt.strip() != ""
    if not has_lyrics and not has_prompt:
        if lyrics is not None:
            got = _("an empty lyrics")
        elif prompt is not None:
            got = _("an empty prompt")
        else:
            got = _("neither")
        raise ValidationError(
            _(
                "a song needs lyrics or a prompt with some text; got {got}. "
                "Write lyrics (with [verse]/[chorus] tags) or describe the song."
            ).format(got=got)
        )
    if has_lyrics and has_prompt:
        warnings.append(
            _("both lyrics and a prompt were given: the lyrics are used and the prompt is ignored")
        )
    final_mode: Mode = "lyrics" if has_lyrics else "prompt"
    given_text = (lyrics if has_lyrics else prompt) or ""
    body = given_text.strip("\n").rstrip()
    offset = len(given_text) - len(given_text.lstrip("\n"))  # positions in what the user wrote
    if "\x00" in body:
        raise ValidationError(
            _("{name} must be text; got a NUL character").format(name=field_name(final_mode))
        )
    _check_sendable(final_mode, given_text)
    _check_sendable("model", model)

    preview = model.strip() == PREVIEW_MODEL
    if preview:
        _check_preview(final_mode, gender, detected=text is not None and mode == "auto")
        gender = ""
    else:
        gender = _choice("gender", "female" if gender is None else gender, GENDERS)
    if "is_instrumental" in extra_input:
        # The wire's own name works too (it used to pass through as an extra input field).
        alias = extra_input.pop("is_instrumental")
        if instrumental and alias is not True:
            raise ValidationError(_("pass either instrumental= or is_instrumental=, not both"))
        instrumental = alias
    _check_flag("instrumental", instrumental)
    format = _choice("format", format, FORMATS)
    _check_flag("stream", stream)

    for key, value in extra_input.items():
        if key in _RESERVED_INPUT:
            raise ValidationError(
                _("{key!r} is a named argument; pass it as {key}=…, not in extras").format(key=key)
            )
        where = _("extra input {key}").format(key=quote(key))
        _check_sendable(where, key)
        _check_sendable(where, value)

    _check_script(body, final_mode, offset)
    stats = text_stats(body)
    if final_mode == "lyrics":
        unknown = sorted({t for t in tags_in(body) if t not in KNOWN_TAGS})
        if unknown:
            warnings.append(
                _("unknown structure tag(s) {unknown}: Fun-Music knows {known}").format(
                    unknown=", ".join("[" + t + "]" for t in unknown),
                    known=", ".join("[" + t + "]" for t in KNOWN_TAGS),
                )
            )
        if stats.characters == 0:
            raise ValidationError(
                _(
                    "lyrics must have words besides structure tags; got only tags. "
                    "Write the lines under each tag."
                )
            )
    _check_has_letters(body, final_mode)
    limit = limit_for(final_mode, stats.language, stream)
    if model.strip() in LIMITED_MODELS:
        _check_length(final_mode, stream, stats, tags=bool(tags_in(body)))
    request = SongRequest(
        model=model.strip(),
        mode=final_mode,
        text=body,
        gender=gender,
        format=format,
        stream=stream,
        language=stats.language,
        count=limit.measure(stats),
        unit=limit.unit,
        extra_input=dict(extra_input),
        warnings=tuple(warnings),
        instrumental=instrumental,
    )
    request.body()  # every field was checked above; this proves the whole body encodes
    return request


def _model_error(model: object) -> str:
    return _("{name} must be a model name such as {example!r}; got {value}").format(
        name=field_name("model"), example=DEFAULT_MODEL, value=quote(model)
    )


def _check_preview(mode: Mode, gender: object, *, detected: bool) -> None:
    """``fun-music-preview`` takes a prompt only: refuse lyrics and an explicit gender."""
    if mode == "lyrics":
        why = _(" (the text has a structure-tag line such as [verse])") if detected else ""
        raise ValidationError(
            _(
                "{preview} takes a prompt only; got lyrics{why}. Describe the song as a "
                "prompt (prompt=, --prompt), or use {default} for lyrics."
            ).format(preview=PREVIEW_MODEL, why=why, default=DEFAULT_MODEL)
        )
    # Any gender given is refused, the default one too: dropping it silently would hide that it
    # has no effect. The front ends leave their default voice out for this model (None).
    if gender is not None:
        raise ValidationError(
            _(
                "{preview} takes no gender; got gender={value}. Leave it out, or "
                "use {default} to choose the voice."
            ).format(preview=PREVIEW_MODEL, value=quote(gender), default=DEFAULT_MODEL)
        )


def validate_payload(body: object, *, stream: bool) -> SongRequest:
    """The simulator's entry point: check a request body exactly as the client would."""
    if not isinstance(body, Mapping):
        raise ValidationError(
            _("the request body must be a JSON object; got {type}").format(type=type(body).__name__)
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValidationError(_model_error(model))
    inp = body.get("input")
    if not isinstance(inp, Mapping):
        raise ValidationError(
            _("input must be a JSON object; got {type}").format(type=type(inp).__name__)
        )
    extra = {k: v for k, v in inp.items() if k not in _RESERVED_INPUT}  # is_instrumental: alias
    return build_request(
        prompt=inp.get("prompt"),
        lyrics=inp.get("lyrics"),
        gender=inp.get("gender"),
        format=inp.get("format", "mp3"),
        stream=stream,
        model=model,
        **extra,
    )
