"""The shared background worker: one daemon thread, one anyio event loop, every song a ``Job``.

Why a thread with its own loop: there are no async magics, and a task put on the kernel's own
loop starves whenever another cell blocks. The loop here runs beside the kernel, so a cell that
starts a song returns at once and the next cell runs while the audio streams in.

- One thread per process, created on first use (``get_worker()``), named ``funmusic-worker``.
  It is a daemon and is also stopped at interpreter exit, after cancelling (and so saving) any
  song still running. Songs never get threads of their own, and file writes happen on the
  loop thread itself (a few MB, milliseconds), so finished or cancelled songs leave no thread.
- A ``Job`` (``_job``) is one song: its progress, its outcome, its files and its listeners.
  ``Job.cancel()`` closes the song's HTTP stream; what had arrived is saved as a partial file.
- The worker never prints or displays. Callers add listeners (``Job.add_listener``), which run
  on the worker thread and may update a display handle or a widget, both safe from threads.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal

from ._config import Settings, resolve_settings
from ._errors import StreamInterruptedError
from ._i18n import Language, _, current_language, use_language
from ._job import FINAL_STATES, AudioListener, Job, Listener
from ._library import song_key
from ._models import AudioChunk, Song, StreamFinished
from ._validation import SongRequest

__all__ = [
    "AudioListener",
    "FINAL_STATES",
    "Job",
    "client_options",
    "Listener",
    "THREAD_NAME",
    "Worker",
    "current_worker",
    "get_worker",
]

THREAD_NAME = "funmusic-worker"
TICK_SECONDS = 0.5

log = logging.getLogger(__name__)

class Worker:
    """The background thread and its event loop. Use ``get_worker()``; one per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._portal: BlockingPortal | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            async with BlockingPortal() as portal:
                self._loop = asyncio.get_running_loop()
                self._portal = portal
                ready.set()
                await portal.sleep_until_stopped()

        def main() -> None:
            try:
                anyio.run(serve, backend="asyncio")
            except BaseException as exc:  # pragma: no cover - the loop itself failed
                failure.append(exc)
                ready.set()

        # A daemon, so a kernel that exits without running atexit hooks still exits.
        self._thread = threading.Thread(target=main, name=THREAD_NAME, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise RuntimeError(f"the funmusic worker could not start: {failure[0]!r}")

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._portal is not None

    def call_in_loop(self, fn: Callable[[], object]) -> None:
        """Run a plain function on the loop thread (from it, or from any other thread)."""
        if threading.current_thread() is self._thread:
            fn()
            return
        portal = self._portal
        if portal is None:
            return
        try:
            portal.call(fn)
        except RuntimeError:
            pass  # the portal stopped: nothing left to act on

    def call_later(self, delay: float, fn: Callable[[], object]) -> None:
        """Run a plain function on the loop thread after ``delay`` seconds, from any thread.

        A timer without a thread of its own: a song's follow-up (removing its live player if
        no browser answers) must not leave a thread behind per song."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def guarded() -> None:
            try:
                fn()
            except Exception:  # nowhere to print on this thread; a late display may fail
                log.debug("funmusic delayed call failed", exc_info=True)

        with contextlib.suppress(RuntimeError):  # the loop is closing: nothing left to do
            loop.call_soon_threadsafe(loop.call_later, delay, guarded)

    def submit(
        self,
        request: SongRequest,
        *,
        client_options: Mapping[str, Any] | None = None,
        output_dir: str | Path | None = None,
        headers: Mapping[str, str] | None = None,
        listener: Listener | None = None,
        min_interval: float = 0.25,
        audio_listener: AudioListener | None = None,
        language: Language | None = None,
    ) -> Job:
        """Start a song in the background and return its ``Job`` at once.

        ``client_options`` are ``AsyncFunMusicClient`` keyword arguments (backend, base_url,
        endpoint, timeouts); the client is made on the loop and closed when the job ends.
        ``listener`` is attached before the job starts, so it sees every event, and
        ``audio_listener`` every audio byte (see ``Job.add_audio_listener``). Returns as
        soon as the loop has taken the job (anyio's ``start_task_soon``), normally at once.
        ``language`` is what the job's own messages are written in (default: the caller's
        ``current_language()``, captured now: the task runs on another thread).
        """
        if self._portal is None:
            raise RuntimeError("the funmusic worker has been shut down")
        with self._lock:
            job = Job(
                worker=self,
                job_id=str(next(self._ids)),
                request=request,
                client_options=client_options or {},
                output_dir=output_dir,
                headers=headers,
                language=language or current_language(),
            )
            self._jobs[job.id] = job
        if listener is not None:
            job.add_listener(listener, min_interval=min_interval)
        if audio_listener is not None:
            job.add_audio_listener(audio_listener)
        self._portal.start_task_soon(self._run, job, name=f"funmusic job {job.id}")
        return job

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def get(self, job_id: str) -> Job:
        with self._lock:
            return self._jobs[job_id]

    def running(self) -> list[Job]:
        return [job for job in self.jobs() if job.running]

    def cancel_all(self) -> list[Job]:
        """Cancel every running job; return those that were asked to stop."""
        return [job for job in self.running() if job.cancel()]

    def shutdown(self, *, timeout: float = 5.0) -> None:
        """Cancel running songs (saving their partial audio), then stop the loop and thread."""
        for job in self.cancel_all():
            job.wait(timeout)
        portal, self._portal = self._portal, None
        if portal is not None:
            try:
                portal.call(portal.stop, True)
            except RuntimeError:
                pass
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- on the loop ----------------------------------------------------------------------
    async def _run(self, job: Job) -> None:
        # The task's own context (anyio gives each task a copy): the language set here is the
        # job's for everything the task does and every listener it calls, and no other job's.
        with use_language(job.language):
            await self._run_job(job)

    async def _run_job(self, job: Job) -> None:
        job._t0 = time.monotonic()
        job.state = "waiting" if job.request.stream else "generating"
        try:
            with anyio.CancelScope() as scope:
                job._scope = scope
                if job._cancel_requested:
                    scope.cancel()
                job._notify("started")
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_tick, job)
                    try:
                        job.song = await _produce(job)
                    except Exception as exc:  # every failure becomes the job's outcome
                        job.error = exc
                    finally:
                        tg.cancel_scope.cancel()
        finally:
            # Synchronous on purpose: it must run even while the loop is being cancelled.
            job._scope = None
            job._finish()


async def _tick(job: Job) -> None:
    # Elapsed time moves even while no audio arrives (non-streaming, or before the first chunk).
    while True:
        await anyio.sleep(TICK_SECONDS)
        job._notify("tick")


async def _produce(job: Job) -> Song:
    # Imported here: the client module is only needed once a song is actually made.
    from ._client import AsyncFunMusicClient

    async with AsyncFunMusicClient(**job._client_options) as client:
        job.simulated = client.settings.backend == "simulator"
        key = song_key(job.request, client.settings)  # saved in the sidecar, for reuse
        if not job.request.stream:
            made = await client.generate_request(job.request, headers=job.headers)
            made.key = key
            return made
        song: Song | None = None
        async with client.stream_request(job.request, headers=job.headers) as stream:
            job._stream = stream
            async for event in stream:
                if isinstance(event, AudioChunk):
                    job._on_chunk(event)
                elif isinstance(event, StreamFinished):
                    song = event.song
        song = song or stream.song
        if song is None:
            raise StreamInterruptedError(
                _("the stream ended without its final event"),
                partial_audio=bytes(stream.partial_audio),
            )
        song.key = key
        return song


_worker: Worker | None = None
_worker_lock = threading.Lock()


def current_worker() -> Worker | None:
    """The process's worker if one was started, without starting one."""
    return _worker


def get_worker() -> Worker:
    """The process's worker, started on first use (and again if it was shut down)."""
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.alive:
            _worker = Worker()
            atexit.register(_worker.shutdown)
        return _worker


def client_options(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
    connect_timeout: float = 10.0,
    read_timeout: float = 600.0,
    idle_timeout: float = 60.0,
) -> tuple[dict[str, Any], Settings]:
    """Client keyword arguments for ``Worker.submit``, and the settings they resolve to.

    Called on the user's thread (the magic's cell, the panel's click) so that a bad setting
    fails there, in one line, instead of later in the background. The embedded simulator is
    started here too, once, rather than from the worker's loop, where the client would start it
    through one of anyio's helper threads.
    """
    settings = resolve_settings(
        api_key=api_key, base_url=base_url, endpoint=endpoint, backend=backend
    )
    if settings.backend == "simulator" and settings.base_url is None:
        from .simulator import start_embedded

        base_url = start_embedded()
    options: dict[str, Any] = {
        "backend": settings.backend,
        "base_url": base_url,
        "endpoint": endpoint,
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "idle_timeout": idle_timeout,
    }
    if api_key is not None:
        options["api_key"] = api_key
    return options, settings
