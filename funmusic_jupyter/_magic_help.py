"""``%%funmusic?``: the magic's help, in the magic's language.

IPython builds a magic's help once, when the class is defined (``magic_arguments`` replaces the
docstring with argparse's help). That English text stays the function's ``__doc__``. For another
language, IPython's inspector first asks the object for ``getdoc()`` (``oinspect.getdoc``): the
magic's function gets one (``install``) that builds the same help from the translated
description and option texts, in the language the loaded ``FunMusicMagics`` speaks, and
returns None in English so the inspector shows ``__doc__`` exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core import magic_arguments as _ma

from ._i18n import N_, _, localise_argparse, resolve_language, use_language

__all__ = ["MAGIC_DOC", "OPTIONS", "install", "localised_help", "with_doc"]

MAGIC_DOC = N_(
    """Make a song from the cell: lyrics (with [verse]/[chorus] tags) or a description.

The cell returns at once; the song streams in below it, then turns into a player with
the lyrics and a table of details. Every song, and every stopped or failed one, is saved
in ./funmusic-output/ with a JSON sidecar before it is shown.

Examples::

    %%funmusic
    Melancholic piano, rainy night, yearning

    %%funmusic --gender male --format wav --no-stream --out song
    [verse]
    Streetlights hum a quiet tune
    [chorus]
    Stay, stay until the morning

    %%funmusic --wait --save my-song.mp3
    A cheerful ukulele song about breakfast

    %funmusic status        # running, done and failed songs
    %funmusic stop 2        # stop song 2 (or all running songs: %funmusic stop)
    %funmusic config        # effective settings (the API key only as present/absent)
    %funmusic list 10       # the ten newest songs in the output directory
    %funmusic cost          # billed seconds and cost per day, and this session's

An unchanged cell run again shows the song already saved for it ("reused from …, not
billed"), with nothing sent; ``--fresh`` makes a new take and keeps the old one
(``%config FunMusicMagics.reuse = False`` turns reuse off).

Defaults: ``%config FunMusicMagics.gender = "male"`` (also format, stream, backend,
base_url, endpoint, output_dir, price_per_second, currency, connect_timeout,
read_timeout, idle_timeout, reuse, budget, embed_limit, language: en, zh or auto). WAV
songs over embed_limit are embedded as an MP3 preview. The cell body is sent exactly as
typed: no ``{}`` or ``$`` expansion.
"""
)

#: The options' help texts, as ``_magics``' ``@argument`` decorators use them (English).
OPTIONS = {
    "gender": N_("Voice (default: female)."),
    "format": N_("Audio format (default: mp3)."),
    "lyrics": N_("The cell is lyrics (default: auto)."),
    "prompt": N_("The cell is a description (default: auto)."),
    "instrumental": N_("A song with no vocals."),
    "stream": N_("Insist on streaming (else: when it can)."),
    "no_stream": N_("Generate, then download: longer texts."),
    "wait": N_("Block until done; show the result once."),
    "fresh": N_("Make a new take even if one is saved."),
    "autoplay": N_("Play as soon as the first audio arrives."),
    "out": N_("Bind the Song to NAME in the notebook."),
    "save": N_("Also save the audio (and sidecar) to PATH."),
    "model": N_("Model name (default: fun-music-v1)."),
    "backend": N_("Backend."),
    "fault": N_("Simulator fault injection, e.g. drop-after=3."),
}

_F = Callable[..., Any]
# IPython ships these untyped; typed aliases keep the rest of the module checked.
_argument: Callable[..., Any] = _ma.argument
_construct_parser: Callable[[Any], Any] = _ma.construct_parser


def with_doc(func: _F) -> _F:
    """The innermost decorator of the magic: its English description (``magic_arguments``,
    applied after it, turns it into the full help)."""
    func.__doc__ = MAGIC_DOC
    return func


def localised_help(func: _F, language: object) -> str:
    """The full help of the magic ``func`` in ``language``: the same parser, rebuilt with the
    translated description and option texts (argparse's own words follow too)."""
    localise_argparse()
    with use_language(language):

        def magic() -> None:
            pass  # stands in for ``func``: construct_parser writes its help into __doc__

        magic.__name__ = func.__name__
        magic.__doc__ = _(MAGIC_DOC)
        setattr(magic, "argcmd_kwds", {})  # noqa: B010 - IPython reads it by that name
        setattr(  # noqa: B010
            magic,
            "decorators",
            [
                _argument(*d.args, **{**d.kwds, "help": _(d.kwds["help"])})
                if "help" in d.kwds
                else d
                for d in getattr(func, "decorators")  # noqa: B009
            ],
        )
        _construct_parser(magic)
        return str(magic.__doc__)


def install(func: _F, language: Callable[[], object]) -> None:
    """Give the magic's function a ``getdoc()`` for IPython's inspector: the help in
    ``language()`` (the loaded magics' setting), or None (the English ``__doc__``) in English."""

    def getdoc() -> str | None:
        chosen = resolve_language(language())
        return None if chosen == "en" else localised_help(func, chosen)

    setattr(func, "getdoc", getdoc)  # noqa: B010
