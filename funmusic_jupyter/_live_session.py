"""One song's live player, from its first audio chunk to the hand-over to the song's card.

Shared by ``%%funmusic`` and ``FunMusicPanel``, so both streams sound and end the same way.

Why a hand-over at all: a widget view saved in a notebook does not render once its kernel is
gone ("model not found"), so the live player (``_live.LivePlayer``, an anywidget) can only be a
transient part of the output; the song's lasting record is the plain-HTML card of ``_render``.
When the song ends, in this order:

1. the caller shows the card, whose ``<audio>`` carries ``data-funmusic-handoff="<id>"``;
2. ``LiveSession.complete()`` tells the player the stream ended;
3. the player (in the browser) moves playback to the card's ``<audio>`` at the same position,
   without a restart or a gap, and reports ``handed-over``;
4. only then is the player removed (``remove``), and its widget closed. If no browser answers
   (a front end without widgets, nbclient, a closed tab) it is removed after
   ``HANDOFF_TIMEOUT`` seconds all the same, so the saved notebook never keeps a dead widget.

Everything here runs on the worker thread (``feed``, ``complete``) or the kernel's shell
thread (the player's messages); both only send widget messages and update display handles,
which are safe from any thread. Nothing prints.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._validation import SongRequest, first_line

if TYPE_CHECKING:
    from ._live import LivePlayer
    from ._worker import Job

__all__ = ["HANDOFF_TIMEOUT", "LiveSession"]

#: Seconds to wait for the browser's ``handed-over`` before removing the player anyway.
HANDOFF_TIMEOUT = 10.0


def _status_of(job: Job) -> str:
    if job.song is not None:
        return "complete"
    return "stopped" if job.state == "cancelled" else "failed"


class LiveSession:
    """The live player of one streamed song, and its removal once the card has taken over."""

    def __init__(self, request: SongRequest, *, autoplay: bool = False) -> None:
        # Imported here: anywidget (and its front-end plumbing) only when a song streams live.
        from ._live import LivePlayer

        self.handoff_id = f"funmusic-{secrets.token_hex(8)}"
        self.player: LivePlayer = LivePlayer(
            format=request.format,
            title=first_line(request.text),
            autoplay=autoplay,
            handoff_id=self.handoff_id,
        )
        self._removed = threading.Event()
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        """The job's audio listener: every byte, in order, straight to the browser."""
        self.player.feed(data)

    @property
    def removed(self) -> bool:
        return self._removed.is_set()

    def complete(
        self,
        job: Job,
        remove: Callable[[], None],
        *,
        call_later: Callable[[float, Callable[[], None]], None],
        timeout: float = HANDOFF_TIMEOUT,
    ) -> None:
        """The song ended and its card is shown: end the stream, hand over, then ``remove``.

        ``call_later(delay, fn)`` is the worker's timer (``Worker.call_later``)."""

        def once(*_: object) -> None:
            with self._lock:
                if self._removed.is_set():
                    return
                self._removed.set()
            try:
                remove()
            finally:
                self.player.close()

        self.player.on_handed_over(once)
        call_later(timeout, once)
        self.player.finish(_status_of(job))
