"""What a song is made from (``SongSpec``), and making it one encoded chunk at a time.

``SongMaker`` does the work, synchronously, wherever it runs: a thread of the server's process,
or a process of a ``SynthesisPool`` (``--workers``). ``Synthesis`` drives one from the event
loop, one chunk per trip, so the first event never waits for the whole song and a client that
goes away stops synthesis within one chunk.

A ``SongSpec`` is the whole of what decides a song's bytes: the mode, the text as sent, the
gender (empty for ``fun-music-preview``, which takes none), the format and whether the song is
instrumental (``is_instrumental``: the same song without its voices, and no lyrics).
Synthesis is deterministic, so the spec is all a signed download URL has to carry for any
process holding the secret to make the same file again (``_tokens``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from .._validation import SongRequest

if TYPE_CHECKING:
    from ._pool import SynthesisPool

__all__ = ["CHUNK_SECONDS", "SongMaker", "SongSpec", "Synthesis"]

CHUNK_SECONDS = 1.0


@dataclass(frozen=True)
class SongSpec:
    """Everything that decides a song's bytes, and nothing else (no ids, no times)."""

    mode: str  # "lyrics" | "prompt"
    text: str  # as the client sent it: lyrics come back to the client verbatim
    gender: str  # "" for fun-music-preview (the default voice)
    format: str
    instrumental: bool = False

    @classmethod
    def from_request(cls, request: SongRequest, raw_input: Mapping[str, Any]) -> SongSpec:
        raw = raw_input.get(request.mode)
        text = raw if isinstance(raw, str) else request.text
        return cls(request.mode, text, request.gender, request.format, request.instrumental)

    def to_json(self) -> list[str | bool]:
        return [self.mode, self.text, self.gender, self.format, self.instrumental]

    @classmethod
    def from_json(cls, value: object) -> SongSpec:
        """The inverse of ``to_json``; ``ValueError`` for anything else."""
        if (not isinstance(value, list) or len(value) != 5
                or not all(isinstance(v, str) for v in value[:4])
                or not isinstance(value[4], bool)):
            raise ValueError(f"a song spec is a list of 4 strings and a bool; got {value!r:.80}")
        mode, text, gender, fmt, instrumental = value
        if mode not in ("lyrics", "prompt") or fmt not in ("mp3", "wav"):
            raise ValueError(f"unknown mode or format in song spec: {mode!r}, {fmt!r}")
        return cls(mode, text, gender, fmt, instrumental)

    @property
    def key(self) -> str:
        """A content address: equal specs, equal keys (the download cache's key)."""
        canonical = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class SongMaker:
    """Lyrics, arrangement and encoded chunks for one spec (blocking; not thread-safe)."""

    def __init__(self, spec: SongSpec) -> None:
        self.spec = spec
        self.lyrics = ""
        self.duration = 0.0
        self.sample_rate = 48000
        self.channels = 2
        self._chunks: Iterator[bytes] | None = None

    def _prepare(self) -> None:
        # Imported here, where synthesis runs: numpy and the music load while a fresh simulator
        # (the embedded one, just started) already answers, and while the first song's
        # first-chunk delay runs, instead of before it can listen.
        from ._encode import encode
        from ._lyrics import write_lyrics
        from ._music import arrange

        spec = self.spec
        if spec.mode == "lyrics":
            self.lyrics = spec.text
            arr = arrange(lyrics=self.lyrics, gender=spec.gender, instrumental=spec.instrumental)
        else:
            self.lyrics = write_lyrics(spec.text)
            arr = arrange(lyrics=self.lyrics, gender=spec.gender, prompt=spec.text,
                          instrumental=spec.instrumental)
        if spec.instrumental:
            self.lyrics = ""  # nothing is sung, so the song has no lyrics
        self.duration = float(arr.duration)
        self.sample_rate = int(arr.sample_rate)
        self.channels = int(arr.channels)
        self._chunks = iter(encode(arr, spec.format, chunk_seconds=CHUNK_SECONDS))

    def first(self) -> bytes | None:
        """Plan the song and make its first chunk (one trip: the first event's latency)."""
        self._prepare()
        return self.next()

    def next(self) -> bytes | None:
        """The next non-empty chunk, None at the end."""
        assert self._chunks is not None
        while True:
            chunk = next(self._chunks, None)
            if chunk is None or chunk:
                return chunk

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


class _Steps(Protocol):
    """How a ``Synthesis`` reaches its ``SongMaker``: a thread here, or a pool process."""

    lyrics: str
    duration: float
    sample_rate: int
    channels: int

    async def first(self) -> bytes | None: ...

    async def next(self) -> bytes | None: ...

    def close(self) -> None: ...


class _InThread:
    """The maker in this process; each step in one of anyio's worker threads."""

    def __init__(self, spec: SongSpec) -> None:
        self._maker = SongMaker(spec)
        self.lyrics, self.duration, self.sample_rate, self.channels = "", 0.0, 48000, 2

    async def first(self) -> bytes | None:
        chunk = await anyio.to_thread.run_sync(self._maker.first)
        maker = self._maker
        self.lyrics, self.duration = maker.lyrics, maker.duration
        self.sample_rate, self.channels = maker.sample_rate, maker.channels
        return chunk

    async def next(self) -> bytes | None:
        # Not abandoned on cancel: a disconnect waits for this one chunk, then stops.
        return await anyio.to_thread.run_sync(self._maker.next)

    def close(self) -> None:
        self._maker.close()


class Synthesis:
    """One song, chunk by chunk, from the event loop.

    ``on_active(+1 / -1)`` is told when a synthesis loop starts and ends (tests check that a
    disconnect stops one). With a ``pool`` the work runs in its processes, else in threads.
    """

    def __init__(self, spec: SongSpec, on_active: Callable[[int], None] | None = None,
                 pool: SynthesisPool | None = None) -> None:
        self.spec = spec
        self._on_active = on_active
        self._steps: _Steps = pool.lease(spec) if pool is not None else _InThread(spec)

    @property
    def lyrics(self) -> str:
        return self._steps.lyrics

    @property
    def duration(self) -> float:
        return self._steps.duration

    @property
    def sample_rate(self) -> int:
        return self._steps.sample_rate

    @property
    def channels(self) -> int:
        return self._steps.channels

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """Async iterator of non-empty encoded chunks; closes the encoder however it ends."""
        if self._on_active is not None:
            self._on_active(1)
        try:
            chunk = await self._steps.first()
            while chunk is not None:
                yield chunk
                chunk = await self._steps.next()
        finally:
            self._steps.close()
            if self._on_active is not None:
                self._on_active(-1)

    async def whole(self) -> bytes:
        """The whole file."""
        pieces: list[bytes] = []
        gen = self.chunks()
        try:
            async for chunk in gen:
                pieces.append(chunk)
        finally:
            await gen.aclose()
        return b"".join(pieces)

    @property
    def billed_seconds(self) -> int:
        return max(1, round(self.duration))
