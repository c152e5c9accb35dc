"""funmusic-jupyter: make songs with Alibaba Cloud Model Studio's Fun-Music from a notebook.

    %load_ext funmusic_jupyter

    %%funmusic --gender male
    [verse]
    ...

or, from Python::

    import funmusic_jupyter as fm
    song = fm.generate(prompt="Melancholic piano, rainy night yearning")
    songs = fm.generate_many([{"prompt": "Rainy night piano"}, {"prompt": "Summer dance"}])

With no API key configured, everything runs on the offline simulator
(``funmusic_jupyter.simulator``), which speaks the service's exact wire protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._api import agenerate, astream, generate, stream
from ._batch import BatchValidationError, RateLimiter, agenerate_many, generate_many
from ._client import AsyncFunMusicClient, AsyncSongStream, FunMusicClient, SongStream
from ._config import Settings, resolve_settings
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigurationError,
    ContentInspectionError,
    FunMusicError,
    FunMusicWarning,
    GenerationCancelled,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    ValidationError,
)
from ._library import Library, LibraryEntry, library
from ._models import AudioChunk, Song, StreamEvent, StreamFinished
from ._spending import CostReport
from ._validation import Limit, SongRequest, TextStats, build_request, limit_for, text_stats
from ._version import __version__

if TYPE_CHECKING:
    from ._panel import FunMusicPanel

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncFunMusicClient",
    "AsyncSongStream",
    "AudioChunk",
    "AuthenticationError",
    "BadRequestError",
    "BatchValidationError",
    "BudgetExceededError",
    "ConfigurationError",
    "ContentInspectionError",
    "CostReport",
    "FunMusicClient",
    "FunMusicError",
    "FunMusicPanel",
    "FunMusicWarning",
    "GenerationCancelled",
    "Library",
    "LibraryEntry",
    "Limit",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimiter",
    "ServerError",
    "Settings",
    "Song",
    "SongRequest",
    "SongStream",
    "StreamEvent",
    "StreamFinished",
    "StreamInterruptedError",
    "TextStats",
    "ValidationError",
    "__version__",
    "agenerate",
    "agenerate_many",
    "astream",
    "build_request",
    "generate",
    "generate_many",
    "library",
    "limit_for",
    "load_ipython_extension",
    "resolve_settings",
    "stream",
    "text_stats",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext funmusic_jupyter``: register ``%%funmusic`` and ``%funmusic``."""
    from ._magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from ._magics import unload_ipython_extension as _unload

    _unload(ipython)


def __getattr__(name: str) -> Any:
    # The panel pulls in ipywidgets' front-end plumbing: import it only when asked for.
    if name == "FunMusicPanel":
        from ._panel import FunMusicPanel

        return FunMusicPanel
    raise AttributeError(f"module 'funmusic_jupyter' has no attribute {name!r}")
