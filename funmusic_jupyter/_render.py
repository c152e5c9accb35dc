"""The one renderer: what every output of the package looks like.

Used by ``Song._repr_mimebundle_``, by ``%%funmusic`` and by the panel, so a song looks the same
everywhere. This module is the façade the others import from; the work is split by concept:

- ``_card``: the song card and the card of a stopped or failed song (player, waveform, lyrics,
  metadata, MP3 preview of big WAV songs);
- ``_waveform``: peaks and their picture; ``_preview``: the MP3 preview; ``_wav``: WAV headers;
- ``_html``: shared styles and escaping;
- here: the progress line under a running cell, ``%funmusic status`` and ``%funmusic config``.

The HTML is self-contained (inline styles, no CDN, no script) and every piece of text that came
from the user or the service is escaped. Each ``*_html`` has a ``*_text`` twin: the
``text/plain`` of the same display, with no request ids, timings or paths, so notebooks checked
with nbval compare equal between runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._card import (
    DEFAULT_EMBED_LIMIT,
    audio_html,
    error_bundle,
    error_html,
    error_parts,
    error_text,
    lyrics_html,
    song_bundle,
    song_html,
    song_rows,
    song_text,
)
from ._html import BOX as _BOX
from ._html import DASH as _DASH
from ._html import MUTED as _MUTED
from ._html import TABLE as _TABLE
from ._html import TD as _TD
from ._html import TH as _TH
from ._html import box_open, format_money, link_path, path_text, rows_html, shown_path
from ._html import escape as _e
from ._html import notes_html as _notes_html
from ._html import notes_text as _notes_text
from ._html import title_of as _title
from ._i18n import N_, _, display_width, ngettext, pad
from ._waveform import song_peaks

if TYPE_CHECKING:
    from ._worker import Job

__all__ = [
    "DEFAULT_EMBED_LIMIT",
    "audio_html",
    "configured_embed_limit",
    "error_bundle",
    "error_html",
    "error_parts",
    "error_text",
    "format_money",
    "link_path",
    "lyrics_html",
    "progress_html",
    "progress_text",
    "save_failed_note",
    "settings_html",
    "settings_text",
    "shown_path",
    "song_bundle",
    "song_html",
    "song_peaks",
    "song_rows",
    "song_text",
    "status_html",
    "state_text",
    "status_text",
    "stopped_text",
]

_STATE_WORDS = {
    "queued": N_("waiting to start"),
    "waiting": N_("waiting for the first audio"),
    "generating": N_("generating (no streaming: the audio comes at the end)"),
    "streaming": N_("streaming"),
    "saving": N_("saving"),
}
# A job's state in one word, for the status table (the job's ``state`` attribute stays English).
_STATES = {
    "queued": N_("queued"),
    "waiting": N_("waiting"),
    "generating": N_("generating"),
    "streaming": N_("streaming"),
    "saving": N_("saving"),
    "done": N_("done"),
    "failed": N_("failed"),
    "cancelled": N_("cancelled"),
}
_STATUS_HEADINGS = {
    "job": N_("job"),
    "state": N_("state"),
    "song": N_("song"),
    "audio": N_("audio"),
    "chunks": N_("chunks"),
    "elapsed": N_("elapsed"),
    "file": N_("file"),
    "error": N_("error"),
}


def save_failed_note(error: BaseException) -> str:
    """The note on a song that could not be written to the output directory."""
    return _("could not save to the output directory: {type}: {error}").format(
        type=type(error).__name__, error=error
    )


def state_text(state: str) -> str:
    """A job's state as the current language says it (``done`` -> 完成)."""
    return _(_STATES[state]) if state in _STATES else state


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
    job_text = _e(_("job {id}").format(id=job_id)) if job_id else ""
    job = f'<span style="{_MUTED}">{job_text} · </span>' if job_id else ""
    words = _(_STATE_WORDS[state]) if state in _STATE_WORDS else state
    elapsed_text = _("{seconds:.1f} s elapsed").format(seconds=elapsed)
    if streaming:
        audio = (
            _("{audio} of audio").format(audio=_DASH)
            if seconds is None
            else _("{seconds} s of audio").format(seconds=f"{seconds:.1f}")
        )
        stats = " · ".join(
            (
                audio,
                ngettext("{count:,} chunk", "{count:,} chunks", chunks).format(count=chunks),
                f"{bytes_received / 1024:,.0f} KB",
                elapsed_text,
            )
        )
    else:
        stats = _("not streamed: the song appears when it is done") + " · " + elapsed_text
    heading = _title(title) or _("Song")
    return (
        f'{box_open("funmusic-progress", _BOX)}'
        f'<div style="font-weight: 600;">♪ {_e(heading)}</div>'
        f'<div>{job}<span class="funmusic-state">{_e(words)}</span></div>'
        '<progress style="width: 100%; height: 8px; margin: 4px 0;"></progress>'
        f'<div class="funmusic-stats" style="{_MUTED} font-variant-numeric: tabular-nums;">'
        f"{_e(stats)}</div>{_notes_html(notes)}</div>"
    )


def progress_text(*, title: str, notes: Sequence[str] = ()) -> str:
    """Deterministic ``text/plain`` for the progress display (nbval records the first version)."""
    making = _("funmusic: making {title!r} in the background").format(title=_title(title))
    return making + _notes_text(notes)


def _job_rows(jobs: Sequence[Job]) -> list[dict[str, str]]:
    rows = []
    for job in jobs:
        saved = job.saved_path or job.partial_path
        # Not streamed: no chunks, and no audio until it is done (not "0.0 s" and "0").
        seconds = job.song.duration if job.song else job.seconds if job.request.stream else None
        rows.append(
            {
                "job": job.id,
                "state": state_text(job.state),
                "song": _title(job.request.text),
                "audio": _DASH if seconds is None else f"{seconds:.1f} s",
                "chunks": f"{job.chunks:,}" if job.request.stream else _DASH,
                "elapsed": f"{job.elapsed:.1f} s",
                "file": path_text(saved),
                "error": error_parts(job.error)[1] if job.error else "",
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
        return f'{box_open("funmusic-status", _BOX)}{_e(_no_songs())}</div>'
    rows = _job_rows(jobs)
    head = "".join(
        f'<th style="{_TH} border-top: none;">{_e(_(_STATUS_HEADINGS[k]))}</th>' for k in rows[0]
    )
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
        f'{box_open("funmusic-status", _BOX)}<div style="font-weight: 600;">'
        f"{_e(counts)}</div><table style=\"{_TABLE}\"><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def _no_songs() -> str:
    return _("No songs yet in this kernel.")


def _counts(jobs: Sequence[Job]) -> str:
    tally: dict[str, int] = {}
    for job in jobs:
        tally[job.state] = tally.get(job.state, 0) + 1
    return _(", ").join(
        # TRANSLATORS: one part of %funmusic status's summary, e.g. "2 done"; {state} is a
        # job's state word (done, failed, streaming…).
        _("{count} {state}").format(count=n, state=state_text(state))
        for state, n in sorted(tally.items())
    )


def status_text(jobs: Sequence[Job]) -> str:
    if not jobs:
        return _no_songs()
    lines = [_counts(jobs)]
    for r in _job_rows(jobs):
        extra = f" [{r['error']}]" if r["error"] else ""
        chunks = (
            r["chunks"]
            if r["chunks"] == _DASH
            else _("{count} chunks").format(count=r["chunks"])
        )
        lines.append(
            f"{r['job']:>3}  {pad(r['state'], 10)} {r['audio']:>8}  {pad(chunks, 10, right=True)}  "
            f"{r['elapsed']:>8}  {r['song']!r}{extra}  {r['file']}"
        )
    return "\n".join(lines)


def settings_html(settings: Mapping[str, Any], *, title: str | None = None) -> str:
    """``%funmusic config``: a two-column table. Callers pass only what may be shown."""
    title = _("funmusic settings") if title is None else title
    return (
        f'{box_open("funmusic-config", _BOX)}<div style="font-weight: 600;">'
        f"{_e(title)}</div>{rows_html((k, str(v)) for k, v in settings.items())}</div>"
    )


def settings_text(settings: Mapping[str, Any], *, title: str | None = None) -> str:
    title = _("funmusic settings") if title is None else title
    width = max((display_width(k) for k in settings), default=0)
    return "\n".join([title] + [f"  {pad(k, width)}  {v}" for k, v in settings.items()])


def stopped_text(job: Job, *, base_dir: str | os.PathLike[str] | None = None) -> str:
    """One human line about a song the user asked to stop: "Stopped at 23 s: partial song
    saved to funmusic-output/….partial.mp3" (the path relative to ``base_dir``, default the
    working directory). A song that ended otherwise meanwhile says so."""
    if job.state == "done":
        return _("finished before it could be stopped")
    if job.state == "failed" and job.error is not None:
        return _("failed before it could be stopped: {error}").format(
            error=error_parts(job.error)[1]
        )
    if job.state != "cancelled":
        return _("stopping ({state})").format(state=state_text(job.state))
    at = _(" at {seconds:.0f} s").format(seconds=job.seconds) if job.seconds else ""
    if job.partial_path is None:
        if getattr(job.error, "partial_audio", b""):
            return _("Stopped{at}: the partial song could not be saved").format(at=at)
        return _("Stopped before any audio arrived")
    where = shown_path(job.partial_path, base_dir)
    return _("Stopped{at}: partial song saved to {where}").format(at=at, where=where)


def configured_embed_limit() -> int:
    """``FunMusicMagics.embed_limit`` when the extension is loaded in this IPython (so
    ``%config`` reaches a ``Song`` shown on its own too), else ``DEFAULT_EMBED_LIMIT``."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return DEFAULT_EMBED_LIMIT
    shell = get_ipython()
    magics = shell.magics_manager.registry.get("FunMusicMagics") if shell is not None else None
    limit = getattr(magics, "embed_limit", None)
    return limit if isinstance(limit, int) else DEFAULT_EMBED_LIMIT
