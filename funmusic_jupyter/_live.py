"""``LivePlayer``: hear a song while it streams (an anywidget; the front end is ``static/``).

The worker thread calls ``feed(data)`` for each audio chunk and ``finish()`` at the end; the
browser plays what it has (Media Source Extensions for MP3 where the browser has them, Web Audio
otherwise) and hands playback over to the song's final ``<audio>`` card when it appears.

Message protocol (``widget.send`` content, JSON, with binary ``buffers``; never base64, never a
growing synced trait):

    Python -> browser
        {"type": "chunk", "offset": n}  + buffers=[bytes]   bytes n .. n+len of the file
        {"type": "end", "size": total}                      the file is complete at ``total``
    browser -> Python
        {"type": "need", "offset": n}     send everything from byte n again (a late or reloaded
                                          view, or a gap: messages sent before the front-end
                                          model existed are lost)
        {"type": "handed-over", "position": s | null, "playing": bool}
                                          playback moved to the card's <audio> (null: nothing
                                          was playing or had played)

The browser appends a chunk only when its offset is exactly the number of bytes it has, drops
duplicates, and asks with ``need`` on a gap: so delivery is reliable whatever was lost.

Thread safety: ``feed``, ``finish`` and resends take one lock, so the browser sees chunks in
offset order and ``end`` after the last one. ``widget.send`` and trait sets are safe from any
thread (IOPub is); nothing here prints or displays.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import anywidget
import traitlets

from ._i18n import _

__all__ = ["LivePlayer", "RESEND_PIECE", "STATUSES", "live_player_esm", "player_labels"]

STATUSES = ("waiting", "streaming", "complete", "stopped", "failed")
FORMATS = ("mp3", "wav")
# Resends go out in pieces of this size: one comm message per piece.
RESEND_PIECE = 256 * 1024

# The front end's ES modules, in dependency order (live_player.js last: it has the default
# export). anywidget imports ``_esm`` from a blob: URL, where relative imports cannot resolve,
# so they are joined into one module here (see ``live_player_esm``).
_ESM_PARTS = (
    "mp3_frames.js",
    "wav_pcm.js",
    "waveform.js",
    "engines.js",
    "player_view.js",
    "live_player.js",
)
_IMPORT_LINE = re.compile(r"^import\s+\{[^}]*\}\s+from\s+\"\./[\w.]+\";\s*$", re.MULTILINE)
_EXPORT_WORD = re.compile(r"^export\s+(?=(?:async\s+)?(?:function|class|const)\b)", re.MULTILINE)


def _static(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def player_labels() -> dict[str, str]:
    """Every text the player shows, in the current language, for its ``labels`` trait.

    The front end fills ``{placeholders}`` itself (``{error}``, ``{position}``, ``{received}``,
    ``{total}``) and falls back to its own English copy of each text for a missing key.
    """
    return {
        "play": _("Play"),
        "pause": _("Pause"),
        "download": _("Download"),
        "seek": _("Seek within the received audio"),
        "time": _("{position} / {total}"),
        "timeReceived": _("{position} / {received} received"),
        "valueText": _("{position} of {received} received"),
        "unsupported": _(
            "Live playback is not available in this browser; the player appears when the song "
            "is done."
        ),
        "handedOver": _("Continues in the song's player."),
        "liveFailed": _("Live playback failed: {error}."),
        "cannotPlay": _("Cannot play live: {error}."),
        "buffering": _("Buffering…"),
        "stoppedEarly": _("Stopped before any audio arrived."),
        "failedEarly": _("Failed before any audio arrived."),
        "waiting": _("Waiting for the first audio…"),
        "ready": _("Ready"),
        "pressPlay": _("Streaming: press Play"),
        "playing": _("Playing"),
        "playingStreaming": _("Playing while it streams"),
        "ended": _("Played to the end"),
        "autoplayBlocked": _("The browser blocked autoplay: press Play."),
        "playRefused": _("The browser refused to play: press Play again."),
        "couldNotPlay": _("Could not play: {error}"),
    }


def live_player_esm() -> str:
    """The player's ES modules joined into one: sibling imports removed, helpers' ``export``
    keywords dropped, ``live_player.js``'s default export kept. No bundler, no build step: each
    file in ``static/`` stays a plain ES module that a browser can import on its own."""
    parts = []
    for name in _ESM_PARTS:
        text = _IMPORT_LINE.sub("", _static(name))
        if name != _ESM_PARTS[-1]:
            text = _EXPORT_WORD.sub("", text)
        parts.append(f"// ---- {name}\n{text}")
    return "\n".join(parts)


class LivePlayer(anywidget.AnyWidget):
    """A player that plays a song while it streams; see the module docstring."""

    _esm = live_player_esm()
    _css = _static("live_player.css")

    format = traitlets.Unicode("mp3").tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    autoplay = traitlets.Bool(False).tag(sync=True)
    handoff_id = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("waiting").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    # "auto": MP3 through Media Source Extensions where the browser has them, else Web Audio;
    # "webaudio": always Web Audio (what browsers without audio/mpeg MSE, e.g. Firefox, use).
    engine = traitlets.Enum(("auto", "webaudio"), "auto").tag(sync=True)
    # Every text the player shows, in the language of whoever made the player (``player_labels``):
    # the front end has no gettext, so Python sends the words.
    labels = traitlets.Dict(value_trait=traitlets.Unicode()).tag(sync=True)
    # Keys the browser's per-model state (anywidget gives initialize and render different
    # proxies of one model, so they cannot share state by identity).
    _key = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        *,
        format: str = "mp3",
        title: str = "",
        autoplay: bool = False,
        handoff_id: str = "",
        **kwargs: Any,
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}; got {format!r}")
        super().__init__(
            format=format,
            title=title,
            autoplay=autoplay,
            handoff_id=handoff_id or uuid.uuid4().hex,
            _key=uuid.uuid4().hex,
            labels=kwargs.pop("labels", None) or player_labels(),
            **kwargs,
        )
        self._lock = threading.Lock()
        self._data = bytearray()
        self._size: int | None = None  # set by finish()
        self._handed_over = threading.Event()
        self._handover: dict[str, Any] | None = None
        self._callbacks: list[Callable[[dict[str, Any]], None]] = []
        self.on_msg(self._on_front_end_msg)

    def __repr__(self) -> str:
        return f"FunMusic live player ({self.format})"

    @traitlets.validate("status")
    def _valid_status(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        if value not in STATUSES:
            raise traitlets.TraitError(f"status must be one of {STATUSES}; got {value!r}")
        return value

    # -- called by the worker thread ------------------------------------------------------------
    @property
    def received(self) -> int:
        """Bytes fed so far."""
        return len(self._data)

    def feed(self, data: bytes) -> None:
        """Append ``data`` to the song and send it to the browser (any thread)."""
        if not data:
            return
        with self._lock:
            if self._size is not None:
                raise RuntimeError("feed() after finish(): the song is already complete")
            offset = len(self._data)
            self._data += data
            if self.status == "waiting":
                self.status = "streaming"
            self.send({"type": "chunk", "offset": offset}, buffers=[bytes(data)])

    def finish(self, status: str = "complete", message: str = "") -> None:
        """The song is over (``complete``, ``stopped`` or ``failed``): tell the browser."""
        if status not in STATUSES[2:]:
            raise ValueError(f"finish() status must be one of {STATUSES[2:]}; got {status!r}")
        with self._lock:
            self._size = len(self._data)
            self.message = message
            self.status = status
            self.send({"type": "end", "size": self._size})

    # -- hand-over ----------------------------------------------------------------------------
    def on_handed_over(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback(report)`` (on the kernel's comm thread) when the browser says it
        handed playback over to the card; at once if it already did."""
        with self._lock:
            report = self._handover
            if report is None:
                self._callbacks.append(callback)
        if report is not None:
            callback(report)

    def wait_handed_over(self, timeout: float | None = None) -> bool:
        """Block until the browser reports the hand-over (True) or ``timeout`` passes (False).

        The report arrives on the kernel's shell thread: wait from another thread (the
        worker), never from a cell."""
        return self._handed_over.wait(timeout)

    @property
    def handover(self) -> dict[str, Any] | None:
        """The first ``handed-over`` report: ``{"position": s | None, "playing": bool}``."""
        return self._handover

    # -- from the browser ---------------------------------------------------------------------
    def _on_front_end_msg(self, _widget: Any, content: Any, buffers: Sequence[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "need":
            offset = content.get("offset")
            if isinstance(offset, int) and offset >= 0:
                self._resend(offset)
        elif kind == "handed-over":
            self._record_handover(content)

    def _resend(self, offset: int) -> None:
        with self._lock:
            end = len(self._data)
            for start in range(offset, end, RESEND_PIECE):
                piece = bytes(self._data[start : min(end, start + RESEND_PIECE)])
                self.send({"type": "chunk", "offset": start}, buffers=[piece])
            if self._size is not None:
                self.send({"type": "end", "size": self._size})

    def _record_handover(self, content: dict[str, Any]) -> None:
        position = content.get("position")
        report = {
            "position": float(position) if isinstance(position, (int, float)) else None,
            "playing": bool(content.get("playing")),
        }
        with self._lock:
            if self._handover is not None:  # another view or tab reported first
                return
            self._handover = report
            callbacks, self._callbacks = self._callbacks, []
        self._handed_over.set()
        for callback in callbacks:
            callback(report)
