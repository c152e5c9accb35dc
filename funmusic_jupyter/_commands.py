"""``funmusic make`` and ``funmusic batch``: songs from a shell, for scripts.

    funmusic make "Melancholic piano, rainy night yearning" -o rain.mp3
    funmusic batch songs.txt --out songs/ --rpm 60

Why they behave as they do:

- **stdout is for results only.** ``make`` prints the song's path and nothing else, so
  ``f=$(funmusic make …)`` works; ``batch`` prints its summary table there. Notes, progress and
  errors go to stderr, one line each, never a traceback.
- **Exit codes**: 0 done; 1 a song failed at the service (or, in a batch, any line failed or
  was refused); 2 bad usage, which includes a request refused before sending (it cost nothing
  and only the command line can fix it) and a setting that cannot be used.
- **One policy**: ``plan_request``, as in ``%%funmusic``: streamed when the text allows it,
  otherwise made without streaming with a note on stderr; ``--no-stream`` asks for that.
- **Progress** only on a terminal (stderr is a TTY), redrawn in place with ``\\r``; a log file
  or a pipe gets no progress noise.
- **Reuse**: both ask the library's reuse seam (``_batch._find_reusable``) first unless
  ``--fresh``; without the song library installed nothing is reused.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from ._errors import ConfigurationError, FunMusicError, ValidationError
from ._i18n import N_, _
from ._models import AudioChunk, Song
from ._validation import FORMATS, GENDERS, SongRequest

__all__ = ["add_commands"]

# Marked here, translated where the parser is built (inside the command's use_language).
_MAKE_HELP = N_("make one song: print its path (TEXT - reads stdin)")
_MAKE_DESCRIPTION = N_("Make one song: print its path (text - reads stdin).")
_BATCH_HELP = N_("make one song per line of FILE, within the rate limit; print a summary table")
_BATCH_DESCRIPTION = N_(
    "Make one song per line of file, within the rate limit; print a summary table."
)
# _say's kinds, as the user reads them.
_KINDS = {"error": N_("error"), "note": N_("note"), "warning": N_("warning")}


def _lower(value: str) -> str:
    return value.strip().lower()


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            _("must be a whole number >= 1; got {value!r}").format(value=value)
        )
    return number


def _song_options(parser: argparse.ArgumentParser) -> None:
    """The options ``make`` and ``batch`` share (in ``batch``: defaults for every line)."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--lyrics", action="store_true", help=_("the text is lyrics (default: auto)")
    )
    mode.add_argument("--prompt", action="store_true", help=_("the text is a description"))
    parser.add_argument("-g", "--gender", type=_lower, choices=GENDERS, help=_("voice (female)"))
    parser.add_argument(
        "-f", "--format", type=_lower, choices=FORMATS, help=_("audio format (mp3)")
    )
    parser.add_argument("--instrumental", action="store_true", help=_("a song with no vocals"))
    parser.add_argument(
        "--no-stream", action="store_true", help=_("do not stream (longer texts)")
    )
    parser.add_argument("--model", metavar="MODEL", help=_("model name (fun-music-v1)"))
    parser.add_argument(
        "--fresh", action="store_true", help=_("a new take, never a stored song")
    )


def add_commands(commands: Any) -> None:
    """Add ``make`` and ``batch`` to the ``funmusic`` sub-parsers (which share its parser class,
    so a usage error is one line and exit code 2)."""
    make = commands.add_parser(
        "make", help=_(_MAKE_HELP), description=_(_MAKE_DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_(_MAKE_EXAMPLES),
    )
    make.add_argument("text", metavar="TEXT", help=_("lyrics or a description; - reads stdin"))
    _song_options(make)
    make.add_argument(
        "-o", "--output", metavar="PATH",
        help=_("file (its suffix sets the format) or folder; default funmusic-output/"),
    )
    make.set_defaults(run=_make, passthrough=False)

    batch = commands.add_parser(
        "batch", help=_(_BATCH_HELP), description=_(_BATCH_DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_(_BATCH_EXAMPLES),
    )
    batch.add_argument("file", metavar="FILE", help=_("one request a line (- reads stdin)"))
    _song_options(batch)
    batch.add_argument(
        "--concurrency", type=_positive_int, default=4, help=_("songs at once (4)")
    )
    batch.add_argument("--rpm", type=_positive_int, default=180,
                       help=_("requests per minute at most (180, the service's limit)"))
    batch.add_argument("--out", metavar="DIR", help=_("output folder (funmusic-output/)"))
    batch.set_defaults(run=_batch, passthrough=False)


_MAKE_EXAMPLES = N_("""\
examples:
  funmusic make "Melancholic piano, rainy night yearning" -o rain.mp3
  funmusic make --lyrics -g male - < lyrics.txt
  funmusic make "Calm lo-fi beat for studying" --instrumental -f wav
  mpv "$(funmusic make 'Upbeat summer dance, bright synths')"

stdout holds only the song's path; notes and progress go to stderr.
exit codes: 0 done, 1 the song failed (partial audio is saved), 2 bad usage or a refused request
""")

_BATCH_EXAMPLES = N_("""\
examples:
  funmusic batch songs.txt --out songs/
  funmusic batch songs.jsonl --rpm 60 --concurrency 2 -f wav

FILE holds one request a line: plain text (a prompt, or lyrics with --lyrics), or a JSON
object of generate()'s arguments, e.g. {"lyrics": "[verse]\\n...", "gender": "male"}
(tagged lyrics need JSON: a plain line has no room for a tag line).
Blank lines and lines starting with # are skipped. The options are defaults for every line.
The summary table (line, status, seconds, file or error) goes to stdout.
exit codes: 0 every song made, 1 a line was refused or failed (the others are kept), 2 bad usage
""")


# -- shared ---------------------------------------------------------------------------------


def _say(prog: str, kind: str, message: str, stream: TextIO | None = None) -> None:
    # One line, whatever the message holds: a multi-line server text must not break the log.
    text = " ".join(str(message).split())
    kind = _(_KINDS[kind]) if kind in _KINDS else kind
    line = _("{prog}: {kind}: {text}").format(prog=prog, kind=kind, text=text) if kind else None
    (stream or sys.stderr).write(f"{line or f'{prog}: {text}'}\n")


def _fields(opts: argparse.Namespace) -> dict[str, Any]:
    """The request fields the options give (only those given: a line's JSON may set others)."""
    fields: dict[str, Any] = {}
    if opts.lyrics or opts.prompt:
        fields["mode"] = "lyrics" if opts.lyrics else "prompt"
    for name in ("gender", "format", "model"):
        if getattr(opts, name) is not None:
            fields[name] = getattr(opts, name)
    if opts.instrumental:
        fields["instrumental"] = True
    fields["stream"] = False if opts.no_stream else "auto"
    return fields


def _client_setup(prog: str) -> tuple[dict[str, Any], Any]:
    from ._worker import client_options

    options, settings = client_options()
    if settings.backend == "simulator":
        _say(prog, "note", _("no API key configured: the offline simulator makes the songs "
                             "(set DASHSCOPE_API_KEY for Fun-Music)"))
    return options, settings


class _Progress:
    """One status line on stderr, redrawn in place, only when stderr is a terminal."""

    def __init__(self, prog: str) -> None:
        self.prog = prog
        self.on = sys.stderr.isatty()
        self.started = time.monotonic()
        self.shown = False

    def show(self, text: str) -> None:
        if self.on:
            elapsed = time.monotonic() - self.started
            sys.stderr.write(f"\r\x1b[K{self.prog}: {text} ({elapsed:.1f} s)")
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


# -- make -----------------------------------------------------------------------------------


def _target(output: str | None) -> tuple[Path | None, Path, str | None]:
    """(file to write or None, folder, the format the file's suffix names).

    Raises ``ValidationError`` for a file whose suffix is not a format."""
    if output is None:
        return None, Path("funmusic-output"), None
    path = Path(output).expanduser()
    if path.is_dir() or output.endswith(("/", "\\")):
        return None, path, None
    implied = path.suffix.lower().lstrip(".")
    if implied not in FORMATS:
        raise ValidationError(
            _("-o must name a .mp3 or .wav file, or a folder; got {output!r}").format(
                output=output
            )
        )
    return path, path.parent, implied


def _make(opts: argparse.Namespace, rest: list[str]) -> int:
    from ._batch import _find_reusable
    from ._policy import plan_request

    prog = "funmusic make"
    text = sys.stdin.read() if opts.text == "-" else opts.text
    if not text.strip():
        _say(prog, "error", _("TEXT is empty: give lyrics or a description (see --help)"))
        return 2
    try:
        file, folder, implied = _target(opts.output)
    except ValidationError as exc:
        _say(prog, "error", str(exc))
        return 2
    if implied and opts.format and implied != opts.format:
        _say(prog, "error", _("-o {output} is a .{implied} file but -f asks for {format}").format(
            output=opts.output, implied=implied, format=opts.format))
        return 2
    fields = _fields(opts)
    if implied and "format" not in fields:
        fields["format"] = implied
    try:
        request, notes = plan_request(text=text, **fields)
        options, settings = _client_setup(prog)
    except (ValidationError, ConfigurationError) as exc:
        _say(prog, "error", str(exc))
        return 2
    for note in notes:
        _say(prog, "note", note)
    folder.mkdir(parents=True, exist_ok=True)
    if not opts.fresh:
        found = _find_reusable(request, settings, folder.resolve())
        if found is not None and found.saved_path is not None:
            _say(prog, "note", _("reused from {name}, not billed; --fresh makes a new take").format(
                name=found.saved_path.name))
            path = found.save(file) if file is not None else found.saved_path
            sys.stdout.write(f"{path}\n")
            return 0
    return _make_song(prog, request, options, settings.backend == "simulator", file, folder)


def _make_song(prog: str, request: SongRequest, options: Mapping[str, Any], simulated: bool,
               file: Path | None, folder: Path) -> int:
    from ._client import FunMusicClient
    from ._storage import save_partial, save_song

    progress = _Progress(prog)
    stream: Any = None
    try:
        with FunMusicClient(**options) as client:
            if request.stream:
                progress.show(_("waiting for the first audio"))
                with client.stream_request(request) as stream:
                    for event in stream:
                        if isinstance(event, AudioChunk):
                            progress.show(_("{seconds:.0f} s of audio, {mb:.1f} MB").format(
                                seconds=event.seconds_so_far or 0, mb=event.bytes_so_far / 1e6))
                song: Song | None = stream.song
            else:
                progress.show(
                    _("generating (not streamed: the song appears when it is done)")
                )
                song = client.generate_request(request)
            assert song is not None
            progress.clear()
            path = song.save(file) if file is not None else save_song(song, folder)
    except (FunMusicError, KeyboardInterrupt, OSError) as exc:
        progress.clear()
        error: BaseException = exc
        if isinstance(exc, KeyboardInterrupt):
            from ._errors import GenerationCancelled

            error = GenerationCancelled(_("interrupted: the song was stopped"))
        partial = max(getattr(exc, "partial_audio", b"") or b"",
                      bytes(stream.partial_audio) if stream is not None else b"", key=len)
        where = ""
        if partial:
            saved = save_partial(partial, request, error, folder, simulated=simulated,
                                 request_id=getattr(exc, "request_id", None)
                                 or getattr(stream, "request_id", None))
            where = _(" (partial audio saved to {path})").format(path=saved)
        message = exc.one_line() if isinstance(exc, FunMusicError) else str(error)
        _say(prog, "error", message + where)
        return 1
    sys.stdout.write(f"{path}\n")
    return 0


# -- batch ----------------------------------------------------------------------------------


def _read_lines(source: str) -> list[tuple[int, str]]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def _line_request(line: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    if line.startswith("{"):
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                _("a JSON line must be a JSON object; got malformed JSON ({error} at column "
                  "{column})").format(error=exc.msg, column=exc.colno)
            ) from None
        if not isinstance(item, dict):
            raise ValidationError(
                _("a JSON line must be an object; got {type}").format(type=type(item).__name__)
            )
        return {**defaults, **item}
    return {**defaults, "text": line}


def _batch(opts: argparse.Namespace, rest: list[str]) -> int:
    import anyio

    from ._batch import RateLimiter, _one_request, _run
    from ._storage import output_directory

    prog = "funmusic batch"
    try:
        lines = _read_lines(opts.file)
    except (OSError, UnicodeDecodeError) as exc:
        _say(prog, "error", _("cannot read {file}: {reason}").format(
            file=opts.file, reason=getattr(exc, "strerror", None) or exc))
        return 2
    if not lines:
        _say(prog, "error", _("{file} holds no request (one a line; # starts a comment)").format(
            file=opts.file))
        return 2
    defaults = _fields(opts)
    prepared: list[tuple[SongRequest, Mapping[str, str] | None]] = []
    numbers: list[int] = []
    refused: dict[int, str] = {}
    for number, line in lines:
        try:
            request, headers, notes = _one_request(_line_request(line, defaults))
        except ValidationError as exc:
            refused[number] = str(exc)
            _say(prog, "error", _("line {number}: {text}").format(number=number, text=exc))
            continue
        for note in notes:
            _say(prog, "note", _("line {number}: {text}").format(number=number, text=note))
        prepared.append((request, headers))
        numbers.append(number)
    try:
        options, settings = _client_setup(prog)
        folder = output_directory(opts.out).resolve()
    except (ConfigurationError, OSError) as exc:
        _say(prog, "error", str(exc))
        return 2
    progress = _Progress(prog)
    counts = {"ok": 0, "failed": 0}

    def on_result(index: int, result: Song | Exception) -> None:
        counts["failed" if isinstance(result, Exception) else "ok"] += 1
        progress.show(_("{finished}/{total} finished, {failed} failed").format(
            finished=counts["ok"] + counts["failed"], total=len(prepared), failed=counts["failed"]))

    results: list[Song | Exception] = []
    if prepared:
        progress.show(_("{finished}/{total} finished").format(finished=0, total=len(prepared)))
        run = functools.partial(
            _run, prepared, options=options, settings=settings,
            limiter=RateLimiter(opts.rpm), concurrency=opts.concurrency, output_dir=folder,
            headers=None, reuse=not opts.fresh, on_result=on_result,
        )
        try:
            results = anyio.run(run)
        except KeyboardInterrupt:
            progress.clear()
            _say(prog, "error", _("interrupted: the batch was stopped"))
            return 1
        progress.clear()
    _summary(lines, dict(zip(numbers, results, strict=True)), refused, sys.stdout)
    return 1 if refused or any(isinstance(r, Exception) for r in results) else 0


def _summary(lines: list[tuple[int, str]], results: Mapping[int, Song | Exception],
             refused: Mapping[int, str], out: TextIO) -> None:
    # Stays English: the table on stdout is for scripts (its statuses are values, not prose).
    rows = [("LINE", "STATUS", "SECONDS", "FILE OR ERROR")]
    for number, _line in lines:
        result = results.get(number)
        if number in refused:
            rows.append((str(number), "refused", "-", " ".join(refused[number].split())))
        elif isinstance(result, Song):
            rows.append((str(number), "ok", f"{result.duration:g}", str(result.saved_path)))
        elif isinstance(result, Exception):
            what = result.one_line() if isinstance(result, FunMusicError) else repr(result)
            partial = getattr(result, "partial_path", None)
            what += f" (partial: {partial})" if partial else ""
            rows.append((str(number), "failed", "-", " ".join(what.split())))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        out.write("  ".join([*cells, row[3]]) + "\n")
    songs = [r for r in results.values() if isinstance(r, Song)]
    failed = sum(isinstance(r, Exception) for r in results.values())
    seconds = sum(song.duration for song in songs)
    out.write(f"{len(songs)} made ({seconds:g} s of audio), {failed} failed, "
              f"{len(refused)} refused\n")

