"""The song library: the output directory, read back from its sidecars.

Every song is saved with a JSON sidecar before it is shown (``_storage``), so the directory is
already a complete record. There is no separate index to go stale: the sidecars *are* the index,
read again on every call (a few hundred small JSON files take milliseconds).

Reuse (``find_reusable``): a song's ``key`` (``song_key``) is a hash of everything that decides
it: model, endpoint, mode, text, gender, format, extra input fields and the backend (``api`` or
``simulator``). Not the streaming choice: streamed or not, the service makes the same kind of
song. The key is written into the sidecar; a later request with the same key is answered from
disk, with nothing sent and nothing billed. It reads the directory, not memory, so it survives
kernel restarts. Partial songs are never reused.

A sidecar that cannot be read (corrupt JSON, written by an older version without the fields
the table needs, or whose audio was deleted by hand) is skipped with a ``FunMusicWarning``,
never an error: one bad file must not hide the others.

The magic, the panel, the Python API, the batch API and the command line all call
``find_reusable`` and ``reuse_note`` here, so they agree on what counts as the same song.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._config import Settings
from ._errors import FunMusicWarning
from ._html import DASH, format_money, link_path, local_time, shown_path
from ._html import escape as _e
from ._i18n import N_, _, clip, display_width, displaying, ngettext, pad, use_language
from ._limits import field_name, gender_text
from ._models import Song
from ._spending import CostReport, cost_report
from ._storage import DEFAULT_OUTPUT_DIR
from ._validation import SongRequest, build_request, first_line

__all__ = [
    "KEY_VERSION",
    "Library",
    "LibraryEntry",
    "find_reusable",
    "library",
    "load_song",
    "reuse_note",
    "scan",
    "song_key",
]

#: Bumped if what goes into the key ever changes, so old keys simply stop matching.
KEY_VERSION = 1


def song_key(request: SongRequest, settings: Settings) -> str:
    """A stable hash of everything that decides a song (see the module docstring)."""
    decided = {
        "v": KEY_VERSION,
        "backend": settings.backend,
        "endpoint": settings.endpoint,
        "model": request.model,
        "mode": request.mode,
        "text": request.text,
        "gender": request.gender,
        "format": request.format,
        "extra_input": dict(request.extra_input),
    }
    if request.instrumental:  # only when set, so the keys of every sung song stay as they were
        decided["instrumental"] = True
    # sort_keys + fixed separators: the same request gives the same bytes in every process.
    blob = json.dumps(decided, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LibraryEntry:
    """One song (or partial song) on disk, as its sidecar describes it."""

    path: Path  # the audio file
    sidecar: Path
    title: str
    when: datetime  # when it was saved (the sidecar's saved_at, else the file's time)
    model: str
    mode: str
    gender: str
    format: str
    duration: float | None  # billed seconds; unknown for a partial song
    simulated: bool
    partial: bool
    key: str | None  # None for songs saved by versions before reuse existed
    request_id: str | None
    instrumental: bool = False  # no vocals: its gender was never sung

    def cost(self, price_per_second: float) -> float | None:
        """What the song cost: 0 on the simulator; unknown (None) for a partial song, whose
        billed length the service never said."""
        if self.simulated:
            return 0.0
        if self.duration is None:
            return None
        return round(self.duration * price_per_second, 6)


class _Unreadable(Exception):
    """Why a sidecar is skipped (the text of the warning)."""


def _read_sidecar(sidecar: Path) -> dict[str, Any]:
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _Unreadable(
            _("cannot read it as JSON ({type})").format(type=type(exc).__name__)
        ) from None
    if not isinstance(meta, dict):
        raise _Unreadable(_("it is not a JSON object"))
    return meta


def _entry(sidecar: Path, meta: dict[str, Any]) -> LibraryEntry:
    request = meta.get("request")
    fmt = meta.get("format")
    if not isinstance(request, dict) or not isinstance(fmt, str) or "complete" not in meta:
        raise _Unreadable(
            _("it has no 'request', 'format' or 'complete' (not a song's sidecar?)")
        )
    mode = str(request.get("mode") or meta.get("mode") or "")
    audio = sidecar.with_suffix(f".{fmt}")
    if not audio.is_file():
        raise _Unreadable(_("its audio {name} is missing").format(name=audio.name))
    saved_at = meta.get("saved_at")
    try:
        when = datetime.fromisoformat(saved_at) if isinstance(saved_at, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        when = datetime.fromtimestamp(audio.stat().st_mtime, tz=timezone.utc)
    duration = meta.get("duration")
    text = str(request.get(mode) or "")
    lyrics = meta.get("lyrics")
    line = first_line(lyrics) if mode == "lyrics" and isinstance(lyrics, str) else ""
    title = " ".join((line or first_line(text) or audio.stem).split())
    key = meta.get("key")
    return LibraryEntry(
        path=audio.resolve(),
        sidecar=sidecar.resolve(),
        title=title if len(title) <= 60 else clip(title, 59) + "…",
        when=when,
        model=str(meta.get("model") or request.get("model") or ""),
        mode=mode,
        gender=str(meta.get("gender") or request.get("gender") or ""),
        format=fmt,
        duration=float(duration) if isinstance(duration, (int, float)) else None,
        simulated=bool(meta.get("simulated")),
        partial=meta.get("complete") is not True,
        key=key if isinstance(key, str) else None,
        request_id=meta.get("request_id") if isinstance(meta.get("request_id"), str) else None,
        instrumental=request.get("instrumental") is True,
    )


def scan(
    directory: str | os.PathLike[str] | None = None, *, warn: bool = True
) -> list[LibraryEntry]:
    """Every song in ``directory`` (default ``./funmusic-output``), newest first.

    Unreadable sidecars are skipped, with a ``FunMusicWarning`` each when ``warn``.
    """
    folder = Path(directory if directory else DEFAULT_OUTPUT_DIR).expanduser()
    if not folder.is_dir():
        return []
    entries = []
    for sidecar in sorted(folder.glob("*.json")):
        if sidecar.name.startswith("."):
            continue  # a temporary file of an atomic write in progress
        try:
            entries.append(_entry(sidecar, _read_sidecar(sidecar)))
        except _Unreadable as why:
            if warn:
                warnings.warn(
                    _("funmusic library: skipped {name}: {why}").format(
                        name=sidecar.name, why=why
                    ),
                    FunMusicWarning,
                    stacklevel=2,
                )
    entries.sort(key=lambda e: (e.when, e.path.name), reverse=True)
    return entries


def _request_of(meta: dict[str, Any]) -> SongRequest:
    """The request a sidecar describes, validated again (ValidationError if today's rules
    refuse it)."""
    described = meta["request"]
    mode = described["mode"]
    extra = described.get("extra_input") or {}
    return build_request(
        text=described[mode],
        mode=mode,
        gender=described["gender"] or None,  # "" for fun-music-preview, which takes none
        format=described["format"],
        model=described["model"],
        stream=bool(described.get("stream")),
        instrumental=bool(described.get("instrumental")),
        **extra,
    )


def load_song(entry: LibraryEntry, request: SongRequest | None = None) -> Song | None:
    """The finished song ``entry`` describes, audio and all; None if it cannot be read.
    ``request`` defaults to the one in the sidecar."""
    if entry.partial:
        return None
    try:
        meta = _read_sidecar(entry.sidecar)
        if request is None:
            request = _request_of(meta)
        audio = entry.path.read_bytes()
        expires = meta.get("expires_at")
        song = Song(
            audio=audio,
            format=entry.format,
            lyrics=str(meta.get("lyrics") or ""),
            sample_rate=int(meta["sample_rate"]),
            channels=int(meta["channels"]),
            duration=float(meta["duration"]),
            request_id=entry.request_id,
            audio_id=meta.get("audio_id"),
            url=meta.get("url"),
            expires_at=datetime.fromisoformat(expires) if isinstance(expires, str) else None,
            time_to_first_audio=meta.get("time_to_first_audio"),
            total_time=float(meta.get("total_time") or 0.0),
            request=request,
            simulated=entry.simulated,
            saved_path=entry.path,
            key=entry.key,
            made_at=entry.when,
        )
    except (_Unreadable, OSError, KeyError, TypeError, ValueError):  # ValidationError too
        return None
    return song


def find_reusable(
    request: SongRequest, settings: Settings, output_dir: str | os.PathLike[str] | None = None
) -> Song | None:
    """The newest finished song in ``output_dir`` made by this very request, or None.

    Sends nothing. The one reuse check of every front end: call it before sending, and show
    the song it returns with ``reuse_note(song)`` instead of making a new one.
    """
    key = song_key(request, settings)
    for entry in scan(output_dir, warn=False):
        if entry.key == key and not entry.partial:
            song = load_song(entry, request)
            if song is not None:
                return song
    return None


def reuse_note(song: Song, *, fresh: str = "--fresh") -> str:
    """ "reused from <file>, made <when>, not billed; `--fresh` makes a new take".

    ``fresh`` names the way to ask for a new take in the caller's own terms
    (``reuse=False`` in Python, ``--fresh`` on the magic and the command line)."""
    where = shown_path(song.saved_path) if song.saved_path else _("the library")
    made = local_time(song.made_at)
    return _("reused from {where}, made {made}, not billed; {fresh} makes a new take").format(
        where=where, made=made, fresh=fresh
    )


# -- the library as a table ----------------------------------------------------------------------
_COLUMNS = ("when", "title", "mode", "gender", "format", "duration", "cost", "backend", "file")
_HEADINGS = {
    "when": N_("when"),
    "title": N_("title"),
    "mode": N_("mode"),
    "gender": N_("gender"),
    "format": N_("format"),
    "duration": N_("duration"),
    "cost": N_("cost"),
    "backend": N_("backend"),
    "file": N_("file"),
    "play": N_("play"),
}


class Library:
    """The songs in one output directory, newest first (``fm.library()``).

    Iterate it for ``LibraryEntry`` objects; ``cost()`` adds up what they cost. In a notebook it
    shows as a table with a small player (loaded only when played) and a link for every song.
    """

    def __init__(
        self,
        directory: Path,
        entries: list[LibraryEntry],
        *,
        price_per_second: float = 0.002,
        currency: str = "CNY",
    ) -> None:
        self.directory = directory
        self.entries = entries
        self.price_per_second = price_per_second
        self.currency = currency

    def __iter__(self) -> Iterator[LibraryEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> LibraryEntry:
        return self.entries[index]

    def head(self, n: int) -> Library:
        """The ``n`` newest songs."""
        return Library(
            self.directory,
            self.entries[: max(n, 0)],
            price_per_second=self.price_per_second,
            currency=self.currency,
        )

    def cost(self, *, session: bool = True) -> CostReport:
        """Billed seconds and cost, per day and in total, real service apart from the simulator
        (a ``CostReport``, which shows as a table; ``session=False`` leaves out this process's
        running total)."""
        return cost_report(
            self.entries, price_per_second=self.price_per_second, currency=self.currency,
            session=session,
        )

    def _row(self, entry: LibraryEntry) -> dict[str, str]:
        cost = entry.cost(self.price_per_second)
        return {
            "when": f"{entry.when.astimezone():%Y-%m-%d %H:%M}",
            "title": entry.title,
            "mode": field_name(entry.mode) if entry.mode else "",
            # The voice column: "instrumental" (no voice), or DASH for fun-music-preview's own.
            "gender": (
                _("instrumental") if entry.instrumental else gender_text(entry.gender) or DASH
            ),
            "format": entry.format,
            "duration": DASH if entry.duration is None else f"{entry.duration:g} s",
            "cost": DASH if cost is None else format_money(cost, self.currency),
            "backend": _("simulator") if entry.simulated else "Fun-Music",
            "file": shown_path(entry.path) + (_(" (partial)") if entry.partial else ""),
        }

    def _summary(self) -> str:
        n = len(self.entries)
        partial = sum(e.partial for e in self.entries)
        extra = _(", {count} partial").format(count=partial) if partial else ""
        return ngettext(
            "{count} song in {folder}{partial}", "{count} songs in {folder}{partial}", n
        ).format(count=n, folder=shown_path(self.directory), partial=extra)

    def _empty(self) -> str:
        return _("No songs yet in {folder}.").format(folder=shown_path(self.directory))

    def __repr__(self) -> str:
        # The text/plain nbval compares: English whatever the language (see _i18n).
        with use_language("en"):
            return self.text()

    def text(self) -> str:
        """The table as text, in the current language (``repr`` is this, in English)."""
        if not self.entries:
            return self._empty()
        lines = [self._summary()]
        rows = [self._row(entry) for entry in self.entries]
        voice = max(6, *(display_width(r["gender"]) for r in rows))  # "instrumental" is wider
        for r in rows:
            # pad() by display width: mode, voice and backend are Chinese words in Chinese.
            lines.append(
                f"{r['when']}  {pad(r['mode'], 6)} {pad(r['gender'], voice)} {r['format']:<3} "
                f"{r['duration']:>8} {r['cost']:>12}  {pad(r['backend'], 9)}  "
                f"{r['title']!r}  {r['file']}"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        with displaying():
            return self._html()

    def _html(self) -> str:
        from ._html import BOX, TABLE, TD, TH, box_open

        if not self.entries:
            return f'{box_open("funmusic-library", BOX)}{_e(self._empty())}</div>'
        head = "".join(
            f'<th style="{TH} border-top: none;">{_e(_(_HEADINGS[c]))}</th>'
            for c in (*_COLUMNS, "play")
        )
        rows = []
        for entry in self.entries:
            r = self._row(entry)
            href = _e(link_path(entry.path))
            cells = [f'<td style="{TD}">{_e(r[c])}</td>' for c in _COLUMNS[:-1]]
            cells.append(
                f'<td style="{TD}"><a href="{href}" class="funmusic-file">{_e(r["file"])}</a></td>'
            )
            # preload="none": the table holds only a relative link; the browser fetches the file
            # from the Jupyter server when Play is pressed, so the notebook stays small. No script:
            # untrusted notebooks strip scripts, and a plain <audio src> survives the sanitizer.
            cells.append(
                f'<td style="{TD}"><audio controls preload="none" src="{href}" '
                'style="height: 28px; width: 180px;"></audio></td>'
            )
            rows.append("<tr>" + "".join(cells) + "</tr>")
        return (
            f'{box_open("funmusic-library", BOX)}<div style="font-weight: 600;">'
            f'{_e(self._summary())}</div><table style="{TABLE}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )


def library(
    path: str | os.PathLike[str] | None = None,
    *,
    price_per_second: float = 0.002,
    currency: str = "CNY",
) -> Library:
    """The songs saved in ``path`` (default ``./funmusic-output``), newest first.

    Unreadable sidecars and songs whose audio was deleted are skipped with a warning.
    """
    folder = Path(path if path else DEFAULT_OUTPUT_DIR).expanduser()
    return Library(
        folder.resolve(), scan(folder), price_per_second=price_per_second, currency=currency
    )
