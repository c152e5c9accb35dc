"""The public façade: ``funmusic_jupyter.__all__`` is exactly what the package offers."""

from __future__ import annotations

import types

import funmusic_jupyter
from funmusic_jupyter import _api, _batch, _client, _errors, _models

# Names of the private modules that are public through the package.
EXPECTED = {
    *_api.__all__,
    "BatchValidationError",
    "RateLimiter",
    "agenerate_many",
    "generate_many",
    *_client.__all__,
    *(name for name in _errors.__all__ if name != "error_from_response"),
    "AudioChunk",
    "Song",
    "StreamEvent",
    "StreamFinished",
    "Settings",
    "resolve_settings",
    "SongRequest",
    "build_request",
    "library",
    "Library",
    "LibraryEntry",
    "CostReport",
    "FunMusicPanel",
    "load_ipython_extension",
    "unload_ipython_extension",
    "__version__",
}


def test_every_name_in_all_is_an_attribute() -> None:
    for name in funmusic_jupyter.__all__:
        assert getattr(funmusic_jupyter, name) is not None, name


def test_all_is_sorted_and_unique() -> None:
    names = list(funmusic_jupyter.__all__)
    assert len(names) == len(set(names))
    assert names == sorted(names)


def test_no_public_name_is_missing() -> None:
    assert EXPECTED <= set(funmusic_jupyter.__all__)


def test_nothing_public_outside_all() -> None:
    public = {
        name
        for name, value in vars(funmusic_jupyter).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in ("annotations", "TYPE_CHECKING", "Any")
    }
    assert public <= set(funmusic_jupyter.__all__)


def test_exported_objects_are_the_private_modules_ones() -> None:
    assert funmusic_jupyter.FunMusicClient is _client.FunMusicClient
    assert funmusic_jupyter.AsyncFunMusicClient is _client.AsyncFunMusicClient
    assert funmusic_jupyter.generate is _api.generate
    assert funmusic_jupyter.astream is _api.astream
    assert funmusic_jupyter.generate_many is _batch.generate_many
    assert funmusic_jupyter.agenerate_many is _batch.agenerate_many
    assert funmusic_jupyter.Song is _models.Song
    assert funmusic_jupyter.APIError is _errors.APIError
