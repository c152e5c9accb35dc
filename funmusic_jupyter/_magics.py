"""``%%funmusic`` and ``%funmusic``: make a song from a cell, watch it stream in, play it inline.

Thin on purpose: parse the line, validate the request (nothing is sent if it is wrong), hand the
song to the shared background worker (``_worker``), render with the one renderer (``_render``).

Errors, and why they look the way they do:

- A bad option, an unknown subcommand or an empty cell is a ``UsageError``: one line, the
  IPython convention for "you typed the command wrong".
- A request the service would refuse (too long for streaming, Japanese lyrics…) raises the same
  ``ValidationError`` the Python API raises; like every ``FunMusicError`` it renders as one line
  (``_render_traceback_``). It is a real error, not a usage message, on purpose: nbclient and
  nbval both see it (a ``UsageError`` sends no ``error`` message, so nbval would pass it), and a
  teaching notebook can show it in a cell tagged ``raises-exception``.
- A song that fails at the service shows an error box in its output, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import keyword
import queue
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from IPython.core import magic_arguments as _ma
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import DisplayHandle
from IPython.display import display as _ipython_display
from traitlets import Bool, CaselessStrEnum, Float, Int, TraitError, Unicode, validate

from . import _magic_help, _render
from ._config import Settings, resolve_settings
from ._errors import GenerationCancelled, quote
from ._i18n import (
    LANGUAGES,
    N_,
    _,
    configured_language,
    current_language,
    localise_argparse,
    use_language,
)
from ._library import Library, find_reusable, library, reuse_note
from ._live_session import LiveSession
from ._models import Song
from ._policy import StreamPreference, plan_request
from ._spending import check_budget
from ._validation import FORMATS, GENDERS, PREVIEW_MODEL, SongRequest
from ._worker import FINAL_STATES, Job, client_options, current_worker, get_worker

__all__ = ["FunMusicMagics", "load_ipython_extension", "unload_ipython_extension"]

_F = TypeVar("_F", bound=Callable[..., Any])
# IPython ships these untyped; typed aliases keep the rest of the module checked.
display: Callable[..., Any] = _ipython_display
argument: Callable[..., Callable[[_F], _F]] = _ma.argument
magic_arguments: Callable[..., Callable[[_F], _F]] = _ma.magic_arguments

_HELP_HINT = N_("see %%funmusic? for the options")
_OPT = _magic_help.OPTIONS
_SUBCOMMANDS = "status, stop [ID], config, list [N], cost"
# A song can take minutes; how long ``%funmusic stop`` and an interrupt wait for the job to
# close its stream and save its partial audio before giving up waiting (the job still ends).
_STOP_WAIT = 15.0


class _OptionParser(argparse.ArgumentParser):
    """argparse that never exits and never prints: every problem is a one-line UsageError."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%%funmusic: {' '.join(message.split())} ({_(_HELP_HINT)})")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        message = message or _("bad options")
        raise UsageError(f"%%funmusic: {' '.join(message.split())}")


def _lower(value: str) -> str:
    return value.strip().lower()


@magics_class
class FunMusicMagics(Magics):
    """Defaults for ``%%funmusic``; set them with ``%config FunMusicMagics.<name> = value``
    or in ``ipython_config.py`` (``c.FunMusicMagics.gender = "male"``)."""

    gender = CaselessStrEnum(GENDERS, default_value="female", help="Voice: female or male.").tag(
        config=True
    )
    format = CaselessStrEnum(FORMATS, default_value="mp3", help="Audio format: mp3 or wav.").tag(
        config=True
    )
    stream = Bool(
        True,
        help="Stream when the text allows it, else generate then download, with a note; "
        "False never streams.",
    ).tag(config=True)
    model = Unicode("fun-music-v1", help="Model name.").tag(config=True)
    backend = CaselessStrEnum(
        ("auto", "api", "simulator"),
        default_value="auto",
        help="api, simulator, or auto (the API when a key or base URL is set).",
    ).tag(config=True)
    base_url = Unicode(
        "", help="Base URL up to /api/v1; empty: DASHSCOPE_HTTP_BASE_URL or the default."
    ).tag(config=True)
    endpoint = Unicode(
        "", help="Endpoint path or short name (generation, speech-synthesizer); empty: default."
    ).tag(config=True)
    output_dir = Unicode(
        "funmusic-output", help="Where every song and partial song is saved (with a sidecar)."
    ).tag(config=True)
    price_per_second = Float(0.002, help="Price per second of audio, for the cost shown.").tag(
        config=True
    )
    currency = Unicode("CNY", help="Currency of price_per_second.").tag(config=True)
    connect_timeout = Float(10.0, help="Seconds to wait for a connection.").tag(config=True)
    read_timeout = Float(
        600.0, help="Seconds to wait for a song that is not streamed (generation takes a while)."
    ).tag(config=True)
    idle_timeout = Float(60.0, help="Seconds to wait between stream events.").tag(config=True)
    autoplay = Bool(
        False, help="Start playing a streamed song as soon as its first audio arrives."
    ).tag(config=True)
    live_player = Bool(
        True,
        help="Play a streamed song while it arrives (a widget); False: the player comes at the "
        "end, for front ends without ipywidgets support.",
    ).tag(config=True)
    progress_interval = Float(
        0.25, help="Minimum seconds between two progress updates of a cell's output."
    ).tag(config=True)
    reuse = Bool(
        True,
        help="Show the song already saved for the same request (model, text, voice, format, "
        "backend…) instead of paying for it again; --fresh makes a new take anyway.",
    ).tag(config=True)
    budget = Float(
        None,
        allow_none=True,
        help="Refuse new requests to the real service once this kernel session has spent this "
        "much (in the currency); None: no budget. The simulator is free.",
    ).tag(config=True)
    language = CaselessStrEnum(
        LANGUAGES,
        default_value="auto",
        help="What the magic's output, notes and messages are written in: en, zh, or auto "
        "(FUNMUSIC_LANGUAGE when set, else the kernel's locale: LC_ALL, LC_MESSAGES, LANG).",
    ).tag(config=True)
    embed_limit = Int(
        _render.DEFAULT_EMBED_LIMIT,
        help="WAV songs over this many bytes are embedded in the notebook as an MP3 preview, "
        "with a link to the full WAV on disk (MP3 songs are always embedded whole).",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        # Finished background songs waiting to be shown by the main thread (terminal only).
        self._finished: queue.SimpleQueue[tuple[DisplayHandle, dict[str, str]]] = (
            queue.SimpleQueue()
        )

    def _show_finished(self, result: object = None) -> None:
        """``post_run_cell`` hook: show, from the main thread, songs that finished meanwhile."""
        while True:
            try:
                handle, bundle = self._finished.get_nowait()
            except queue.Empty:
                return
            show: Callable[..., Any] = handle.update  # IPython's DisplayHandle is untyped
            show(bundle, raw=True)

    @validate(
        "price_per_second", "connect_timeout", "read_timeout", "idle_timeout", "progress_interval"
    )
    def _non_negative(self, proposal: Any) -> float:
        value = float(proposal["value"])  # NaN is refused too: it is not >= 0
        if value < 0:
            name = proposal["trait"].name
            with use_language(self.language):  # %config runs outside the magic's cells
                raise TraitError(
                    _("FunMusicMagics.{name} must be >= 0; got {value}").format(
                        name=name, value=quote(value)
                    )
                )
        return value

    @validate("budget")
    def _budget_non_negative(self, proposal: Any) -> float | None:
        if proposal["value"] is None:
            return None
        value = float(proposal["value"])
        if not value >= 0:  # NaN too
            with use_language(self.language):
                raise TraitError(
                    _("FunMusicMagics.budget must be >= 0 or None; got {value}").format(
                        value=quote(value)
                    )
                )
        return value

    @validate("embed_limit")
    def _embed_limit_non_negative(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 0:
            with use_language(self.language):
                raise TraitError(
                    _("FunMusicMagics.embed_limit must be >= 0 bytes; got {value}").format(
                        value=quote(value)
                    )
                )
        return value

    # -- the magic ---------------------------------------------------------------------------
    @line_cell_magic
    @magic_arguments()
    # Option texts: _magic_help.OPTIONS (marked for the catalogue; %%funmusic? translates them).
    @argument("-g", "--gender", type=_lower, choices=GENDERS, help=_OPT["gender"])
    @argument("-f", "--format", type=_lower, choices=FORMATS, help=_OPT["format"])
    @argument("--lyrics", action="store_true", help=_OPT["lyrics"])
    @argument("--prompt", action="store_true", help=_OPT["prompt"])
    @argument("--instrumental", action="store_true", help=_OPT["instrumental"])
    @argument("--stream", action="store_true", help=_OPT["stream"])
    @argument("--no-stream", action="store_true", help=_OPT["no_stream"])
    @argument("--wait", action="store_true", help=_OPT["wait"])
    @argument("--fresh", action="store_true", help=_OPT["fresh"])
    @argument("--autoplay", action="store_true", help=_OPT["autoplay"])
    @argument("--out", metavar="NAME", help=_OPT["out"])
    @argument("--save", metavar="PATH", help=_OPT["save"])
    @argument("--model", metavar="MODEL", help=_OPT["model"])
    @argument("--backend", type=_lower, choices=("auto", "api", "simulator"), help=_OPT["backend"])
    @argument("--fault", metavar="SPEC", help=_OPT["fault"])
    @_magic_help.with_doc  # the description: _magic_help.MAGIC_DOC (translated for %%funmusic?)
    def funmusic(self, line: str, cell: str | None = None) -> None:
        # Everything this cell shows speaks the magic's language; a song's later updates come
        # from the worker thread and carry the language with them (see _cell's update()).
        with use_language(self.language):
            if cell is None:
                self._line(line)
            else:
                self._cell(line, cell)

    # -- cell ----------------------------------------------------------------------------------
    def _parse(self, line: str) -> argparse.Namespace:
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(
                _("%%funmusic: cannot split the options: {error} ({hint})").format(
                    error=exc, hint=_(_HELP_HINT)
                )
            ) from None
        localise_argparse()  # argparse's own messages ("invalid choice…") in our language
        opts = _PARSER.parse_args(argv)
        for a, b in (("lyrics", "prompt"), ("stream", "no_stream")):
            if getattr(opts, a) and getattr(opts, b):
                raise UsageError(
                    _("%%funmusic: use {a} or {b}, not both").format(
                        a="--" + a.replace("_", "-"), b="--" + b.replace("_", "-")
                    )
                )
        if opts.out is not None and (not opts.out.isidentifier() or keyword.iskeyword(opts.out)):
            raise UsageError(
                _("%%funmusic: --out needs a Python variable name; got {value}").format(
                    value=quote(opts.out)
                )
            )
        return opts

    def _request(self, opts: argparse.Namespace, cell: str) -> tuple[SongRequest, list[str]]:
        """The validated request, and notes about it (its warnings, then the policy's)."""
        mode = "lyrics" if opts.lyrics else "prompt" if opts.prompt else "auto"
        # The body goes in untouched: no str.format, no $-expansion (IPython expands the line only).
        model = opts.model or self.model
        # fun-music-preview takes no gender: the trait is a default, not a choice for this cell,
        # so it is left out for that model; an explicit --gender is passed on (and refused).
        default_gender = None if model.strip() == PREVIEW_MODEL else self.gender
        fields: dict[str, Any] = {
            "text": cell,
            "gender": opts.gender or default_gender,
            "format": opts.format or self.format,
            "model": model,
            "mode": mode,
            "instrumental": opts.instrumental,
        }
        # The shared policy (_policy): --stream insists, --no-stream (or the trait set to False)
        # never streams, and otherwise streaming is preferred, falling back with a note.
        stream: StreamPreference = (
            True if opts.stream else False if opts.no_stream or not self.stream else "auto"
        )
        request, notes = plan_request(stream=stream, **fields)  # notes: warnings too
        return request, list(notes)

    def _client_options(self, backend: str) -> tuple[dict[str, Any], Settings, list[str]]:
        """Keyword arguments for the client, and notes about them. Raises ConfigurationError
        (one line) now, in the cell, rather than later in the background."""
        options, settings = client_options(
            base_url=self.base_url.strip() or None,
            endpoint=self.endpoint.strip() or None,
            backend=backend,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            idle_timeout=self.idle_timeout,
        )
        notes = []
        if backend == "auto" and settings.backend == "simulator":
            notes.append(
                _(
                    "no API key configured: the offline simulator makes this song "
                    "(set DASHSCOPE_API_KEY for Fun-Music)"
                )
            )
        return options, settings, notes

    def _cell(self, line: str, cell: str) -> None:
        opts = self._parse(line)
        if not cell.strip():
            raise UsageError(
                _("%%funmusic needs lyrics or a description in the cell body; got an empty cell")
            )
        request, read_notes = self._request(opts, cell)  # ValidationError: one line, nothing sent
        options, settings, notes = self._client_options(opts.backend or self.backend)
        notes = read_notes + notes
        output_dir = Path(self.output_dir or "funmusic-output").expanduser().resolve()
        # The one reuse check and the one budget check (_library, _spending), as in the panel
        # and the Python API. A reused song is shown at once: nothing streams, nothing is sent.
        # --fault asks the simulator to misbehave: that is never answered from disk.
        if self.reuse and not opts.fresh and not opts.fault:
            found = find_reusable(request, settings, output_dir)
            if found is not None:
                reused = [*request.warnings, reuse_note(found)]
                display(self._song_bundle(found, opts, reused), raw=True)
                return
        check_budget(
            backend=settings.backend,
            budget=self.budget,
            price_per_second=self.price_per_second,
            currency=self.currency,
        )
        headers = None
        if opts.fault:
            from .simulator import FAULT_HEADER

            headers = {FAULT_HEADER: opts.fault}
        worker = get_worker()

        if opts.wait:
            job = worker.submit(
                request, client_options=options, output_dir=output_dir, headers=headers
            )
            try:
                while not job.wait(0.2):
                    pass
            except KeyboardInterrupt:
                job.cancel()
                job.wait(_STOP_WAIT)
                display(self._final_bundle(job, opts, notes), raw=True)
                where = (
                    _("; partial audio saved to {path}").format(path=job.partial_path)
                    if job.partial_path
                    else ""
                )
                raise GenerationCancelled(
                    _("interrupted: the song was stopped{where}").format(where=where)
                ) from None
            # nbval-friendly: one display of the final result, no progress, no updates.
            display(self._final_bundle(job, opts, notes), raw=True)
            return

        handle = display(
            _progress_bundle(request, notes, state="queued"), raw=True, display_id=True
        )
        assert isinstance(handle, DisplayHandle)
        show: Callable[..., Any] = handle.update

        # Only a kernel's front end redraws a display in place. In a terminal an update is a
        # print, and a worker thread never prints: there the result waits for the main thread,
        # which shows it after the next cell (_show_finished), as a shell reports a done job.
        live = getattr(self.shell, "kernel", None) is not None
        # A streamed song plays while it arrives: a live player under the progress line, which
        # hands playback over to the card when the song ends (see _live_session).
        session = (
            LiveSession(request, autoplay=bool(opts.autoplay or self.autoplay))
            if live and request.stream and self.live_player
            else None
        )
        live_handle: Any = display(session.player, display_id=True) if session else None

        language = current_language()

        def update(job: Job, event: str) -> None:
            # Runs on the worker thread: a display-id update is the one safe way to show it.
            with use_language(language):
                _update(job, event)

        def _update(job: Job, event: str) -> None:
            if event == "finished":
                handoff_id = session.handoff_id if session else None
                bundle = self._final_bundle(job, opts, notes, handoff_id=handoff_id)
                if not live:
                    self._finished.put((handle, bundle))
                    return
                show(bundle, raw=True)  # the card first, then the player may go
                if session is not None:
                    session.complete(
                        job,
                        # An empty output in place of the widget: a saved notebook keeps no
                        # widget view that would say "model not found" once the kernel is gone.
                        lambda: live_handle.update({"text/plain": ""}, raw=True),
                        call_later=worker.call_later,
                    )
            elif live:
                show(_progress_bundle(request, notes, job=job), raw=True)

        worker.submit(
            request,
            client_options=options,
            output_dir=output_dir,
            headers=headers,
            listener=update,
            min_interval=self.progress_interval,
            audio_listener=session.feed if session else None,
        )

    def _final_bundle(
        self,
        job: Job,
        opts: argparse.Namespace,
        notes: Sequence[str],
        *,
        handoff_id: str | None = None,
    ) -> dict[str, str]:
        """Finish a job for the user (--save copy, --out binding) and render it."""
        notes = list(notes)
        if job.save_error is not None:
            notes.append(_render.save_failed_note(job.save_error))
        song = job.song
        if song is None:
            assert job.error is not None
            return _render.error_bundle(
                job.error,
                partial_path=job.partial_path,
                title=job.request.text,
                notes=notes,
                fmt=job.request.format,
                embed_limit=self.embed_limit,
                handoff_id=handoff_id,
            )
        also_saved: list[Path] = [job.saved_path] if job.saved_path else []
        return self._song_bundle(
            song, opts, notes, also_saved=also_saved, handoff_id=handoff_id
        )

    def _song_bundle(
        self,
        song: Song,
        opts: argparse.Namespace,
        notes: Sequence[str],
        *,
        also_saved: Sequence[Path] = (),
        handoff_id: str | None = None,
    ) -> dict[str, str]:
        """--save a copy, bind --out, render: for a new song and for a reused one alike."""
        notes = list(notes)
        if opts.save:
            try:
                song.save(opts.save)
            except OSError as exc:
                notes.append(
                    _("--save {path} failed: {reason}").format(
                        path=quote(opts.save), reason=exc.strerror or exc
                    )
                )
        if opts.out:
            assert self.shell is not None
            self.shell.user_ns[opts.out] = song
        return _render.song_bundle(
            song,
            price_per_second=self.price_per_second,
            currency=self.currency,
            notes=notes,
            also_saved=also_saved,
            embed_limit=self.embed_limit,
            handoff_id=handoff_id,
        )

    # -- line ------------------------------------------------------------------------------------
    def _line(self, line: str) -> None:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(
                _("%funmusic: cannot split {line}: {error}").format(line=quote(line), error=exc)
            ) from None
        command, args = (words[0].lower(), words[1:]) if words else ("help", [])
        if command == "status" and not args:
            self._status()
        elif command == "stop" and len(args) <= 1:
            self._stop(args[0] if args else None)
        elif command == "config" and not args:
            self._config()
        elif command == "list" and len(args) <= 1:
            self._list(args[0] if args else None)
        elif command == "cost" and not args:
            display(self._library().cost())
        elif command in ("help", "-h", "--help") and not args:
            display({"text/plain": self._usage()}, raw=True)
        elif command.startswith("-"):
            raise UsageError(
                _(
                    "%funmusic: options belong to the cell magic: write %%funmusic {options} "
                    "and the lyrics or description below it"
                ).format(options=line.strip())
            )
        else:
            raise UsageError(
                _("%funmusic: expected one of {commands}; got {value}").format(
                    commands=_SUBCOMMANDS, value=quote(line.strip())
                )
            )

    def _usage(self) -> str:
        return _(
            "%%funmusic [options] + lyrics or a description in the cell: make a song.\n"
            "%funmusic {{{commands}}}: list, stop or configure. Full help: %%funmusic?"
        ).format(commands=_SUBCOMMANDS)

    def _status(self) -> None:
        worker = current_worker()
        jobs = worker.jobs() if worker else []
        display(
            {"text/plain": _render.status_text(jobs), "text/html": _render.status_html(jobs)},
            raw=True,
        )

    def _stop(self, job_id: str | None) -> None:
        worker = current_worker()
        jobs = worker.jobs() if worker else []
        if job_id is not None:
            chosen = [j for j in jobs if j.id == job_id]
            if not chosen:
                known = ", ".join(j.id for j in jobs) or _("none yet")
                raise UsageError(
                    _("%funmusic stop: no song {id}; songs: {known}").format(
                        id=quote(job_id), known=known
                    )
                )
            if not chosen[0].running:
                already = _("song {id} is already {state}").format(
                    id=job_id, state=_render.state_text(chosen[0].state)
                )
                display({"text/plain": already}, raw=True)
                return
        else:
            chosen = [j for j in jobs if j.running]
        stopped = [job for job in chosen if job.cancel()]
        lines = []
        for job in stopped:
            job.wait(_STOP_WAIT)
            lines.append(
                _("Song {id}: {what}").format(id=job.id, what=_render.stopped_text(job))
            )
        display({"text/plain": "\n".join(lines) or _("no song is running")}, raw=True)

    def _library(self) -> Library:
        return library(
            self.output_dir or "funmusic-output",
            price_per_second=self.price_per_second,
            currency=self.currency,
        )

    def _list(self, count: str | None) -> None:
        if count is not None and not (count.isdigit() and int(count) > 0):
            raise UsageError(
                _("%funmusic list: N must be a whole number > 0; got {value}").format(
                    value=quote(count)
                )
            )
        songs = self._library()
        display(songs.head(int(count)) if count else songs)

    def _config(self) -> None:
        rows: dict[str, Any] = {
            # An empty string means "from the environment, else the default": say so.
            name: getattr(self, name) if getattr(self, name) != "" else _("(not set)")
            for name in (
                "gender",
                "format",
                "stream",
                "model",
                "backend",
                "base_url",
                "endpoint",
                "output_dir",
                "price_per_second",
                "currency",
                "connect_timeout",
                "read_timeout",
                "idle_timeout",
                "progress_interval",
                "embed_limit",
                "autoplay",
                "live_player",
                "reuse",
                "budget",
                "language",
            )
        }
        rows["output_dir"] = f"{self.output_dir} ({Path(self.output_dir).expanduser().resolve()})"
        try:
            settings = resolve_settings(
                base_url=self.base_url.strip() or None,
                endpoint=self.endpoint.strip() or None,
                backend=self.backend,
            )
        except Exception as exc:  # ConfigurationError: say so, in the table
            rows["effective connection"] = _("not usable: {error}").format(error=exc)
        else:
            # describe() shows the key only as present/absent and where it came from.
            rows.update({f"effective {k}": v for k, v in settings.describe().items()})
        display(
            {"text/plain": _render.settings_text(rows), "text/html": _render.settings_html(rows)},
            raw=True,
        )


def _build_parser() -> _OptionParser:
    # One definition of the options: the @argument decorators above (which also write the
    # %%funmusic? help). Our own parser class is filled from them, so it never exits.
    parser = _OptionParser(prog="%%funmusic", add_help=False, allow_abbrev=False)
    group = None
    decorators: list[Any] = getattr(FunMusicMagics.funmusic, "decorators")  # noqa: B009
    for deco in decorators[::-1]:
        result = deco.add_to_parser(parser, group)
        if result is not None:
            group = result
    return parser


_PARSER = _build_parser()


# The loaded magics' setting, read when %%funmusic? is asked.
_magic_help.install(FunMusicMagics.funmusic, configured_language)


def _progress_bundle(
    request: SongRequest, notes: Sequence[str], *, job: Job | None = None, state: str = "queued"
) -> dict[str, str]:
    if job is None:
        html = _render.progress_html(
            title=request.text, state=state, notes=notes, streaming=request.stream
        )
    else:
        html = _render.progress_html(
            title=request.text,
            state=job.state if job.state not in FINAL_STATES else "saving",
            seconds=job.seconds,
            chunks=job.chunks,
            bytes_received=job.bytes_received,
            elapsed=job.elapsed,
            job_id=job.id,
            notes=notes,
            streaming=request.stream,
        )
    return {"text/plain": _render.progress_text(title=request.text, notes=notes), "text/html": html}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext funmusic_jupyter``: register ``%%funmusic`` and ``%funmusic``."""
    # Registered as a class: IPython makes the shell its parent, so %config and
    # ipython_config.py reach its traits.
    ipython.register_magics(FunMusicMagics)
    instance = ipython.magics_manager.registry[FunMusicMagics.__name__]
    if instance._show_finished not in ipython.events.callbacks["post_run_cell"]:
        ipython.events.register("post_run_cell", instance._show_finished)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics. Songs already running finish (or can be stopped) as usual."""
    manager = ipython.magics_manager
    instance = manager.registry.pop(FunMusicMagics.__name__, None)
    if isinstance(instance, FunMusicMagics):
        with contextlib.suppress(ValueError):
            ipython.events.unregister("post_run_cell", instance._show_finished)
    for kind in ("line", "cell"):
        manager.magics[kind].pop("funmusic", None)
    if instance is not None and instance in ipython.configurables:
        ipython.configurables.remove(instance)
