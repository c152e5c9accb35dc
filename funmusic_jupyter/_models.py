"""What a generation gives back: the ``Song``, and the events of a stream."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._i18n import clip, displaying
from ._validation import SongRequest, first_line

__all__ = ["AudioChunk", "Song", "StreamEvent", "StreamFinished", "mime_type_for", "sidecar_path"]

_MIME = {"mp3": "audio/mpeg", "wav": "audio/wav"}


def mime_type_for(fmt: str) -> str:
    return _MIME.get(fmt, "application/octet-stream")


def sidecar_path(audio_path: Path) -> Path:
    """``song.mp3`` -> ``song.json``: the metadata beside the audio."""
    return audio_path.with_suffix(".json")


def _atomic_write(path: Path, data: bytes) -> None:
    # Write then rename, so a kernel killed mid-write never leaves a truncated song behind.
    # The temporary name is unique: two saves to one path (a --save in two cells finishing
    # together) must not write into, or rename away, each other's temporary file.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(eq=False, repr=False)
class Song:
    """A finished song: its audio bytes and everything the service said about it.

    ``duration`` is the billed length in seconds (``usage.duration``). ``url`` expires at
    ``expires_at`` (an aware datetime): the audio is already in ``audio``, so nothing is lost then.
    """

    audio: bytes
    format: str
    lyrics: str
    sample_rate: int
    channels: int
    duration: float
    request_id: str | None
    audio_id: str | None
    url: str | None
    expires_at: datetime | None
    time_to_first_audio: float | None
    total_time: float
    request: SongRequest
    simulated: bool = False
    saved_path: Path | None = field(default=None)
    #: What decides the song (``_library.song_key``): written to the sidecar, so a later
    #: identical request finds this song instead of paying for a new one.
    key: str | None = field(default=None)
    #: Set on a song read back from the library (``_library.load_song``): when it was saved.
    made_at: datetime | None = field(default=None)

    @property
    def mime_type(self) -> str:
        return mime_type_for(self.format)

    @property
    def mode(self) -> str:
        return self.request.mode

    @property
    def gender(self) -> str:
        return self.request.gender

    @property
    def model(self) -> str:
        return self.request.model

    def cost(self, price_per_second: float) -> float:
        return round(self.duration * price_per_second, 6)

    def metadata(self) -> dict[str, Any]:
        """Everything but the audio, JSON-ready: what the sidecar holds."""
        return {
            "complete": True,
            "simulated": self.simulated,
            "model": self.model,
            "mode": self.mode,
            "gender": self.gender,
            "format": self.format,
            "mime_type": self.mime_type,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "duration": self.duration,
            "bytes": len(self.audio),
            "request_id": self.request_id,
            "audio_id": self.audio_id,
            "url": self.url,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "time_to_first_audio": self.time_to_first_audio,
            "total_time": self.total_time,
            "lyrics": self.lyrics,
            "request": self.request.describe(),
            "key": self.key,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the audio to ``path`` and a JSON sidecar beside it; return the audio's path.

        A path without a suffix gets the format's (``.mp3``/``.wav``); a directory gets a file
        named after the request id. A path ending in ``.json`` names the sidecar: the audio
        goes beside it with the format's suffix (else the sidecar would overwrite the audio).
        """
        target = Path(path).expanduser()
        if target.is_dir():
            target = target / f"{self.request_id or self.audio_id or 'song'}.{self.format}"
        elif not target.suffix or target.suffix.lower() == ".json":
            target = target.with_suffix(f".{self.format}")
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, self.audio)
        meta = self.metadata()
        meta["saved_at"] = datetime.now(timezone.utc).isoformat()
        _atomic_write(
            sidecar_path(target),
            json.dumps(meta, ensure_ascii=False, indent=2).encode("utf-8"),
        )
        self.saved_path = target.resolve()
        return self.saved_path

    def first_line(self) -> str:
        """The first sung line (no tags), for titles."""
        return first_line(self.lyrics)

    def _voice(self) -> str:
        if self.request.instrumental:
            return "instrumental"
        # fun-music-preview takes no gender: the model's own voice.
        return f"{self.gender} voice" if self.gender else "default voice"

    def summary(self) -> str:
        """Deterministic one-liner: no ids, no timings, nothing that changes between runs."""
        ch = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} channels")
        sim = ", simulated" if self.simulated else ""
        first = self.first_line()
        if len(first) > 48:
            first = clip(first, 47) + "…"
        return (
            f"<Song {self.format} {self.sample_rate} Hz {ch}, {self.duration:g} s, "
            f"{self.mode} mode, {self._voice()}{sim}: {first!r}>"
        )

    def __repr__(self) -> str:
        return self.summary()

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, *, embed_limit: int | None = None
    ) -> dict[str, str]:
        """The song card. ``embed_limit`` (bytes) defaults to ``FunMusicMagics.embed_limit``
        when the extension is loaded, else about 8 MB: a WAV over it is embedded as an MP3
        preview with a link to the saved file."""
        from . import _render  # render lazily: the module is only needed in notebooks
        from ._library import reuse_note

        if embed_limit is None:
            embed_limit = _render.configured_embed_limit()
        with displaying():
            # A song read back from the library (fm.generate(..., reuse=True)) says so.
            notes = [reuse_note(self, fresh="reuse=False")] if self.made_at is not None else []
            return _render.song_bundle(self, embed_limit=embed_limit, notes=notes)


@dataclass(frozen=True)
class AudioChunk:
    """One piece of audio as it arrived. ``seconds_so_far`` estimates audio received so far."""

    index: int
    data: bytes
    bytes_so_far: int
    seconds_so_far: float | None
    elapsed: float


@dataclass(frozen=True)
class StreamFinished:
    """The last event of a stream: the assembled song."""

    song: Song


StreamEvent = AudioChunk | StreamFinished
