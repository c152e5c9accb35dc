"""``funmusic list`` and ``funmusic cost``: the song library and its spending, from a shell.

    funmusic list 10                 # the ten newest songs in ./funmusic-output
    funmusic cost --dir songs/       # billed seconds and cost per day, simulator apart
    funmusic list --json | jq .      # the same data for scripts

Both read only the output directory (``fm.library()``), so they work with no key and send
nothing. The tables are the ``text/plain`` forms the notebook shows (``repr`` of ``Library``
and ``CostReport``), so a shell and a notebook say the same. A sidecar that cannot be read is
skipped with one warning line on stderr, as ``fm.library()`` warns, and the rest is listed.
Exit codes: 0 listed (also an empty or missing folder: "no songs yet" is an answer), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

from ._commands import _positive_int, _say
from ._i18n import N_, _
from ._library import Library, LibraryEntry, library

__all__ = ["add_library_commands"]

_LIST_HELP = N_("list the songs saved in the output folder, newest first")
_LIST_DESCRIPTION = N_("List the songs saved in the output folder, newest first.")
_COST_HELP = N_("billed seconds and cost per day and in total (the simulator is free)")
_COST_DESCRIPTION = N_("Billed seconds and cost per day and in total (the simulator is free).")

_LIST_EXAMPLES = N_("""\
examples:
  funmusic list                 every song in ./funmusic-output
  funmusic list 5 --dir songs/  the five newest in songs/
  funmusic list --json          one JSON object per song, for scripts

Nothing is sent: the list comes from the songs' sidecars (.json beside each audio file).
""")

_COST_EXAMPLES = N_("""\
examples:
  funmusic cost
  funmusic cost --dir songs/ --json
  funmusic cost --price-per-second 0.002 --currency CNY

Cost is billed seconds x the price per second; partial songs are not counted (their billed
length is unknown). Songs made by the simulator are free and shown apart.
""")


def _price(value: str) -> float:
    try:
        price = float(value)
    except ValueError:
        price = -1.0
    if not price >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(
            _("must be a number >= 0; got {value!r}").format(value=value)
        )
    return price


def _shared(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", metavar="DIR", help=_("output folder (./funmusic-output)"))
    parser.add_argument("--json", action="store_true", help=_("JSON for scripts, not a table"))
    parser.add_argument("--price-per-second", type=_price, default=0.002, metavar="PRICE",
                        help=_("price of a second of audio (0.002)"))
    parser.add_argument("--currency", default="CNY", help=_("currency of the price (CNY)"))


def add_library_commands(commands: Any) -> None:
    """Add ``list`` and ``cost`` to the ``funmusic`` sub-parsers."""
    listing = commands.add_parser(
        "list", help=_(_LIST_HELP), description=_(_LIST_DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_(_LIST_EXAMPLES),
    )
    listing.add_argument("count", metavar="N", nargs="?", type=_positive_int,
                         help=_("only the N newest songs"))
    _shared(listing)
    listing.set_defaults(run=_list, passthrough=False)

    cost = commands.add_parser(
        "cost", help=_(_COST_HELP), description=_(_COST_DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_(_COST_EXAMPLES),
    )
    _shared(cost)
    cost.set_defaults(run=_cost, passthrough=False)


def _library(prog: str, opts: argparse.Namespace) -> Library:
    # fm.library() warns once per unreadable sidecar: each becomes one line on stderr.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        songs = library(opts.dir, price_per_second=opts.price_per_second,
                        currency=opts.currency)
    for warning in caught:
        _say(prog, "warning", str(warning.message))
    return songs


def _entry_json(entry: LibraryEntry, songs: Library) -> dict[str, Any]:
    return {
        "path": str(entry.path),
        "title": entry.title,
        "when": entry.when.isoformat(),
        "model": entry.model,
        "mode": entry.mode,
        "gender": entry.gender,
        "instrumental": entry.instrumental,
        "format": entry.format,
        "duration": entry.duration,
        "cost": entry.cost(songs.price_per_second),
        "currency": songs.currency,
        "simulated": entry.simulated,
        "partial": entry.partial,
        "request_id": entry.request_id,
    }


def _list(opts: argparse.Namespace, rest: list[str]) -> int:
    songs = _library("funmusic list", opts)
    if opts.count:
        songs = songs.head(opts.count)
    if opts.json:
        for entry in songs:
            sys.stdout.write(json.dumps(_entry_json(entry, songs), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(songs.text() + "\n")  # repr's table, in the command's language
    return 0


def _cost(opts: argparse.Namespace, rest: list[str]) -> int:
    report = _library("funmusic cost", opts).cost(session=False)
    if opts.json:
        days = [
            {"day": day.isoformat(), "songs": d.songs, "billed_seconds": round(d.billed_seconds, 6),
             "cost": round(d.cost, 6), "simulated_songs": d.simulated_songs,
             "simulated_seconds": round(d.simulated_seconds, 6)}
            for day, d in report.days.items()
        ]
        total = {"billed_seconds": report.billed_seconds, "cost": report.cost,
                 "simulated_seconds": report.simulated_seconds,
                 "partial_songs_not_counted": report.partial_songs,
                 "currency": report.currency, "price_per_second": report.price_per_second}
        sys.stdout.write(json.dumps({"days": days, "total": total}, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(report.text() + "\n")
    return 0
