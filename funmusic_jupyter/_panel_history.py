"""The panel's history: this session's songs, then the ones already in the output directory.

Loaded from the library (``_library.scan``) when the panel is made, so a restarted kernel still
lists every song saved before; a song from disk is read (audio and all) only when Show is
pressed. The widgets here only ever get traits set, never created on the worker thread, so the
history may be updated from the worker's listener.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import ipywidgets as widgets  # type: ignore[import-untyped]

from ._html import escape as _e
from ._i18n import _, clip, current_language, speaking
from ._library import LibraryEntry, load_song, scan
from ._models import Song
from ._validation import first_line

__all__ = ["PanelHistory", "song_title"]

_TITLE_LENGTH = 60
_OK_STYLE = "opacity: 0.8;"


def _short(text: str, length: int = _TITLE_LENGTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else clip(text, length - 1) + "…"


def song_title(song: Song) -> str:
    """A history title: the first sung line for lyrics, the prompt for a prompt."""
    if song.mode == "lyrics":
        line = song.first_line() or first_line(song.request.text)
    else:
        line = song.request.text
    return _short(line) or _("Song")


class PanelHistory:
    """The Select of songs, its Show button and the saved-to line.

    ``render(song)`` draws a card; ``show(html)`` puts it in the panel's result area. Made
    inside the panel's ``use_language``: it keeps that language for its own callbacks.
    """

    def __init__(
        self,
        *,
        output_dir: Path,
        render: Callable[[Song], str],
        show: Callable[[str], None],
    ) -> None:
        self._language = current_language()
        self._render = render
        self._show = show
        self._lock = threading.RLock()
        self._songs: list[Song] = []  # this session's, oldest first; shown newest first
        self._cards: dict[int, str] = {}  # each session song's card, built once
        # Finished songs already on disk when the panel was made, newest first.
        self._saved: list[LibraryEntry] = [e for e in scan(output_dir) if not e.partial]
        self.select = widgets.Select(options=[], rows=4, layout=widgets.Layout(width="100%"))
        self.show_button = widgets.Button(
            description=_("Show"),
            icon="play",
            disabled=True,
            tooltip=_("Put the selected song back in the result area"),
        )
        self.saved_label = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.box = widgets.VBox(
            [
                widgets.HTML(
                    _("<b>Songs</b> (this session's, then the output directory's)")
                ),
                self.select,
                widgets.HBox([self.show_button, self.saved_label]),
            ],
            layout=widgets.Layout(display="none"),
        )
        self.show_button.on_click(self._on_show)
        self.select.observe(self._on_select, names="value")
        self.refresh(select_newest=False)

    @property
    def songs(self) -> tuple[Song, ...]:
        """This session's songs, newest first."""
        with self._lock:
            return tuple(reversed(self._songs))

    @property
    def saved(self) -> tuple[LibraryEntry, ...]:
        """Songs that were already in the output directory, newest first."""
        with self._lock:
            return tuple(self._saved)

    def add(self, song: Song, card: str) -> None:
        """A song this session made (or reused): first in the list, selected."""
        with self._lock:
            self._cards[id(song)] = card
            self._songs.append(song)
            # A reused song is already listed from disk: list it once.
            self._saved = [e for e in self._saved if e.path != song.saved_path]
            self.refresh(select_newest=True)

    @speaking("_language")
    def refresh(self, *, select_newest: bool) -> None:
        with self._lock:
            count = len(self._songs)
            options: list[tuple[str, tuple[str, int]]] = []
            for index in range(count - 1, -1, -1):
                song = self._songs[index]
                sim = _(", simulated") if song.simulated else ""
                label = f"#{index + 1} {song_title(song)} · {song.duration:g} s {song.format}{sim}"
                options.append((label, ("session", index)))
            for index, entry in enumerate(self._saved):
                sim = _(", simulated") if entry.simulated else ""
                length = f"{entry.duration:g} s " if entry.duration is not None else ""
                when = f"{entry.when.astimezone():%Y-%m-%d %H:%M}"
                label = f"{when} {_short(entry.title)} · {length}{entry.format}{sim}"
                options.append((label, ("saved", index)))
            self.select.options = options
            if select_newest and count:
                self.select.value = ("session", count - 1)
            self.show_button.disabled = not options
            self.box.layout.display = "flex" if options else "none"
            self._on_select()

    def _selected(self) -> tuple[Song | None, LibraryEntry | None]:
        value = self.select.value
        with self._lock:
            if not isinstance(value, tuple):
                return None, None
            kind, index = value
            if kind == "session" and index < len(self._songs):
                return self._songs[index], None
            if kind == "saved" and index < len(self._saved):
                return None, self._saved[index]
            return None, None

    @speaking("_language")
    def _on_select(self, change: object = None) -> None:
        song, entry = self._selected()
        path = song.saved_path if song is not None else entry.path if entry is not None else None
        if song is None and entry is None:
            self.saved_label.value = ""
            return
        if path:
            saved = _("saved to {path}").format(path=os.fspath(path))
        else:
            saved = _("saved to {path}").format(path=_("not saved"))
        self.saved_label.value = f'<span style="{_OK_STYLE}">{_e(saved)}</span>'

    @speaking("_language")
    def _on_show(self, button: object = None) -> None:
        """Put the selected song's card (player, lyrics, details) back in the result area."""
        song, entry = self._selected()
        if song is not None:
            self._show(self._cards.get(id(song)) or self._render(song))
        elif entry is not None:
            loaded = load_song(entry)  # the audio is read only now
            if loaded is None:
                message = _("Cannot read {name} any more.").format(name=entry.path.name)
                self._show(f"<div>{_e(message)}</div>")
            else:
                self._show(self._render(loaded))
