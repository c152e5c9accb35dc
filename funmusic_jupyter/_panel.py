"""``FunMusicPanel``: the same songs as ``%%funmusic``, with buttons (ipywidgets 8).

    from funmusic_jupyter import FunMusicPanel
    FunMusicPanel()

How it is put together, and why:

- Songs run on the magic's background worker (``_worker.get_worker()``): a click submits a job and
  returns at once, so the kernel stays free while the song streams in. The same worker saves
  every song (and every partial one) before the panel hears that it finished.
- The worker's listener runs on the worker thread. From there the panel only *sets widget
  traits* (progress value, status text, an ``HTML`` widget's value, a button's ``disabled``):
  those are safe from any thread, while ``with output_widget:`` from a thread is not. For the
  same reason the history is a ``Select`` whose options change, rather than widgets created on
  the worker thread.
- Results are drawn by the one renderer, ``_render.song_html`` / ``_render.error_html``.
- The limit counter, the notes and the reason Generate is disabled come from ``_policy``: the
  panel asks ``plan_request`` exactly what ``%%funmusic`` asks it (Streaming Auto/On/Off is the
  magic's default/``--stream``/``--no-stream``), so the two accept and refuse the same texts.
- The API key is never a trait (widget state is saved into notebooks): an ``api_key=`` argument
  lives in a private attribute, and the panel only ever says where a key came from.
- ``repr()`` (and the ``text/plain`` of its display) is deterministic, for nbval.
"""

from __future__ import annotations

import html
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]
from traitlets import Bool

from . import _render
from ._config import Settings, resolve_settings
from ._errors import FunMusicError, ValidationError, quote
from ._i18n import _, ngettext, speaking, speaking_init
from ._library import find_reusable, reuse_note
from ._live_session import LiveSession
from ._models import Song
from ._panel_history import PanelHistory
from ._panel_words import (
    MODES,
    PLACEHOLDER,
    STATE_WORDS,
    STREAMING,
    VOICES,
    counter_words,
    one_of,
)
from ._policy import plan_request, refused_stream, stream_preference
from ._spending import check_budget
from ._storage import DEFAULT_OUTPUT_DIR
from ._validation import (
    FORMATS,
    GENDERS,
    PREVIEW_MODEL,
    SongRequest,
    detect_mode,
    limit_for,
    text_stats,
)
from ._worker import Job, client_options, get_worker

__all__ = ["FunMusicPanel"]

# The song's length is unknown until its last event, so the bar cannot be a true fraction.
# It moves along 1 - exp(-x / scale): always forward, never full before the end, where x is the
# audio received (streaming) or the time elapsed (not streaming). The status line has the facts.
_BAR_SCALE_SECONDS = 60.0
_PANEL_CLASS = "funmusic-panel"
# ipywidgets gives HTML widgets a fixed one-control line height (28 px), which spreads wrapped
# status lines and long paths far apart; text inside the panel reads better at 1.4.
_PANEL_STYLE = (
    # overflow-wrap: a long run with no break opportunity (a path in the status line, a URL
    # in a note) wraps inside the panel instead of widening it.
    f"<style>.{_PANEL_CLASS} .widget-html-content {{ line-height: 1.4;"
    " overflow-wrap: anywhere; }"
    f" .{_PANEL_CLASS} .widget-html {{ margin-top: 2px; margin-bottom: 2px; }}</style>"
)
_OK_STYLE = "opacity: 0.8;"
_BAD_STYLE = "color: var(--jp-error-color1, #c62828); font-weight: 600;"
_WARN_STYLE = "color: var(--jp-warn-color1, #b26a00);"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass(eq=False)
class _Run:
    """One click of Generate. The listener is bound to it, so a late event from an old song
    can never touch the state of a newer one."""

    request: SongRequest
    job: Job | None = None
    notes: list[str] = field(default_factory=list)
    live: LiveSession | None = None  # the live player of a streamed song
    reused: Song | None = None  # a song answered from the output directory: nothing was sent


class FunMusicPanel(widgets.VBox):  # type: ignore[misc]
    """Make songs with buttons: write a prompt or lyrics, choose the voice and format, Generate.

    Keyword arguments (all optional):

    ``text``, ``mode`` ("auto", "prompt", "lyrics"), ``gender``, ``format``, ``instrumental``
        Initial values of the controls (``instrumental=True``: a song with no vocals).
    ``stream``
        "auto" (default): stream when the text allows it, else make the song without streaming,
        with a note; ``True``: always stream (texts that cannot be streamed are refused);
        ``False``: never stream. The same policy as ``%%funmusic``.
    ``backend``, ``base_url``, ``endpoint``, ``api_key``
        As for ``FunMusicClient``. With nothing configured the offline simulator makes the
        songs. An ``api_key`` given here is kept in a private attribute, never in a widget.
    ``output_dir``
        Where songs are saved (default ``./funmusic-output``).
    ``price_per_second``, ``currency``
        For the cost shown with each song.
    ``headers``
        Extra HTTP headers for every request, e.g. the simulator's fault injection
        ``{"X-FunMusic-Fault": "drop-after=3"}`` to see what a broken stream looks like.
    ``model``, ``connect_timeout``, ``idle_timeout``
        Passed on to the request and the client.
    ``embed_limit``
        WAV songs over this many bytes are shown with an MP3 preview and a link to the full
        WAV on disk, so a saved notebook stays small (default about 8 MB).

    ``reuse`` (also a trait: ``panel.reuse = False``)
        On by default, as in ``%%funmusic``: a request already made is answered from the
        output directory ("reused from …, not billed"), with nothing sent.
    ``budget``
        Refuse requests to the real service once this kernel session has spent this much
        (default: ``FunMusicMagics.budget`` when the extension is loaded, else none).

    ``language``
        What the panel is written in: "en", "zh", or "auto" (default: ``FUNMUSIC_LANGUAGE``
        when set, else the kernel's locale). Independent of ``%%funmusic``'s language.

    ``autoplay`` (also a trait: ``panel.autoplay = True``)
        Start playing a streamed song as soon as its first audio arrives. A streamed song
        always gets a live player; by default it waits for Play.

    Drive it from code too: set ``panel.text.value``, call ``panel.generate_button.click()``
    and ``panel.wait()``; ``panel.history`` holds this session's songs, newest first.
    """

    # A Python-side trait (not synced): the live player gets the value when a song starts.
    autoplay = Bool(False, help="Play a streamed song as soon as its first audio arrives.")
    reuse = Bool(True, help="Show the saved song for a request already made, sending nothing.")

    @speaking_init
    def __init__(
        self,
        *,
        text: str = "",
        mode: str = "auto",
        gender: str = "female",
        format: str = "mp3",
        instrumental: bool = False,
        stream: bool | str | None = "auto",
        model: str = "fun-music-v1",
        backend: str = "auto",
        base_url: str | None = None,
        endpoint: str | None = None,
        api_key: str | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        price_per_second: float = 0.002,
        currency: str = "CNY",
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        embed_limit: int = _render.DEFAULT_EMBED_LIMIT,
        autoplay: bool = False,
        reuse: bool = True,
        budget: float | None = None,
        language: str | None = None,  # resolved by @speaking_init into self._language
        **kwargs: Any,
    ) -> None:
        mode_values = [value for _, value in MODES]
        if mode not in mode_values:
            raise ValidationError(one_of("mode", mode_values, mode))
        for name, value, allowed in (("gender", gender, GENDERS), ("format", format, FORMATS)):
            if value not in allowed:
                raise ValidationError(one_of(name, allowed, value))
        preference = stream_preference(stream)
        if isinstance(embed_limit, bool) or not isinstance(embed_limit, int) or embed_limit < 0:
            raise ValidationError(
                _("embed_limit must be a whole number of bytes >= 0; got {value}").format(
                    value=quote(embed_limit)
                )
            )
        if not isinstance(price_per_second, (int, float)) or price_per_second < 0:
            raise ValidationError(
                _("price_per_second must be a number >= 0; got {value}").format(
                    value=quote(price_per_second)
                )
            )
        # Private Python attributes, not traits: nothing here is ever synced to the front end.
        self._api_key = api_key
        self._base_url = base_url
        self._endpoint = endpoint
        self._backend = backend
        self._model = model
        self._price = float(price_per_second)
        self._currency = currency
        self._output_dir = Path(output_dir or DEFAULT_OUTPUT_DIR).expanduser().resolve()
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._embed_limit = embed_limit
        self.headers: dict[str, str] = dict(headers or {})
        # Resolved now so a bad setting fails here, in the cell, as one line.
        self._settings: Settings = resolve_settings(
            api_key=api_key, base_url=base_url, endpoint=endpoint, backend=backend
        )
        self._lock = threading.RLock()
        self._run: _Run | None = None
        self._last_run: _Run | None = None
        self._valid_request: SongRequest | None = None
        self._valid_notes: tuple[str, ...] = ()
        self._reason = ""

        full = widgets.Layout(width="100%")
        self.add_class(_PANEL_CLASS)
        self.backend_info = widgets.HTML(self._backend_html(), layout=full)
        self.text = widgets.Textarea(
            value=text,
            placeholder=_(PLACEHOLDER),
            layout=widgets.Layout(width="100%", height="11em"),
        )
        self.counter = widgets.HTML(layout=full)
        self.message = widgets.HTML(layout=full)
        self.mode = widgets.ToggleButtons(
            options=[(_(label), value) for label, value in MODES],
            value=mode,
            description=_("Mode"),
            tooltips=[
                _("Lyrics when the text has a [verse]/[chorus]… line, else a prompt"),
                _("The text describes the song; the model writes the lyrics"),
                _("The text is the lyrics to sing"),
            ],
            style={"button_width": "5.5em"},
        )
        self.gender = widgets.ToggleButtons(
            options=[(_(VOICES[g]), g) for g in GENDERS],
            value=gender,
            description=_("Voice"),
            style={"button_width": "5.5em"},
        )
        self.format = widgets.ToggleButtons(
            options=[(f.upper(), f) for f in FORMATS],
            value=format,
            description=_("Format"),
            style={"button_width": "5.5em"},
        )
        self.instrumental = widgets.Checkbox(
            value=bool(instrumental),
            description=_("Instrumental (no vocals)"),
            indent=False,
            layout=widgets.Layout(width="auto"),
        )
        self._takes_gender = self._model.strip() != PREVIEW_MODEL
        if not self._takes_gender:
            # fun-music-preview takes no gender: the toggle would do nothing, so it says so.
            self.gender.disabled = True
            self.gender.tooltips = [
                _("{model} takes no gender").format(model=PREVIEW_MODEL)
            ] * len(GENDERS)
        self.stream = widgets.ToggleButtons(
            options=[(_(label), value) for label, value in STREAMING],
            value="auto" if preference is None else preference,
            description=_("Streaming"),
            tooltips=[
                _("Stream when the text allows it, else make it in one go (with a note)"),
                _("Always stream: a text that cannot be streamed is refused"),
                _("Never stream: the song appears when it is done"),
            ],
            style={"button_width": "5.5em"},
        )
        self.generate_button = widgets.Button(
            description=_("Generate"),
            button_style="primary",
            icon="music",
        )
        self.cancel_button = widgets.Button(
            description=_("Cancel"),
            button_style="warning",
            icon="stop",
            disabled=True,
        )
        self.progress = widgets.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="100%", visibility="hidden")
        )
        self.status = widgets.HTML(layout=full)
        # A streamed song's live player sits here until the result's card takes over from it.
        self.live_box = widgets.Box(layout=full)
        self.result = widgets.HTML(layout=full)
        # The history (_panel_history) lists this session's songs, then the output
        # directory's, so a restarted kernel still finds every song saved before.
        self._history = PanelHistory(
            output_dir=self._output_dir, render=self._card, show=self._show_card
        )
        self.history_select = self._history.select
        self.show_button = self._history.show_button
        self.saved_label = self._history.saved_label
        self.history_box = self._history.box

        self.text.observe(self._on_input, names="value")
        self.mode.observe(self._on_input, names="value")
        self.gender.observe(self._on_input, names="value")
        self.format.observe(self._on_input, names="value")
        self.instrumental.observe(self._on_input, names="value")
        self.stream.observe(self._on_input, names="value")
        self.generate_button.on_click(self._on_generate)
        self.cancel_button.on_click(self._on_cancel)

        super().__init__(
            [
                self.backend_info,
                self.text,
                self.counter,
                self.mode,
                widgets.HBox([self.gender, self.format, self.instrumental]),
                self.stream,
                self.message,
                widgets.HBox([self.generate_button, self.cancel_button]),
                self.progress,
                self.status,
                self.live_box,
                self.result,
                self.history_box,
            ],
            **kwargs,
        )
        self.autoplay = bool(autoplay)
        self.reuse = bool(reuse)
        self._budget = budget
        self._on_input()

    # -- what the panel shows about itself -----------------------------------------------------
    def __repr__(self) -> str:
        # Deterministic: nbval compares a widget's display by this text.
        with self._lock:
            state = "generating" if self._run is not None else "idle"
            songs = len(self._history.songs)
        return f"FunMusicPanel(backend={self._settings.backend!r}, songs={songs}, state={state!r})"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = super()._repr_mimebundle_(**kwargs)
        data["text/plain"] = repr(self)  # not the 110-character cut of the default
        return data

    @speaking("_language")
    def _backend_html(self) -> str:
        return _PANEL_STYLE + self._backend_text_html()

    def _backend_text_html(self) -> str:
        s = self._settings
        if s.backend == "simulator":
            return (
                _(
                    "<b>♪ Fun-Music panel</b> · using the <b>offline simulator</b> {why}— songs "
                    "are made on this machine and nothing is billed. Set "
                    "<code>DASHSCOPE_API_KEY</code> to use Fun-Music."
                ).format(why=_("(no API key found) ") if self._backend == "auto" else "")
            )
        if s.has_key:
            # Where the key came from, never the key, nor even its mask.
            return (
                _(
                    "<b>♪ Fun-Music panel</b> · {url} · API key from {source} · every song is "
                    "billed ({price} per second)"
                ).format(
                    url=_e(s.base_url),
                    source=_e(s.api_key_source),
                    price=_e(_render.format_money(self._price, self._currency)),
                )
            )
        return _(
            "<b>♪ Fun-Music panel</b> · {url} (no API key: a classroom simulator?)"
        ).format(url=_e(s.base_url))

    # -- reading it from Python ----------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The connection settings (the repr masks the key)."""
        return self._settings

    @property
    def output_dir(self) -> Path:
        return self._output_dir

    @property
    def history(self) -> tuple[Song, ...]:
        """This session's songs, newest first (the history also lists the output directory's
        earlier songs: ``fm.library()`` has them all)."""
        return self._history.songs

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._run is not None

    @property
    def job(self) -> Job | None:
        """The job of the current song, or of the last one."""
        with self._lock:
            run = self._run or self._last_run
            return run.job if run else None

    def wait(self, timeout: float | None = None) -> Song | None:
        """Block until the current song (or else the last one) ends; return it, or None if it
        failed or was cancelled (the panel shows why) or no song was ever started.
        Raises ``TimeoutError`` if the song is still running after ``timeout`` seconds."""
        with self._lock:
            run = self._run or self._last_run
        if run is not None and run.reused is not None:
            return run.reused
        if run is None or run.job is None:
            return None
        if not run.job.wait(timeout):
            raise TimeoutError(
                _("the song is still {state} after {seconds} s").format(
                    state=_render.state_text(run.job.state), seconds=timeout
                )
            )
        return run.job.song

    # -- input, the counter, and whether Generate may be pressed ---------------------------------
    @speaking("_language")
    def _on_input(self, change: object = None) -> None:
        text = self.text.value
        mode = self.mode.value
        stream = self.stream.value
        body = text.strip("\n").rstrip()
        try:
            request, notes = plan_request(
                text=text,
                mode=mode,
                gender=self.gender.value if self._takes_gender else None,
                format=self.format.value,
                instrumental=self.instrumental.value,
                stream=stream,
                model=self._model,
            )
        except ValidationError as exc:
            request, notes, reason = None, (), str(exc)
        else:
            reason = ""
        if body.strip():
            chosen = detect_mode(body) if mode == "auto" else mode
            stats = text_stats(body)
            # Count against the limit the policy applied: the request's, or the refusal's.
            streamed = request.stream if request is not None else refused_stream(stream)
            limit = limit_for(chosen, stats.language, streamed)
            count = limit.measure(stats)
            within = limit.low <= count <= limit.high
            counter = counter_words(mode, chosen, stats.language, streamed, stream, limit, count)
            style = _OK_STYLE
            if count > limit.high:
                counter += _e(_(" — {count:,} over the limit").format(count=count - limit.high))
                style = _BAD_STYLE
            elif not within:
                counter += _e(
                    _(" — {count:,} short of the minimum").format(count=limit.low - count)
                )
                style = _BAD_STYLE
            counter_html = f'<span style="{style}">{counter}</span>'
        else:
            nothing = _e(_("Nothing written yet."))
            counter_html = f'<span style="{_OK_STYLE}">{nothing}</span>'
        if request is None:
            style = _OK_STYLE if not body.strip() else _BAD_STYLE
            message = f'<span style="{style}">{_e(reason)}</span>'
        else:
            message = "".join(f'<div style="{_WARN_STYLE}">⚠ {_e(n)}</div>' for n in notes)
        with self._lock:
            self._valid_request = request
            self._valid_notes = tuple(notes)
            self._reason = reason
            self.counter.value = counter_html
            self.message.value = message
            self._refresh_buttons()

    @property
    def notes(self) -> tuple[str, ...]:
        """What the panel says about the text as it stands: the request's warnings and the
        policy's notes (e.g. why it will not be streamed). Empty when it is refused."""
        with self._lock:
            return self._valid_notes

    @property
    @speaking("_language")
    def reason(self) -> str:
        """Why Generate is disabled ("" when it is not): ``build_request``'s own message."""
        with self._lock:
            if self._run is not None:
                return _("a song is being made")
            return self._reason

    @speaking("_language")
    def _refresh_buttons(self) -> None:
        with self._lock:
            busy = self._run is not None
            ok = self._valid_request is not None
            self.generate_button.disabled = busy or not ok
            self.generate_button.tooltip = (
                _("A song is being made") if busy else (self._reason or _("Make the song"))
            )
            self.cancel_button.disabled = not busy
            # A disabled button keeps its colour in ipywidgets: only a live Cancel is orange.
            self.cancel_button.button_style = "warning" if busy else ""

    # -- generating ----------------------------------------------------------------------------
    def _client_options(self) -> dict[str, Any]:
        options, self._settings = client_options(
            api_key=self._api_key,
            base_url=self._base_url,
            endpoint=self._endpoint,
            backend=self._backend,
            connect_timeout=self._connect_timeout,
            idle_timeout=self._idle_timeout,
        )
        return options

    @speaking("_language")
    def _on_generate(self, button: object = None) -> None:
        with self._lock:
            if self._run is not None:
                return
            self._on_input()  # validate what is there now, not what was there at the last key
            request = self._valid_request
            if request is None:
                return
            run = _Run(request=request, notes=list(self._valid_notes))
            self._run = run
            self._refresh_buttons()
        self.progress.value = 0.0
        self.progress.bar_style = "info"
        self.progress.layout.visibility = "visible"
        self.status.value = _e(_(STATE_WORDS["queued"]) + "…")
        self.result.value = ""  # the last song stays in the history, under Show
        try:
            options = self._client_options()
            # The one reuse check and the one budget check, as in %%funmusic and fm.generate.
            # Fault injection (a simulator test header) always sends, as --fault does.
            faulty = any(k.lower() == "x-funmusic-fault" for k in self.headers)
            if self.reuse and not faulty:
                found = find_reusable(request, self._settings, self._output_dir)
                if found is not None:
                    self._reused(run, found)
                    return
            check_budget(
                backend=self._settings.backend,
                budget=self._budget,
                price_per_second=self._price,
                currency=self._currency,
            )
            if request.stream:
                run.live = LiveSession(request, autoplay=self.autoplay)
                self.live_box.children = (run.live.player,)
            job = get_worker().submit(
                request,
                client_options=options,
                output_dir=self._output_dir,
                headers=self.headers or None,
                listener=lambda job, event: self._on_event(run, job, event),
                min_interval=0.2,
                audio_listener=run.live.feed if run.live else None,
            )
        except Exception as exc:  # a bad setting or a stopped worker: shown, never raised
            self._remove_live(run)
            if run.live is not None:
                run.live.player.close()  # no song will ever reach it
                run.live = None
            self._show_error(run, exc, partial_path=None, job=None)
            self._end(run)
            return
        self.backend_info.value = self._backend_html()
        run.job = job  # the listener may already have ended the run: _end() ignores that

    @speaking("_language")
    def _reused(self, run: _Run, song: Song) -> None:
        note = reuse_note(song, fresh="panel.reuse = False")
        card = _render.song_html(
            song,
            price_per_second=self._price,
            currency=self._currency,
            notes=[*run.request.warnings, note],
            embed_limit=self._embed_limit,
        )
        run.reused = song
        with self._lock:
            self._history.add(song, card)
        self.result.value = card
        self.progress.value = 1.0
        self.progress.bar_style = "success"
        self.status.value = _e(
            _("Reused: {seconds:g} s of audio, not billed").format(seconds=song.duration)
        )
        self._end(run)

    @speaking("_language")
    def _on_cancel(self, button: object = None) -> None:
        with self._lock:
            run = self._run
        if run is not None and run.job is not None:
            self.status.value = _e(_("Stopping…"))
            # Not under the lock: cancel() waits for the worker loop, whose listener takes it.
            run.job.cancel()

    @speaking("_language")
    def _on_event(self, run: _Run, job: Job, event: str) -> None:
        # On the worker thread: only set traits here.
        if run.job is None:
            run.job = job  # the song may end before submit() has returned to the click
        if event == "finished":
            self._finished(run, job)
            return
        if self._run is not run or job.cancel_requested:
            return  # an old song's late event, or "Stopping…" is showing
        words = _(STATE_WORDS[job.state]) if job.state in STATE_WORDS else job.state
        parts = [words]
        if job.request.stream:
            seconds = job.seconds
            audio = "—" if seconds is None else f"{seconds:.1f}"
            parts.append(_("{seconds} s of audio").format(seconds=audio))
            parts.append(
                ngettext("{count:,} chunk", "{count:,} chunks", job.chunks).format(count=job.chunks)
            )
            x = seconds or 0.0
        else:
            x = job.elapsed
        parts.append(_("{seconds:.1f} s elapsed").format(seconds=job.elapsed))
        self.progress.value = 0.97 * (1.0 - math.exp(-x / _BAR_SCALE_SECONDS))
        self.status.value = _e(" · ".join(parts))

    @speaking("_language")
    def _finished(self, run: _Run, job: Job) -> None:
        notes = list(run.notes)
        if job.save_error is not None:
            notes.append(_render.save_failed_note(job.save_error))
        song = job.song
        if song is not None:
            card = _render.song_html(
                song,
                price_per_second=self._price,
                currency=self._currency,
                notes=notes,
                embed_limit=self._embed_limit,
                handoff_id=run.live.handoff_id if run.live else None,
            )
            with self._lock:
                self._history.add(song, card)
            self.result.value = card
            self.progress.value = 1.0
            self.progress.bar_style = "success"
            where = (
                _(" · saved to {path}").format(path=job.saved_path)
                if job.saved_path
                else _(" · not saved")
            )
            self.status.value = _e(
                _("Done: {seconds:g} s of audio in {elapsed:.1f} s{where}").format(
                    seconds=song.duration, elapsed=job.elapsed, where=where
                )
            )
        else:
            error = job.error or FunMusicError(_("the song did not finish"))
            run.notes = notes
            self._show_error(run, error, partial_path=job.partial_path, job=job)
        if run.live is not None:
            # The card is in place: the live player hands playback over to it, then goes.
            run.live.complete(
                job, lambda: self._remove_live(run), call_later=get_worker().call_later
            )
        self._end(run)

    def _remove_live(self, run: _Run) -> None:
        # Only this run's player: a newer song's may already be there.
        if run.live is not None and run.live.player in self.live_box.children:
            self.live_box.children = ()

    @speaking("_language")
    def _show_error(
        self, run: _Run, error: BaseException, *, partial_path: Path | None, job: Job | None
    ) -> None:
        self.result.value = _render.error_html(
            error,
            partial_path=partial_path,
            title=run.request.text,
            notes=run.notes,
            fmt=run.request.format,
            embed_limit=self._embed_limit,
            handoff_id=run.live.handoff_id if run.live else None,
        )
        if job is not None and job.state == "cancelled":
            # The user asked for it: a neutral bar and words, not an error.
            self.progress.bar_style = ""
            self.status.value = _e(_render.stopped_text(job))
            return
        self.progress.bar_style = "danger"
        where = (
            _(" · partial audio saved to {path}").format(path=partial_path) if partial_path else ""
        )
        self.status.value = _e(
            _("Failed: {what}{where}").format(what=_render.error_parts(error)[1], where=where)
        )

    def _end(self, run: _Run) -> None:
        with self._lock:
            if self._run is run:
                self._run = None
                self._last_run = run
            self._refresh_buttons()

    # -- history -----------------------------------------------------------------------------
    @speaking("_language")
    def _card(self, song: Song) -> str:
        return _render.song_html(
            song,
            price_per_second=self._price,
            currency=self._currency,
            embed_limit=self._embed_limit,
        )

    def _show_card(self, card: str) -> None:
        self.result.value = card
