"""``--workers N``: synthesis and encoding in N processes, so a server uses every core while its
one event loop only frames and paces.

A song's MP3 encoder has state (LAME's bit reservoir), so all of one song's chunks must be made
by the same process. Each worker is therefore its own single-process
``concurrent.futures.ProcessPoolExecutor`` (started with ``spawn``: the server has threads),
holding the songs it was given in a dictionary; a new song goes to the worker with the fewest
songs now, so load spreads evenly and a new song's first chunk waits behind as little as
possible. Each call is one step (plan + first chunk, next chunk, close), so a client that leaves
stops its song's synthesis after the chunk in flight: the close is queued behind it.

One event loop admits every request, so ``--rpm`` counts the whole server. A worker whose server
was killed outright notices within a second and exits.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ._synthesis import SongMaker, SongSpec

__all__ = ["SynthesisPool"]

_PARENT_POLL = 1.0  # seconds between a worker's checks that its server is still there

# ----------------------------------------------------------------- in a worker process

_makers: dict[int, SongMaker] = {}


def _exit_when_orphaned(parent: int) -> None:
    # A server killed outright (SIGKILL, the OOM killer) cannot stop its workers, and a worker
    # waiting for its next call would wait forever: each one checks that its server is there.
    while True:
        time.sleep(_PARENT_POLL)
        if os.getppid() != parent:
            os._exit(0)


def _worker_started(parent: int) -> None:
    # Ctrl+C in a terminal reaches the whole process group: the server stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() != parent:  # the server died while this one was starting
        os._exit(0)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), name="parent-pid",
                     daemon=True).start()
    from . import _encode  # noqa: F401 (numpy and the music, loaded before the first song)


def _first(job: int, spec: list[str | bool]) -> tuple[str, float, int, int, bytes | None]:
    maker = SongMaker(SongSpec.from_json(spec))
    _makers[job] = maker
    chunk = maker.first()
    return maker.lyrics, maker.duration, maker.sample_rate, maker.channels, chunk


def _next(job: int) -> bytes | None:
    return _makers[job].next()


def _close(job: int) -> None:
    maker = _makers.pop(job, None)
    if maker is not None:
        maker.close()


def _held() -> int:
    return len(_makers)


# ------------------------------------------------------------------- in the server


class _Lease:
    """One song on one worker; the ``_Steps`` of a ``Synthesis``."""

    def __init__(self, pool: SynthesisPool, worker: int, spec: SongSpec) -> None:
        self._pool, self._worker, self._spec = pool, worker, spec
        self._job = next(pool._jobs)
        self._closed = False
        self.lyrics, self.duration, self.sample_rate, self.channels = "", 0.0, 48000, 2
        pool._songs[worker] += 1

    async def first(self) -> bytes | None:
        meta = await self._pool._call(self._worker, _first, self._job, self._spec.to_json())
        self.lyrics, self.duration, self.sample_rate, self.channels, chunk = meta
        return chunk  # type: ignore[no-any-return]

    async def next(self) -> bytes | None:
        return await self._pool._call(self._worker, _next, self._job)  # type: ignore[no-any-return]

    def close(self) -> None:
        # Not awaited (this runs in ``finally``, maybe while cancelled): queued behind the
        # chunk in flight on the same worker, so that one finishes and nothing more is made.
        if not self._closed:
            self._closed = True
            self._pool._songs[self._worker] -= 1
            self._pool._post(self._worker, _close, self._job)


class SynthesisPool:
    """``workers`` single-process executors; songs are leased to the least busy one."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"a synthesis pool needs at least 1 worker; got {workers!r}")
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._executors = [self._new_executor() for _ in range(workers)]
        self._songs = [0] * workers
        self._jobs = itertools.count()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=self._context, initializer=_worker_started,
                                   initargs=(os.getpid(),))

    def lease(self, spec: SongSpec) -> _Lease:
        worker = min(range(self.workers), key=self._songs.__getitem__)
        return _Lease(self, worker, spec)

    async def _call(self, worker: int, fn: Any, *args: Any) -> Any:
        try:
            future = self._executors[worker].submit(fn, *args)
        except BrokenProcessPool:
            self._replace(worker)
            raise
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._replace(worker)  # this song is lost; the next ones get a fresh process
            raise

    def _post(self, worker: int, fn: Any, *args: Any) -> None:
        try:
            future: Future[Any] = self._executors[worker].submit(fn, *args)
        except (BrokenProcessPool, RuntimeError):  # broken, or shut down
            return
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "unretrieved"

    def _replace(self, worker: int) -> None:
        old = self._executors[worker]
        if getattr(old, "_broken", False):
            self._executors[worker] = self._new_executor()
            old.shutdown(wait=False, cancel_futures=True)

    def warm(self) -> None:
        """Start every worker now (each loads numpy and the music), without waiting."""
        for worker in range(self.workers):
            self._post(worker, _held)

    def held(self) -> list[int]:
        """How many songs each worker holds now (blocking; for tests and diagnostics)."""
        return [executor.submit(_held).result() for executor in self._executors]

    def shutdown(self) -> None:
        """Stop every worker (songs in flight end); idempotent."""
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)
