"""Where songs land on disk: one output directory, names that never collide, a JSON sidecar each.

Everything the service sends is written here *before* anything is displayed, so a kernel that
dies, a browser that closes or a notebook that is never saved loses nothing the user paid for.

Names look like ``20250102-130405_rainy-night-piano_3fa2b1c8.mp3`` (local time, a slug of the
first sung line or the prompt, the first characters of the request id), with ``-2``, ``-3``…
added rather than overwriting. A song that did not finish is kept as
``….partial.mp3`` with a sidecar saying ``"complete": false`` and why.
"""

from __future__ import annotations

import json
import os
import re
import threading
import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._errors import APIError
from ._models import Song, _atomic_write, mime_type_for, sidecar_path
from ._validation import SongRequest, first_line
from ._wav import repair_wav

__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "error_record",
    "output_directory",
    "save_partial",
    "save_song",
    "slugify",
    "unique_path",
]

DEFAULT_OUTPUT_DIR = "funmusic-output"

_SLUG_DROP = re.compile(r"[^\w]+")
# Choosing a free name and claiming it must be one step, or two songs finishing in the same
# second with the same first line could pick the same file.
_name_lock = threading.Lock()


def slugify(text: str, *, max_length: int = 40) -> str:
    """A file-name-safe slug: lower case, words joined by ``-``; Chinese characters are kept."""
    normal = unicodedata.normalize("NFKC", text).lower()
    slug = _SLUG_DROP.sub("-", normal).replace("_", "-").strip("-")
    slug = re.sub(r"-{2,}", "-", slug)
    if len(slug) > max_length:
        cut = slug[: max_length + 1]
        # End on a whole word when that keeps most of the slug.
        slug = cut.rsplit("-", 1)[0] if cut.rfind("-") >= max_length // 2 else cut[:max_length]
        slug = slug.rstrip("-")
    return slug or "song"


def output_directory(directory: str | os.PathLike[str] | None = None) -> Path:
    """The output directory (default ``./funmusic-output``), created if missing."""
    path = Path(directory if directory else DEFAULT_OUTPUT_DIR).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stem(text: str, request_id: str | None, when: datetime | None = None) -> str:
    stamp = (when or datetime.now()).strftime("%Y%m%d-%H%M%S")
    parts = [stamp, slugify(first_line(text))]
    short = slugify(request_id or "", max_length=8) if request_id else ""
    if short and short != "song":
        parts.append(short)
    return "_".join(parts)


def unique_path(directory: Path, stem: str, suffix: str) -> Path:
    """``directory/stem.suffix``, or ``stem-2.suffix``…: a name whose audio and sidecar are both
    free. The audio file is created empty here, so the name is claimed before anyone else looks.
    """
    with _name_lock:
        n = 1
        while True:
            name = stem if n == 1 else f"{stem}-{n}"
            candidate = directory / f"{name}{suffix}"
            if not sidecar_path(candidate).exists():
                try:
                    with open(candidate, "xb"):
                        pass
                except FileExistsError:
                    pass
                else:
                    return candidate
            n += 1


def save_song(song: Song, directory: str | os.PathLike[str] | None = None) -> Path:
    """Write a finished song and its sidecar into the output directory; return the audio path.

    Sets ``song.saved_path``.
    """
    folder = output_directory(directory)
    path = unique_path(folder, _stem(song.request.text, song.request_id), f".{song.format}")
    return song.save(path)


def error_record(error: BaseException) -> dict[str, Any]:
    """What a sidecar says about a failure: JSON-ready, never a traceback."""
    record: dict[str, Any] = {"type": type(error).__name__}
    if isinstance(error, APIError):
        record.update(
            status_code=error.status_code,
            code=error.code,
            message=error.message,
            request_id=error.request_id,
        )
    else:
        record["message"] = str(error)
    return record


def save_partial(
    audio: bytes,
    request: SongRequest,
    error: BaseException,
    directory: str | os.PathLike[str] | None = None,
    *,
    request_id: str | None = None,
    simulated: bool | None = None,
    elapsed: float | None = None,
) -> Path:
    """Write the audio that arrived before ``error`` as ``….partial.<format>`` plus a sidecar
    with ``"complete": false`` and the error; return the audio path.

    ``request_id`` defaults to the error's, when it is an ``APIError``.
    """
    if request_id is None and isinstance(error, APIError):
        request_id = error.request_id
    folder = output_directory(directory)
    path = unique_path(folder, _stem(request.text, request_id), f".partial.{request.format}")
    # A WAV cut short still announces the whole song's size: fix the two sizes so every player
    # opens it (the samples, and the file's length, stay exactly as received).
    data = repair_wav(bytes(audio)) if request.format == "wav" else bytes(audio)
    _atomic_write(path, data)
    meta: dict[str, Any] = {
        "complete": False,
        "simulated": simulated,
        "model": request.model,
        "mode": request.mode,
        "gender": request.gender,
        "format": request.format,
        "mime_type": mime_type_for(request.format),
        "bytes": len(audio),
        "header_repaired": data != bytes(audio),
        "request_id": request_id,
        "elapsed": elapsed,
        "error": error_record(error),
        "request": request.describe(),
        "saved_at": datetime.now(timezone.utc).isoformat(),
    }
    _atomic_write(
        sidecar_path(path), json.dumps(meta, ensure_ascii=False, indent=2).encode("utf-8")
    )
    return path.resolve()
