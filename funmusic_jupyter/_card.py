"""The song's lasting record in a notebook: the song card, and the card of a stopped or failed song.

A card is plain HTML (no script, no widget): a widget view saved in a notebook does not render
once its kernel is gone, and this is what stays. It must play reopened in JupyterLab, under
nbconvert and on GitHub, so:

- The audio is a data URI on the ``<audio>`` element itself (``IPython.display.Audio`` encodes
  it). Not on a ``<source>`` child, as ``Audio`` writes it: JupyterLab's sanitizer, which
  untrusted notebooks go through, keeps ``src`` on ``<audio>`` but strips it from ``<source>``.
- MP3 songs are embedded whole. A WAV song over ``embed_limit`` bytes is embedded as an MP3
  preview (``_preview``) and the full WAV is linked by its path, relative to the working
  directory (the notebook's folder in JupyterLab), so the link works from the notebook. The
  audio is embedded exactly once either way.
- The waveform is a small PNG (``_waveform``), which the sanitizer keeps and SVG it would not.
- ``handoff_id`` marks the main ``<audio>`` with ``data-funmusic-handoff``: the live player
  finds the card's element by it to hand playback over at the same position.

A stop the user asked for is not an error: it gets a neutral card, "Stopped at 23 s: partial
song saved to …", with a player for what arrived. A real failure keeps the red box and still
offers the partial audio. A WAV cut mid-stream announces more data than it has: its header is
repaired (``_wav.repair_wav``) before it is embedded; an MP3 cut mid-frame plays as it is.

Each ``*_html`` has a ``*_text`` twin, the ``text/plain`` of the same display: no ids, timings
or paths in it, so notebooks checked with nbval compare equal between runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from IPython.display import Audio

from ._errors import APIError, FunMusicError, GenerationCancelled
from ._html import (
    BADGE,
    BOX,
    DASH,
    ERROR_BOX,
    HEADING,
    MUTED,
    NEUTRAL_BOX,
    box_open,
    escape,
    format_money,
    link_html,
    local_time,
    notes_html,
    notes_text,
    path_text,
    rows_html,
    seconds_text,
    title_of,
)
from ._i18n import N_, _
from ._limits import field_name, gender_text
from ._models import Song, mime_type_for
from ._preview import embedded_audio
from ._spending import session_total_text
from ._validation import _TAG_LINE
from ._wav import is_wav, repair_wav
from ._waveform import analyse, waveform_html

__all__ = [
    "DEFAULT_EMBED_LIMIT",
    "audio_html",
    "error_bundle",
    "error_html",
    "error_text",
    "lyrics_html",
    "song_bundle",
    "song_html",
    "song_rows",
    "song_text",
]

#: WAV songs larger than this many bytes are embedded as an MP3 preview (about 42 s of 48 kHz
#: stereo WAV; every longer WAV song is previewed).
DEFAULT_EMBED_LIMIT = 8_000_000

_PARTIAL_BADGE = BADGE.replace("255, 170, 0", "128, 128, 128")


class _Player(Audio):
    """``IPython.display.Audio`` with the right MIME type (``Audio(data=...)`` labels every
    byte string ``audio/wav``; browsers then refuse MP3 or guess)."""

    def __init__(self, data: bytes, *, mime_type: str) -> None:
        super().__init__(data=data)  # type: ignore[no-untyped-call]
        self.mimetype = mime_type


def audio_html(audio: bytes, fmt: str, *, handoff_id: str | None = None) -> str:
    """An ``<audio controls>`` element with ``audio`` embedded once, as a ``data:`` URI of
    ``mime_type_for(fmt)``. Never autoplays: a reopened notebook must not start singing."""
    src: str = _Player(audio, mime_type=mime_type_for(fmt)).src_attr()  # type: ignore[no-untyped-call]
    handoff = f' data-funmusic-handoff="{escape(handoff_id)}"' if handoff_id is not None else ""
    # Marked outside the f-string: the extractor does not look inside f-strings (Python 3.11).
    fallback = escape(_("Your browser does not support the audio element."))
    return (
        f'<audio controls="controls" preload="metadata" style="width: 100%;"{handoff}'
        f' src="{src}">{fallback}</audio>'
    )


def lyrics_html(lyrics: str) -> str:
    """Lyrics, escaped, with each ``[section]`` tag shown as a heading.

    Headings are ``role="heading"`` divs rather than ``<h4>``: JupyterLab adds anchors and
    table-of-contents entries for real heading tags in outputs, and "Verse", "Chorus" ten times
    over would swamp a notebook's contents.
    """
    parts: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        if lines:
            parts.append(
                '<div style="white-space: pre-wrap; margin: 0 0 4px;">'
                + "<br>".join(escape(line) for line in lines)
                + "</div>"
            )
            lines.clear()

    for raw in lyrics.strip("\n").splitlines():
        stripped = raw.strip()
        match = _TAG_LINE.fullmatch(stripped)
        if match:
            flush()
            parts.append(
                f'<div role="heading" aria-level="4" class="funmusic-section" '
                f'style="{HEADING}">{escape(_section_name(match.group(1).strip()))}</div>'
            )
        elif stripped:
            lines.append(stripped)
        else:
            flush()
    flush()
    return '<div class="funmusic-lyrics">' + "".join(parts) + "</div>"


# -- what goes into the notebook ----------------------------------------------------------------
def _player_html(
    audio: bytes,
    fmt: str,
    *,
    embed_limit: int,
    saved_path: str | os.PathLike[str] | None,
    base_dir: str | os.PathLike[str] | None,
    handoff_id: str | None,
    label: str,
) -> tuple[str, float]:
    """Waveform, player and preview note for ``audio``; and its decoded length in seconds."""
    shape = analyse(audio, fmt)
    embedded = embedded_audio(
        audio, fmt, embed_limit=embed_limit, saved_path=saved_path, base_dir=base_dir
    )
    markup = (
        waveform_html(shape.peaks, label=label)
        + audio_html(embedded.audio, embedded.fmt, handoff_id=handoff_id)
        + embedded.note_html
    )
    return markup, shape.seconds


# -- the song card ------------------------------------------------------------------------------
# The five structure tags, as a section heading reads in the card's language. The msgid is the tag
# itself: English shows the tag as written (the heading's CSS capitalises it).
_SECTION_NAMES = {
    "intro": N_("intro"),
    "verse": N_("verse"),
    "chorus": N_("chorus"),
    "bridge": N_("bridge"),
    "outro": N_("outro"),
}


def _section_name(tag: str) -> str:
    msgid = _SECTION_NAMES.get(tag.lower())
    if msgid is None:
        return tag  # a tag of the user's own: shown as written
    translated = _(msgid)
    return tag if translated == msgid else translated


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return _("{seconds:g} s ({minutes}:{secs:02d})").format(
        seconds=seconds, minutes=minutes, secs=secs
    )


def _channels(n: int) -> str:
    name = {1: _("mono"), 2: _("stereo")}.get(n)
    return f"{n} ({name})" if name else str(n)


def _voice(song: Song) -> str:
    """The Gender row: never empty, since an empty cell reads as missing data."""
    if song.request.instrumental:
        return _("none: instrumental (no vocals)")
    if not song.gender:
        return _("not chosen (the model's own voice: it takes no gender)")
    return gender_text(song.gender)


def song_rows(
    song: Song,
    *,
    price_per_second: float = 0.002,
    currency: str = "CNY",
    also_saved: Sequence[str | os.PathLike[str]] = (),
) -> list[tuple[str, str]]:
    """The metadata table, as (label, value) pairs."""
    saved = [path_text(song.saved_path)] if song.saved_path else []
    saved += [os.fspath(p) for p in also_saved if Path(p) != song.saved_path]
    # The labels are the table's headings: translated (nbval's sanitizer finds the English
    # ones in the teaching notebooks); the model, format and MIME type stay as the API says.
    return [
        (_("Model"), song.model),
        (_("Mode"), field_name(song.mode)),
        (_("Gender"), _voice(song)),
        (_("Format"), f"{song.format} ({song.mime_type})"),
        (_("Sample rate"), f"{song.sample_rate:,} Hz"),
        (_("Channels"), _channels(song.channels)),
        (_("Duration"), _duration(song.duration)),
        (
            _("Cost"),
            f"{format_money(song.cost(price_per_second), currency)}"
            " "
            + _("({seconds:g} s × {price:g} {currency}/s)").format(
                seconds=song.duration, price=price_per_second, currency=currency
            ),
        ),
        (_("Request id"), song.request_id or DASH),
        (_("Audio id"), song.audio_id or DASH),
        (_("URL expires"), local_time(song.expires_at)),
        (_("Time to first audio"), seconds_text(song.time_to_first_audio)),
        (_("Total time"), seconds_text(song.total_time)),
        (_("Saved to"), "\n".join(saved) if saved else _("not saved")),
        (
            _("Simulated"),
            _("yes: made by the offline simulator, not by Fun-Music")
            if song.simulated
            else _("no"),
        ),
        # What this kernel has spent so far (real service only; the simulator is free).
        (_("Session total"), session_total_text(price_per_second, currency)),
    ]


def song_html(
    song: Song,
    *,
    price_per_second: float = 0.002,
    currency: str = "CNY",
    notes: Sequence[str] = (),
    also_saved: Sequence[str | os.PathLike[str]] = (),
    embed_limit: int = DEFAULT_EMBED_LIMIT,
    handoff_id: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> str:
    """The song card: title, waveform, player, notes, lyrics, metadata table.

    ``embed_limit``: WAV songs over this many bytes are embedded as an MP3 preview and linked
    (by a path relative to ``base_dir``, default the working directory). ``handoff_id``: see
    the module docstring. Slow for long WAV songs (the preview is encoded here, about 1.5 s for
    200 s): call it off the kernel's main thread where that matters.
    """
    title = title_of(song.lyrics) or title_of(song.request.text) or _("Song")
    simulated = escape(_("SIMULATED"))
    badge = (
        f'<span class="funmusic-simulated" style="{BADGE}">{simulated}</span>'
        if song.simulated
        else ""
    )
    rows = song_rows(
        song, price_per_second=price_per_second, currency=currency, also_saved=also_saved
    )
    player, _length = _player_html(
        song.audio,
        song.format,
        embed_limit=embed_limit,
        saved_path=song.saved_path,
        base_dir=base_dir,
        handoff_id=handoff_id,
        label=_("Waveform of {title}").format(title=title),
    )
    lyrics_label, details_label = escape(_("Lyrics")), escape(_("Details"))
    lyrics = (
        f'<details open style="margin-top: 6px;"><summary style="cursor: pointer; {MUTED}">'
        f"{lyrics_label}</summary>{lyrics_html(song.lyrics)}</details>"
        if song.lyrics.strip()
        else ""
    )
    return (
        f'{box_open("funmusic-song", BOX)}'
        f'<div style="font-weight: 600; margin-bottom: 4px;">♪ {escape(title)}{badge}</div>'
        f"{player}{notes_html(notes)}{lyrics}"
        f'<details open style="margin-top: 4px;"><summary style="cursor: pointer; {MUTED}">'
        f"{details_label}</summary>{rows_html(rows)}</details>"
        "</div>"
    )


def song_text(song: Song, *, notes: Sequence[str] = ()) -> str:
    """Deterministic ``text/plain``: the song's summary and the notes."""
    return song.summary() + notes_text(notes)


def song_bundle(
    song: Song,
    *,
    price_per_second: float = 0.002,
    currency: str = "CNY",
    notes: Sequence[str] = (),
    also_saved: Sequence[str | os.PathLike[str]] = (),
    embed_limit: int = DEFAULT_EMBED_LIMIT,
    handoff_id: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    """A MIME bundle for ``display(..., raw=True)``: the audio is in the HTML only, once."""
    return {
        "text/plain": song_text(song, notes=notes),
        "text/html": song_html(
            song,
            price_per_second=price_per_second,
            currency=currency,
            notes=notes,
            also_saved=also_saved,
            embed_limit=embed_limit,
            handoff_id=handoff_id,
            base_dir=base_dir,
        ),
    }


# -- stopped and failed songs -------------------------------------------------------------------
def error_parts(error: BaseException) -> tuple[str, str, str]:
    """(headline, what, message): ``what`` is "500 InternalError" or the error's type."""
    if isinstance(error, GenerationCancelled):
        return _("Song stopped"), _("Stopped"), str(error)
    if isinstance(error, APIError):
        what = " ".join(
            part
            for part in (
                str(error.status_code) if error.status_code is not None else "",
                error.code or "",
            )
            if part
        )
        # The code and the service's message stay verbatim; only the headline is ours.
        return _("Song failed"), what or type(error).__name__, error.message
    if isinstance(error, FunMusicError):
        return _("Song failed"), type(error).__name__, str(error)
    # Not ours (a bug, or an OS error while saving): still one box, never a traceback.
    return _("Song failed"), type(error).__name__, str(error) or repr(error)


def _partial_audio(error: BaseException, audio: bytes | None, fmt: str | None) -> tuple[bytes, str]:
    data = audio if audio is not None else bytes(getattr(error, "partial_audio", b"") or b"")
    kind = fmt or ("wav" if is_wav(data) else "mp3")
    return (repair_wav(data) if kind == "wav" else data), kind


def error_html(
    error: BaseException,
    *,
    partial_path: str | os.PathLike[str] | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
    audio: bytes | None = None,
    fmt: str | None = None,
    embed_limit: int = DEFAULT_EMBED_LIMIT,
    handoff_id: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> str:
    """The card of a song that did not finish, with a player for the audio that did arrive.

    ``audio`` defaults to the error's ``partial_audio``; ``fmt`` to what the bytes look like.
    A ``GenerationCancelled`` (the user's stop) gets a neutral card; anything else the red
    error box with the DashScope code, message and request id.
    """
    data, kind = _partial_audio(error, audio, fmt)
    name = title_of(title) if title else ""
    player, seconds = (
        _player_html(
            data,
            kind,
            embed_limit=embed_limit,
            saved_path=partial_path,
            base_dir=base_dir,
            handoff_id=handoff_id,
            label=_("Waveform of the partial song {title}").format(title=name).rstrip(),
        )
        if data
        else ("", 0.0)
    )
    where = link_html(partial_path, base_dir, "funmusic-partial-link") if partial_path else ""
    partial_label = escape(_("PARTIAL"))
    badge = f'<span class="funmusic-partial" style="{_PARTIAL_BADGE}">{partial_label}</span>'
    request_id = getattr(error, "request_id", None)
    if isinstance(error, GenerationCancelled):
        if not data:
            headline = _("Stopped before any audio arrived: there is nothing to play.")
        elif partial_path is not None:
            headline = _("Stopped at {seconds:.0f} s: partial song saved to ").format(
                seconds=seconds
            )
        else:
            headline = _("Stopped at {seconds:.0f} s: the partial song could not be saved.").format(
                seconds=seconds
            )
        heading = f"■ {escape(headline)}{where if data else ''}"
        subtitle = (
            f'<div style="{MUTED} margin-bottom: 4px;">♪ {escape(name)}{badge if data else ""}'
            "</div>"
            if name or data
            else ""
        )
        rows = [(_("Request id"), str(request_id))] if request_id else []
        return (
            f'{box_open("funmusic-stopped", NEUTRAL_BOX)}'
            f'<div style="font-weight: 600;">{heading}</div>{subtitle}{player}'
            f"{notes_html(notes)}{rows_html(rows) if rows else ''}</div>"
        )
    headline, what, message = error_parts(error)
    rows = [(_("Error"), what), (_("Message"), message)]
    if request_id:
        rows.append((_("Request id"), str(request_id)))
    if partial_path is not None:
        size = _(" ({count:,} bytes)").format(count=len(data)) if data else ""
        rows.append((_("Partial audio saved to"), f"{os.fspath(partial_path)}{size}"))
    elif isinstance(error, APIError):
        rows.append((_("Partial audio"), _("none arrived") if not data else _("not saved")))
    heading = _("{headline}: {title}").format(headline=headline, title=name) if name else headline
    first = _("The first {seconds:.0f} s arrived").format(seconds=seconds)
    partial = (
        f'<div style="margin-top: 6px;">{escape(first)}{badge}</div>{player}' if data else ""
    )
    return (
        f'{box_open("funmusic-error", ERROR_BOX)}'
        f'<div style="font-weight: 600;">✕ {escape(heading)}</div>'
        f"{notes_html(notes)}{rows_html(rows)}{partial}</div>"
    )


def error_text(
    error: BaseException,
    *,
    partial_path: str | os.PathLike[str] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """Deterministic ``text/plain``: what happened, never request ids, seconds or paths."""
    saved = _(" (partial audio saved)") if partial_path is not None else ""
    if isinstance(error, GenerationCancelled):
        partial = bool(getattr(error, "partial_audio", b""))
        text = _("Song stopped") + (saved or ("" if partial else _(" before any audio arrived")))
        return text + notes_text(notes)
    headline, what, message = error_parts(error)
    return _("{headline}: {what}: {message}{saved}").format(
        headline=headline, what=what, message=message, saved=saved
    ) + notes_text(notes)


def error_bundle(
    error: BaseException,
    *,
    partial_path: str | os.PathLike[str] | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
    audio: bytes | None = None,
    fmt: str | None = None,
    embed_limit: int = DEFAULT_EMBED_LIMIT,
    handoff_id: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    """A MIME bundle for a song that did not finish (see ``error_html``)."""
    return {
        "text/plain": error_text(error, partial_path=partial_path, notes=notes),
        "text/html": error_html(
            error,
            partial_path=partial_path,
            title=title,
            notes=notes,
            audio=audio,
            fmt=fmt,
            embed_limit=embed_limit,
            handoff_id=handoff_id,
            base_dir=base_dir,
        ),
    }
