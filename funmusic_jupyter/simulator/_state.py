"""What one simulator process shares between its requests: settings, pacing, the rate window,
the download cache and the URL signer (``app.state.simulator``)."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ._faults import Fault
from ._synthesis import SongSpec, Synthesis

if TYPE_CHECKING:
    from ._pool import SynthesisPool
from ._tokens import UrlSigner, new_secret

__all__ = ["MAX_STORED_BYTES", "RateWindow", "SimulatorState", "SongCache", "Stored"]

MAX_STORED_BYTES = 256 << 20  # about five 4-minute WAV files, or sixty MP3s
_THROTTLE_MEMORY = 4096  # distinct request bodies whose throttle=…xTIMES attempts are counted
_CLOSING_POLL = 0.1


@dataclass
class Stored:
    data: bytes
    media_type: str


class SongCache:
    """Finished songs by ``SongSpec.key``, least recently used evicted first past ``max_bytes``.

    Only a cache: a signed URL whose song was evicted (or made by another process) is made again.
    """

    def __init__(self, max_bytes: int = MAX_STORED_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Stored] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        # Keys being made for a download now: a second download of the same song waits for the
        # first instead of making it twice (a class that opens one shared link at once).
        self._making: dict[str, anyio.Event] = {}

    def put(self, key: str, data: bytes, media_type: str) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.data)
            self._items[key] = Stored(data, media_type)
            self._bytes += len(data)
            # The newest song stays even when it alone is over the limit: it is being served.
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted.data)

    def get(self, key: str) -> Stored | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    async def get_or_make(self, key: str, media_type: str,
                          make: Callable[[], Awaitable[bytes]]) -> Stored:
        """The cached song, or ``make()``'s, made once however many ask at the same time.

        Called from one event loop only (the simulator's), which keeps ``_making`` consistent.
        """
        while True:
            stored = self.get(key)
            if stored is not None:
                return stored
            pending = self._making.get(key)
            if pending is None:
                break
            await pending.wait()  # then look again: it failed, or was evicted at once
        done = self._making[key] = anyio.Event()
        try:
            data = await make()
            self.put(key, data, media_type)
            return Stored(data, media_type)
        finally:
            del self._making[key]
            done.set()

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


class RateWindow:
    """At most ``rpm`` admitted requests in any sliding 60 s window."""

    def __init__(self, rpm: int) -> None:
        self.rpm = rpm
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self, now: float) -> float | None:
        """None when admitted, else the seconds until a slot frees up."""
        with self._lock:
            while self._times and now - self._times[0] >= 60.0:
                self._times.popleft()
            if len(self._times) >= self.rpm:
                return 60.0 - (now - self._times[0])
            self._times.append(now)
            return None


class SimulatorState:
    """Everything one simulator app shares between requests (``app.state.simulator``)."""

    def __init__(self, *, speed: float, first_chunk_delay: float, api_key: str | None,
                 url_ttl: float, rpm: int, secret: str | None = None, workers: int = 0,
                 max_stored_bytes: int = MAX_STORED_BYTES) -> None:
        self.speed = speed
        self.first_chunk_delay = first_chunk_delay
        self.api_key = api_key
        self.url_ttl = url_ttl
        self.rpm = rpm
        self.store = SongCache(max_stored_bytes)
        self.window = RateWindow(rpm)
        self.signer = UrlSigner(secret or new_secret())
        #: Synthesis processes (``workers`` >= 1), or None: threads of this process.
        self.pool: SynthesisPool | None = None
        if workers:
            # Imported only here: multiprocessing is start-up time the embedded child saves.
            from ._pool import SynthesisPool

            self.pool = SynthesisPool(workers)
        self._throttled: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        #: Set by the server on shutdown: stalled and paced responses end at once.
        self.closing = False
        #: Synthesis loops running now (tests check that a disconnect stops them).
        self.active_syntheses = 0

    def __repr__(self) -> str:
        key = "set" if self.api_key else "none"
        return (f"SimulatorState(speed={self.speed!r}, "
                f"first_chunk_delay={self.first_chunk_delay!r}, api_key={key}, "
                f"url_ttl={self.url_ttl!r}, rpm={self.rpm!r})")

    # -- pacing
    def audio_deadline(self, started: float, audio_seconds: float) -> float:
        """When (monotonic) the audio up to ``audio_seconds`` may be sent."""
        paced = 0.0 if self.speed == 0 or math.isinf(self.speed) else audio_seconds / self.speed
        return started + self.first_chunk_delay + paced

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await anyio.sleep(delay)

    async def watch_closing(self, scope: anyio.CancelScope) -> None:
        # A plain flag, polled: ``stop()`` sets it from another thread, and an anyio.Event
        # may only be set from its own event loop.
        while not self.closing:  # noqa: ASYNC110
            await anyio.sleep(_CLOSING_POLL)
        scope.cancel()

    # -- throttle=SECONDSxTIMES bookkeeping
    def throttle_attempt(self, body: bytes, fault: Fault) -> bool:
        """True when this attempt of this body is to be throttled."""
        if fault.times is None:
            return True
        key = hashlib.sha256(fault.header_value().encode() + b"\0" + body).hexdigest()
        with self._lock:
            count = self._throttled.pop(key, 0) + 1
            self._throttled[key] = count
            while len(self._throttled) > _THROTTLE_MEMORY:
                self._throttled.popitem(last=False)
        return count <= fault.times

    # -- synthesis
    def _count(self, delta: int) -> None:
        with self._lock:
            self.active_syntheses += delta

    def synthesis(self, spec: SongSpec) -> Synthesis:
        return Synthesis(spec, self._count, self.pool)
