"""``Job``: one song being made in the background, and how its progress reaches listeners.

A job holds the song's progress (chunks, bytes, seconds of audio, elapsed time), its outcome
(``song`` or ``error``) and where it was saved. Every song, and every partial one, is written to
the output directory *before* listeners hear that the job finished. ``cancel()`` cancels the
job's anyio cancel scope: the client's stream closes its HTTP response, and what had arrived is
saved as a partial file. The ``Worker`` (``_worker``) runs jobs on its thread; listeners run
there too and never print.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ._errors import GenerationCancelled
from ._i18n import Language, _
from ._models import AudioChunk, Song
from ._spending import record
from ._storage import save_partial, save_song
from ._validation import SongRequest

if TYPE_CHECKING:
    from ._worker import Worker

__all__ = ["AudioListener", "FINAL_STATES", "Job", "Listener"]

FINAL_STATES = frozenset({"done", "failed", "cancelled"})

log = logging.getLogger("funmusic_jupyter._worker")  # one logger for the background work

#: ``listener(job, event)`` with event "started", "progress" (a chunk arrived), "tick"
#: (time passed) or "finished" (the job is final and its files are written).
Listener = Callable[["Job", str], None]
#: ``audio_listener(data)``: every audio byte, in order, as it arrives (never throttled: a live
#: player needs all of it, while a progress line only needs the latest count).
AudioListener = Callable[[bytes], None]


class _Throttled:
    """Calls ``fn`` at most every ``min_interval`` seconds, but always for "finished"."""

    def __init__(self, fn: Listener, min_interval: float) -> None:
        self.fn = fn
        self.min_interval = min_interval
        self.last = float("-inf")

    def __call__(self, job: Job, event: str) -> None:
        now = time.monotonic()
        if event != "finished" and now - self.last < self.min_interval:
            return
        self.last = now
        try:
            self.fn(job, event)
        except Exception:
            # A broken display must not kill the song; the worker has nowhere to print.
            log.debug("funmusic listener failed on %s", event, exc_info=True)


def _call_quietly(fn: AudioListener, data: bytes) -> None:
    try:
        fn(data)
    except Exception:
        # As with listeners: a broken player must not kill the song, and nothing may print.
        log.debug("funmusic audio listener failed", exc_info=True)


class Job:
    """One song being made in the background. Read its attributes from any thread."""

    def __init__(
        self,
        *,
        worker: Worker,
        job_id: str,
        request: SongRequest,
        client_options: Mapping[str, Any],
        output_dir: str | Path | None,
        headers: Mapping[str, str] | None,
        language: Language = "en",
    ) -> None:
        self.id = job_id
        self.request = request
        # The language of whoever submitted the job: its messages (a stopped song's reason, a
        # broken stream's) are written in it on the worker thread (see _i18n).
        self.language: Language = language
        # Private: it may hold an api_key= given to the panel, which no repr or casual
        # ``job.<tab>`` in a notebook should show.
        self._client_options = dict(client_options)
        self.output_dir = output_dir
        self.headers = dict(headers) if headers else None
        self.state = "queued"
        self.created_at = time.time()
        self.chunks = 0
        self.bytes_received = 0
        self.seconds: float | None = 0.0
        self.time_to_first_audio: float | None = None
        self.simulated: bool | None = None
        self.song: Song | None = None
        self.error: BaseException | None = None
        self.saved_path: Path | None = None
        self.partial_path: Path | None = None
        self.save_error: BaseException | None = None
        self._worker = worker
        self._t0: float | None = None
        self._t1: float | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._listeners: list[_Throttled] = []
        self._audio_listeners: list[AudioListener] = []
        self._final = False
        self._scope: anyio.CancelScope | None = None
        self._cancel_requested = False
        self._stream: Any = None

    def __repr__(self) -> str:
        return f"<funmusic Job {self.id} {self.state} {self.request.mode} {self.request.format}>"

    # -- reading --------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def running(self) -> bool:
        return self.state not in FINAL_STATES

    @property
    def elapsed(self) -> float:
        if self._t0 is None:
            return 0.0
        return (self._t1 if self._t1 is not None else time.monotonic()) - self._t0

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is final (files written, listeners told); False on timeout."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Song:
        """The song, or the job's error raised."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} is still {self.state} after {timeout} s")
        if self.song is not None:
            return self.song
        assert self.error is not None
        raise self.error

    # -- control --------------------------------------------------------------------------
    def cancel(self) -> bool:
        """Stop the song: the HTTP stream closes, partial audio is saved. False if already final."""
        if self._done.is_set() or self._final:
            return False
        # Set the flag before reading the scope; the loop sets the scope before reading the
        # flag. Whatever the interleaving, one of the two sides cancels.
        self._cancel_requested = True
        scope = self._scope
        if scope is not None:
            self._worker.call_in_loop(scope.cancel)
        return True

    def add_listener(self, fn: Listener, *, min_interval: float = 0.0) -> None:
        """Call ``fn(job, event)`` on the worker thread, at most every ``min_interval`` seconds
        (the "finished" event always comes). A job already final calls ``fn`` at once."""
        listener = _Throttled(fn, min_interval)
        with self._lock:
            if not self._final:
                self._listeners.append(listener)
                return
        listener(self, "finished")

    def add_audio_listener(self, fn: AudioListener) -> None:
        """Call ``fn(data)`` on the worker thread with every audio byte, in order, as it
        arrives. Attached late, it first gets everything received so far, in one piece."""
        with self._lock:
            if self._final:
                return
            # Under the lock that _on_chunk takes to count a chunk: every byte counted so far
            # is replayed here, every later one reaches ``fn`` from _on_chunk, none twice.
            received = bytes(getattr(self._stream, "partial_audio", b"") or b"")
            so_far = received[: self.bytes_received]
            self._audio_listeners.append(fn)
        if so_far:
            _call_quietly(fn, so_far)

    # -- the worker's side ----------------------------------------------------------------
    def _notify(self, event: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(self, event)

    def _on_chunk(self, chunk: AudioChunk) -> None:
        if self.time_to_first_audio is None:
            self.time_to_first_audio = self.elapsed
        self.state = "streaming"
        self.chunks += 1
        self.seconds = chunk.seconds_so_far
        with self._lock:
            self.bytes_received = chunk.bytes_so_far
            audio_listeners = list(self._audio_listeners)
        for fn in audio_listeners:
            _call_quietly(fn, chunk.data)
        self._notify("progress")

    def _partial_audio(self) -> bytes:
        from_error = getattr(self.error, "partial_audio", b"") or b""
        from_stream = bytes(getattr(self._stream, "partial_audio", b"") or b"")
        return max(from_error, from_stream, key=len)

    def _finish(self) -> None:
        """Save, set the final state, tell listeners, release waiters: in that order."""
        self._t1 = time.monotonic()
        if self.song is not None:
            self.state = "saving"
            record(self.song)  # the session's spending, before anyone can ask for the next
            try:
                self.saved_path = save_song(self.song, self.output_dir)
            except Exception as exc:  # a full disk must not lose the song in memory
                self.save_error = exc
            state = "done"
        else:
            if self.error is None:
                reason = (
                    _("stopped before the song was finished")
                    if self._cancel_requested
                    else _("the kernel shut down before the song was finished")
                )
                self.error = GenerationCancelled(reason)
            partial = self._partial_audio()
            if isinstance(self.error, GenerationCancelled) and not self.error.partial_audio:
                self.error.partial_audio = partial
            if partial:
                try:
                    self.partial_path = save_partial(
                        partial,
                        self.request,
                        self.error,
                        self.output_dir,
                        # A cancelled song's error has no request id; the stream knows it, and
                        # it is what support needs about a song that may have been billed.
                        request_id=getattr(self.error, "request_id", None)
                        or getattr(self._stream, "request_id", None),
                        simulated=self.simulated,
                        elapsed=round(self.elapsed, 3),
                    )
                except Exception as exc:
                    self.save_error = exc
            state = "cancelled" if isinstance(self.error, GenerationCancelled) else "failed"
        with self._lock:
            self.state = state
            self._final = True
            listeners = list(self._listeners)
        for listener in listeners:
            listener(self, "finished")
        self._done.set()
