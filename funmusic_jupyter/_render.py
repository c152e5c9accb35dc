"""The one renderer: the song card (player, lyrics, metadata), the error box, the progress line.

Used by ``Song._repr_mimebundle_``, by ``%%funmusic`` and by the panel, so a song looks the same
everywhere. The HTML is self-contained (inline styles, no CDN, no script) and uses JupyterLab's
theme variables with neutral, semi-transparent fallbacks, so it reads in light and dark themes
and outside JupyterLab. Every piece of text that came from the user or the service is escaped.

Each ``*_html`` has a ``*_text`` twin: the ``text/plain`` of the same display. Those hold no
request ids, timings or paths, so notebooks checked with nbval compare equal between runs.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.display import Audio

from ._errors import APIError, FunMusicError, GenerationCancelled
from ._models import Song, mime_type_for
from ._validation import _TAG_LINE, first_line

if TYPE_CHECKING:
    from ._worker import Job

__all__ = [
    "audio_html",
    "error_bundle",
    "error_html",
    "error_text",
    "format_money",
    "lyrics_html",
    "progress_html",
    "progress_text",
    "settings_html",
    "settings_text",
    "song_bundle",
    "song_html",
    "song_rows",
    "song_text",
    "status_html",
    "status_text",
]

# Inline styles: an output's HTML cannot rely on a stylesheet being there (nbviewer, VS Code,
# a saved notebook opened elsewhere). Colours are theme variables or translucent, so the same
# markup works on white and on black.
_BORDER = "var(--jp-border-color2, rgba(128, 128, 128, 0.35))"
_BOX = (
    "font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 13px;"
    " line-height: 1.45; color: var(--jp-ui-font-color1, inherit);"
    f" border: 1px solid {_BORDER}; border-radius: 6px; padding: 8px 12px; margin: 2px 0;"
    " max-width: 760px; box-sizing: border-box;"
)
_ERROR_BOX = (
    _BOX + " border-left: 4px solid rgba(217, 83, 79, 0.9);"
    " background: rgba(217, 83, 79, 0.08);"
)
_MUTED = "opacity: 0.72;"
_BADGE = (
    "display: inline-block; margin-left: 0.5em; padding: 0 0.45em; border-radius: 3px;"
    " font-size: 11px; font-weight: 600; letter-spacing: 0.02em; vertical-align: middle;"
    " background: rgba(255, 170, 0, 0.18); border: 1px solid rgba(255, 170, 0, 0.7);"
)
_TABLE = "border-collapse: collapse; margin: 6px 0 2px; font-size: 12px;"
# JupyterLab right-aligns table cells in outputs: set alignment explicitly.
_TH = (
    "text-align: left; font-weight: 600; padding: 2px 12px 2px 0; vertical-align: top;"
    f" white-space: nowrap; border-top: 1px solid {_BORDER};"
)
_TD = (
    f"text-align: left; padding: 2px 0; vertical-align: top; border-top: 1px solid {_BORDER};"
    " word-break: break-all;"
)
_NOTE = (
    "margin: 4px 0; padding: 2px 8px; font-size: 12px;"
    " border-left: 3px solid rgba(255, 170, 0, 0.8); background: rgba(255, 170, 0, 0.08);"
)
_HEADING = "font-weight: 600; margin: 8px 0 2px; font-size: 12px; text-transform: capitalize;"

_DASH = "—"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def format_money(amount: float, currency: str) -> str:
    """``0.06 CNY``: at least two decimals, up to four, no float noise."""
    text = f"{amount:.4f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    frac = frac + "0" * (2 - len(frac)) if len(frac) < 2 else frac
    return f"{whole}.{frac} {currency}".strip()


def _seconds(value: float | None, digits: int = 2) -> str:
    return _DASH if value is None else f"{value:.{digits}f} s"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{seconds:g} s ({minutes}:{secs:02d})"


def _local_time(moment: datetime | None) -> str:
    if moment is None:
        return _DASH
    local = moment.astimezone()  # naive values are taken as local time already
    zone = local.strftime("%Z") or local.strftime("UTC%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {zone}"


def _channels(n: int) -> str:
    name = {1: "mono", 2: "stereo"}.get(n)
    return f"{n} ({name})" if name else str(n)


def _path(value: str | os.PathLike[str] | None) -> str:
    return _DASH if value is None else os.fspath(value)


def _rows_html(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(
        f'<tr><th scope="row" style="{_TH}">{_e(k)}</th><td style="{_TD}">{_e(v)}</td></tr>'
        for k, v in rows
    )
    return f'<table style="{_TABLE}"><tbody>{body}</tbody></table>'


def _notes_html(notes: Sequence[str]) -> str:
    return "".join(f'<div class="funmusic-note" style="{_NOTE}">{_e(n)}</div>' for n in notes)


def _notes_text(notes: Sequence[str]) -> str:
    return "".join(f"\nnote: {n}" for n in notes)


class _Player(Audio):
    """``IPython.display.Audio`` with the right MIME type.

    ``Audio(data=...)`` labels every byte string ``audio/wav``; browsers then refuse MP3 or
    guess. This player is only ever embedded as HTML (never displayed on its own), so the
    audio's base64 appears once in the output.
    """

    def __init__(self, data: bytes, *, mime_type: str) -> None:
        super().__init__(data=data)  # type: ignore[no-untyped-call]
        self.mimetype = mime_type


def audio_html(audio: bytes, fmt: str) -> str:
    """An ``<audio controls>`` element, the audio embedded, labelled ``mime_type_for(fmt)``."""
    player = _Player(audio, mime_type=mime_type_for(fmt))
    markup: str = player._repr_html_().strip()  # type: ignore[no-untyped-call]
    # Full width and no autoplay: a re-opened notebook must not start singing.
    return markup.replace('controls="controls"', 'controls="controls" style="width: 100%;"', 1)


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
                + "<br>".join(_e(line) for line in lines)
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
                f'style="{_HEADING}">{_e(match.group(1).strip())}</div>'
            )
        elif stripped:
            lines.append(stripped)
        else:
            flush()
    flush()
    return '<div class="funmusic-lyrics">' + "".join(parts) + "</div>"


def song_rows(
    song: Song,
    *,
    price_per_second: float = 0.002,
    currency: str = "CNY",
    also_saved: Sequence[str | os.PathLike[str]] = (),
) -> list[tuple[str, str]]:
    """The metadata table, as (label, value) pairs."""
    saved = [_path(song.saved_path)] if song.saved_path else []
    saved += [os.fspath(p) for p in also_saved if Path(p) != song.saved_path]
    return [
        ("Model", song.model),
        ("Mode", song.mode),
        ("Gender", song.gender),
        ("Format", f"{song.format} ({song.mime_type})"),
        ("Sample rate", f"{song.sample_rate:,} Hz"),
        ("Channels", _channels(song.channels)),
        ("Duration", _duration(song.duration)),
        (
            "Cost",
            f"{format_money(song.cost(price_per_second), currency)}"
            f" ({song.duration:g} s × {price_per_second:g} {currency}/s)",
        ),
        ("Request id", song.request_id or _DASH),
        ("Audio id", song.audio_id or _DASH),
        ("URL expires", _local_time(song.expires_at)),
        ("Time to first audio", _seconds(song.time_to_first_audio)),
        ("Total time", _seconds(song.total_time)),
        ("Saved to", "\n".join(saved) if saved else "not saved"),
        (
            "Simulated",
            "yes: made by the offline simulator, not by Fun-Music" if song.simulated else "no",
        ),
    ]


def _title(text: str) -> str:
    line = first_line(text)
    return line if len(line) <= 80 else line[:79] + "…"


def song_html(
    song: Song,
    *,
    price_per_second: float = 0.002,
    currency: str = "CNY",
    notes: Sequence[str] = (),
    also_saved: Sequence[str | os.PathLike[str]] = (),
) -> str:
    """The song card: title, player (correct MIME type), notes, lyrics, metadata table."""
    title = _title(song.lyrics) or _title(song.request.text) or "Song"
    badge = (
        f'<span class="funmusic-simulated" style="{_BADGE}">SIMULATED</span>'
        if song.simulated
        else ""
    )
    rows = song_rows(
        song, price_per_second=price_per_second, currency=currency, also_saved=also_saved
    )
    lyrics = (
        f'<details open style="margin-top: 6px;"><summary style="cursor: pointer; {_MUTED}">'
        f"Lyrics</summary>{lyrics_html(song.lyrics)}</details>"
        if song.lyrics.strip()
        else ""
    )
    return (
        f'<div class="funmusic-song" style="{_BOX}">'
        f'<div style="font-weight: 600; margin-bottom: 4px;">♪ {_e(title)}{badge}</div>'
        f"{audio_html(song.audio, song.format)}"
        f"{_notes_html(notes)}"
        f"{lyrics}"
        f'<details open style="margin-top: 4px;"><summary style="cursor: pointer; {_MUTED}">'
        f"Details</summary>{_rows_html(rows)}</details>"
        "</div>"
    )


def song_text(song: Song, *, notes: Sequence[str] = ()) -> str:
    """Deterministic ``text/plain``: the song's summary and the notes."""
    return song.summary() + _notes_text(notes)


def song_bundle(
    song: Song,
    *,
    price_per_second: float = 0.002,
    currency: str = "CNY",
    notes: Sequence[str] = (),
    also_saved: Sequence[str | os.PathLike[str]] = (),
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
        ),
    }


def _error_parts(error: BaseException) -> tuple[str, str, str]:
    """(headline, what, message): ``what`` is "500 InternalError" or the error's type."""
    if isinstance(error, GenerationCancelled):
        return "Song stopped", "Cancelled", str(error)
    if isinstance(error, APIError):
        what = " ".join(
            part for part in (
                str(error.status_code) if error.status_code is not None else "",
                error.code or "",
            ) if part
        )
        return "Song failed", what or type(error).__name__, error.message
    if isinstance(error, FunMusicError):
        return "Song failed", type(error).__name__, str(error)
    # Not ours (a bug, or an OS error while saving): still one box, never a traceback.
    return "Song failed", type(error).__name__, str(error) or repr(error)


def error_html(
    error: BaseException,
    *,
    partial_path: str | os.PathLike[str] | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """A compact error box: DashScope code, message, request id, where partial audio went."""
    headline, what, message = _error_parts(error)
    rows = [("Error", what), ("Message", message)]
    request_id = getattr(error, "request_id", None)
    if request_id:
        rows.append(("Request id", str(request_id)))
    partial = getattr(error, "partial_audio", b"") or b""
    if partial_path is not None:
        size = f" ({len(partial):,} bytes)" if partial else ""
        rows.append(("Partial audio saved to", f"{os.fspath(partial_path)}{size}"))
    elif isinstance(error, (APIError, GenerationCancelled)):
        rows.append(("Partial audio", "none arrived"))
    heading = f"{headline}: {_title(title)}" if title and _title(title) else headline
    return (
        f'<div class="funmusic-error" style="{_ERROR_BOX}">'
        f'<div style="font-weight: 600;">✕ {_e(heading)}</div>'
        f"{_notes_html(notes)}{_rows_html(rows)}</div>"
    )


def error_text(
    error: BaseException,
    *,
    partial_path: str | os.PathLike[str] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """Deterministic ``text/plain``: code and message only (request ids and paths vary)."""
    headline, what, message = _error_parts(error)
    text = f"{headline}: {what}: {message}"
    if partial_path is not None:
        text += " (partial audio saved)"
    return text + _notes_text(notes)


def error_bundle(
    error: BaseException,
    *,
    partial_path: str | os.PathLike[str] | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> dict[str, str]:
    return {
        "text/plain": error_text(error, partial_path=partial_path, notes=notes),
        "text/html": error_html(error, partial_path=partial_path, title=title, notes=notes),
    }


_STATE_WORDS = {
    "queued": "waiting to start",
    "waiting": "waiting for the first audio",
    "generating": "generating (no streaming: the audio comes at the end)",
    "streaming": "streaming",
    "saving": "saving",
}


def progress_html(
    *,
    title: str,
    state: str,
    seconds: float | None = 0.0,
    chunks: int = 0,
    bytes_received: int = 0,
    elapsed: float = 0.0,
    job_id: str | None = None,
    notes: Sequence[str] = (),
    streaming: bool = True,
) -> str:
    """The live line under a running cell: audio so far, chunks, elapsed time, a bar.

    The song's length is unknown until its last event, so the bar is indeterminate (the
    browser animates it) and the numbers say how far it got. A song that is not streamed has
    no audio until it is done, so it shows only the elapsed time.
    """
    job = f'<span style="{_MUTED}">job {_e(job_id)} · </span>' if job_id else ""
    words = _STATE_WORDS.get(state, state)
    if streaming:
        audio = _DASH if seconds is None else f"{seconds:.1f} s"
        stats = (
            f"{audio} of audio · {chunks:,} chunk{'s' if chunks != 1 else ''}"
            f" · {bytes_received / 1024:,.0f} KB · {elapsed:.1f} s elapsed"
        )
    else:
        stats = f"not streamed: the song appears when it is done · {elapsed:.1f} s elapsed"
    return (
        f'<div class="funmusic-progress" style="{_BOX}">'
        f'<div style="font-weight: 600;">♪ {_e(_title(title) or "Song")}</div>'
        f'<div>{job}<span class="funmusic-state">{_e(words)}</span></div>'
        '<progress style="width: 100%; height: 8px; margin: 4px 0;"></progress>'
        f'<div class="funmusic-stats" style="{_MUTED} font-variant-numeric: tabular-nums;">'
        f"{_e(stats)}</div>{_notes_html(notes)}</div>"
    )


def progress_text(*, title: str, notes: Sequence[str] = ()) -> str:
    """Deterministic ``text/plain`` for the progress display (nbval records the first version)."""
    return f"funmusic: making {_title(title)!r} in the background" + _notes_text(notes)


def _job_rows(jobs: Sequence[Job]) -> list[dict[str, str]]:
    rows = []
    for job in jobs:
        saved = job.saved_path or job.partial_path
        # Not streamed: no chunks, and no audio until it is done (not "0.0 s" and "0").
        seconds = job.song.duration if job.song else job.seconds if job.request.stream else None
        rows.append(
            {
                "job": job.id,
                "state": job.state,
                "song": _title(job.request.text),
                "audio": _DASH if seconds is None else f"{seconds:.1f} s",
                "chunks": f"{job.chunks:,}" if job.request.stream else _DASH,
                "elapsed": f"{job.elapsed:.1f} s",
                "file": _path(saved),
                "error": _error_parts(job.error)[1] if job.error else "",
            }
        )
    return rows


# The status table's cells, not _TD: its ``break-all`` let a narrow table split words
# ("waitin g", "son g"). Short columns never wrap, text wraps between words, and only a path
# (one long word) may break anywhere.
_STATUS_TD = _TD.replace(" word-break: break-all;", "") + " padding-right: 12px;"
_STATUS_WRAP = {"song": "overflow-wrap: break-word", "error": "overflow-wrap: break-word",
                "file": "word-break: break-all"}


def status_html(jobs: Sequence[Job]) -> str:
    """``%funmusic status``: one row per job."""
    if not jobs:
        return f'<div class="funmusic-status" style="{_BOX}">No songs yet in this kernel.</div>'
    rows = _job_rows(jobs)
    head = "".join(f'<th style="{_TH} border-top: none;">{_e(k)}</th>' for k in rows[0])
    body = "".join(
        "<tr>"
        + "".join(
            f'<td style="{_STATUS_TD} {_STATUS_WRAP.get(k, "white-space: nowrap")};">{_e(v)}</td>'
            for k, v in r.items()
        )
        + "</tr>"
        for r in rows
    )
    counts = _counts(jobs)
    return (
        f'<div class="funmusic-status" style="{_BOX}"><div style="font-weight: 600;">'
        f"{_e(counts)}</div><table style=\"{_TABLE}\"><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def _counts(jobs: Sequence[Job]) -> str:
    tally: dict[str, int] = {}
    for job in jobs:
        tally[job.state] = tally.get(job.state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(tally.items()))


def status_text(jobs: Sequence[Job]) -> str:
    if not jobs:
        return "No songs yet in this kernel."
    lines = [_counts(jobs)]
    for r in _job_rows(jobs):
        extra = f" [{r['error']}]" if r["error"] else ""
        chunks = r["chunks"] if r["chunks"] == _DASH else f"{r['chunks']} chunks"
        lines.append(
            f"{r['job']:>3}  {r['state']:<10} {r['audio']:>8}  {chunks:>10}  "
            f"{r['elapsed']:>8}  {r['song']!r}{extra}  {r['file']}"
        )
    return "\n".join(lines)


def settings_html(settings: Mapping[str, Any], *, title: str = "funmusic settings") -> str:
    """``%funmusic config``: a two-column table. Callers pass only what may be shown."""
    return (
        f'<div class="funmusic-config" style="{_BOX}"><div style="font-weight: 600;">'
        f"{_e(title)}</div>{_rows_html((k, str(v)) for k, v in settings.items())}</div>"
    )


def settings_text(settings: Mapping[str, Any], *, title: str = "funmusic settings") -> str:
    width = max((len(k) for k in settings), default=0)
    return "\n".join([title] + [f"  {k:<{width}}  {v}" for k, v in settings.items()])
