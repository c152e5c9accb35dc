"""Many songs at once, within the account's rate limit: ``generate_many`` / ``agenerate_many``.

    songs = fm.generate_many([{"prompt": "Rainy night piano"}, {"lyrics": "[verse]\\n…"}])

Why the rules are what they are:

- **Everything is validated first.** A batch is paid per song: finding the bad request at
  number 9 after eight songs were billed helps nobody. Every bad request is reported together
  (one ``BatchValidationError``, one line per bad request, by index) and nothing is sent.
- **Never more than ``rpm`` requests in any ``window`` seconds** (default 180 a minute, the
  service's per-account limit). The ``RateLimiter`` is a sliding window over the times requests
  were *sent*, so a burst is allowed up to the limit and then requests wait for the oldest one
  to leave the window; a 429 would cost a retry, an exceeded quota possibly more.
- **Results in input order; a failure is kept, not raised.** ``results[i]`` is the ``Song`` or
  the exception of request ``i``; one failed song does not cost the others. The audio that
  arrived before a failure is saved (``_storage.save_partial``) and its path is set on the error
  as ``partial_path``; finished songs are saved like the magic's (``_storage.save_song``).
- **Reuse** (``reuse=True``) asks the song library (``_library.find_reusable``, another part of
  issue 9) for a stored song before sending. The seam is ``_find_reusable`` below: while the
  library module is absent it finds nothing, and every request is sent.

The sync ``generate_many`` runs the async core in a thread of its own (anyio's blocking portal),
so it works the same in a script and in a notebook, whose own thread already runs an event loop.
In a notebook it shows one progress line for the whole batch, updated through a display handle
from that thread, never printed.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from html import escape as html_escape
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import start_blocking_portal

from ._config import Settings
from ._errors import (
    ConfigurationError,
    FunMusicWarning,
    GenerationCancelled,
    StreamInterruptedError,
    ValidationError,
)
from ._i18n import _
from ._models import Song
from ._policy import plan_request
from ._storage import output_directory, save_partial, save_song
from ._validation import SongRequest

__all__ = [
    "BatchValidationError",
    "RateLimiter",
    "ResultListener",
    "agenerate_many",
    "generate_many",
    "prepare_requests",
]

#: ``on_result(index, result)``: called once per request as it ends (in the batch's thread).
ResultListener = Callable[[int, "Song | Exception"], None]

# Settings are chosen for the whole batch (one client, one rate limit), not per request.
_BATCH_ONLY = frozenset({"api_key", "base_url", "endpoint", "backend"})


class BatchValidationError(ValidationError):
    """Some requests of a batch were refused before anything was sent.

    ``errors`` maps each bad request's index to its own ``ValidationError``."""

    def __init__(self, errors: Mapping[int, ValidationError], total: int) -> None:
        self.errors = dict(errors)
        lines = [_request_line(i, exc) for i, exc in sorted(self.errors.items())]
        super().__init__(
            _("{count} of {total} requests refused, nothing was sent:").format(
                count=len(self.errors), total=total
            )
            + "\n"
            + "\n".join(lines)
        )


def _request_line(index: int, text: object) -> str:
    return _("request {index}: {text}").format(index=index, text=text)


class _Slot:
    """One request's place in the window: when it counts from (moved later once answered)."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at


class RateLimiter:
    """At most ``rpm`` requests in any ``window`` seconds (a sliding window).

    A request counts from when it was sent, and then, once the server answered
    (``answered(slot)``), from that later moment. Why: the server counts a request when it
    *arrives*, which we cannot see; it lies between sending and the answer. Counting from the
    answer is never earlier than the server's count, so connection set-up or a slow first
    request can never let ``rpm + 1`` requests into one of the server's windows.

    ``clock`` and ``sleep`` are injectable so tests can run minutes of virtual time at once.
    """

    def __init__(
        self,
        rpm: int,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1:
            raise ConfigurationError(
                _("rpm must be a whole number >= 1; got {value!r}").format(value=rpm)
            )
        if isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0:
            raise ConfigurationError(
                _("window must be a positive number of seconds; got {value!r}").format(
                    value=window
                )
            )
        self.rpm = rpm
        self.window = float(window)
        self._clock = clock
        self._sleep = sleep
        self._slots: list[_Slot] = []  # at most rpm of them
        self._lock: anyio.Lock | None = None  # made on first use, inside the running loop

    def delay(self) -> float:
        """Seconds until another request may go (0 when it may go now)."""
        now = self._clock()
        self._slots = [s for s in self._slots if now - s.at < self.window]
        if len(self._slots) < self.rpm:
            return 0.0
        return min(s.at for s in self._slots) + self.window - now

    async def acquire(self) -> _Slot:
        """Wait for a free slot and take it. Callers are served in the order they arrive."""
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            while (wait := self.delay()) > 0:
                await self._sleep(wait)
            slot = _Slot(self._clock())
            self._slots.append(slot)
            return slot

    def answered(self, slot: _Slot) -> None:
        """The server answered the slot's request: count it from now (see the class doc)."""
        slot.at = max(slot.at, self._clock())


def _one_request(item: object) -> tuple[SongRequest, Mapping[str, str] | None, tuple[str, ...]]:
    """One batch item as a validated request, its headers, and the notes about it."""
    if isinstance(item, SongRequest):
        return item, None, item.warnings
    if not isinstance(item, Mapping):
        raise ValidationError(
            _(
                "a request must be a dict of generate()'s arguments or a SongRequest; got {type}"
            ).format(type=type(item).__name__)
        )
    fields = dict(item)
    batch_only = sorted(_BATCH_ONLY.intersection(fields))
    if batch_only:
        raise ValidationError(
            _(
                "{names} is set for the whole batch (generate_many(..., {first}=…)), not per "
                "request"
            ).format(names=", ".join(batch_only), first=batch_only[0])
        )
    headers = fields.pop("headers", None)
    if headers is not None:
        from ._client_core import _check_headers

        _check_headers(headers, ValidationError)
    # generate()'s default: no streaming unless asked (True, or "auto" for the magic's policy).
    stream = fields.pop("stream", False)
    request, notes = plan_request(stream=stream, **fields)
    return request, headers, notes


def prepare_requests(
    requests: Iterable[object],
) -> list[tuple[SongRequest, Mapping[str, str] | None]]:
    """Validate every request (each a dict of ``generate``'s arguments or a ``SongRequest``).

    Raises one ``BatchValidationError`` naming every bad request by index; warns
    (``FunMusicWarning``) about the others' notes, prefixed with their index.
    """
    items = list(requests)
    good: list[tuple[SongRequest, Mapping[str, str] | None]] = []
    bad: dict[int, ValidationError] = {}
    notes: list[str] = []
    for i, item in enumerate(items):
        try:
            request, headers, item_notes = _one_request(item)
        except ValidationError as exc:
            bad[i] = exc
            continue
        good.append((request, headers))
        notes.extend(_request_line(i, note) for note in item_notes)
    if bad:
        raise BatchValidationError(bad, len(items))
    for note in notes:
        warnings.warn(note, FunMusicWarning, stacklevel=3)
    return good


def _find_reusable(request: SongRequest, settings: Settings, output_dir: Path) -> Song | None:
    """The reuse seam: a stored song for ``request``, or None to send it.

    Delegates to the library's ``find_reusable(request, settings, output_dir)`` when that module
    exists (issue 9, item 1); until then nothing is reused.
    """
    try:
        from . import _library  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    find: Callable[[SongRequest, Settings, Path], Song | None] | None = getattr(
        _library, "find_reusable", None
    )
    return find(request, settings, output_dir) if find is not None else None


async def _make(
    client: Any,
    request: SongRequest,
    headers: Mapping[str, str] | None,
    output_dir: Path,
    simulated: bool,
    answered: Callable[[], None],
) -> Song:
    """One song, saved; on failure the partial audio is saved and the error re-raised.
    ``answered()`` is called once the server answered (first event, or the whole answer)."""
    stream: Any = None
    started = time.monotonic()
    try:
        if request.stream:
            async with client.stream_request(request, headers=headers) as stream:
                async for _event in stream:
                    answered()
            song: Song | None = stream.song
            if song is None:
                raise StreamInterruptedError(
                    _("the stream ended without its final event"),
                    partial_audio=bytes(stream.partial_audio),
                )
        else:
            song = await client.generate_request(request, headers=headers)
    except BaseException as exc:
        # Cancelled too (the batch was interrupted): what arrived was paid for, so keep it.
        error = exc if isinstance(exc, Exception) else GenerationCancelled(
            _("the batch was stopped before this song was finished")
        )
        from_error = getattr(exc, "partial_audio", b"") or b""
        from_stream = bytes(stream.partial_audio) if stream is not None else b""
        partial = max(from_error, from_stream, key=len)
        if partial:
            path = save_partial(
                partial, request, error, output_dir,
                request_id=getattr(exc, "request_id", None) or getattr(stream, "request_id", None),
                simulated=simulated, elapsed=round(time.monotonic() - started, 3),
            )
            if isinstance(exc, Exception):
                exc.partial_path = path  # type: ignore[attr-defined]
        raise
    finally:
        answered()
    assert song is not None
    save_song(song, output_dir)
    return song


async def _run(
    prepared: Sequence[tuple[SongRequest, Mapping[str, str] | None]],
    *,
    options: Mapping[str, Any],
    settings: Settings,
    limiter: RateLimiter,
    concurrency: int,
    output_dir: Path,
    headers: Mapping[str, str] | None,
    reuse: bool,
    on_result: ResultListener | None,
) -> list[Song | Exception]:
    from ._client import AsyncFunMusicClient

    results: list[Song | Exception | None] = [None] * len(prepared)
    queue = iter(enumerate(prepared))  # shared by the workers: requests go in input order
    simulated = settings.backend == "simulator"

    async def worker(client: AsyncFunMusicClient) -> None:
        for index, (request, own_headers) in queue:
            result: Song | Exception
            try:
                found = _find_reusable(request, settings, output_dir) if reuse else None
                if found is not None:
                    result = found  # no request, so no slot of the rate limit either
                else:
                    slot = await limiter.acquire()
                    call_headers = {**(headers or {}), **(own_headers or {})} or None
                    result = await _make(
                        client, request, call_headers, output_dir, simulated,
                        functools.partial(limiter.answered, slot),
                    )
            except Exception as exc:  # kept as the result: one failure must not stop the rest
                result = exc
            results[index] = result
            if on_result is not None:
                on_result(index, result)

    async with AsyncFunMusicClient(**options) as client, anyio.create_task_group() as tg:
        for _worker in range(min(concurrency, len(prepared))):
            tg.start_soon(worker, client)
    return [r for r in results if r is not None]


def _check_concurrency(concurrency: int) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(
            _("concurrency must be a whole number >= 1; got {value!r}").format(value=concurrency)
        )


async def agenerate_many(
    requests: Iterable[SongRequest | Mapping[str, Any]],
    *,
    concurrency: int = 4,
    rpm: int = 180,
    window: float = 60.0,
    output_dir: str | Path | None = None,
    reuse: bool = False,
    headers: Mapping[str, str] | None = None,
    on_result: ResultListener | None = None,
    progress: bool | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
) -> list[Song | Exception]:
    """Make every song of ``requests`` (async); return one ``Song`` or exception per request,
    in input order. See ``generate_many``."""
    _check_concurrency(concurrency)
    limiter = RateLimiter(rpm, window=window)
    prepared = prepare_requests(requests)  # raises before anything is sent
    listener = _with_progress(len(prepared), on_result, progress)
    return await _execute(
        prepared, limiter=limiter, concurrency=concurrency, output_dir=output_dir, reuse=reuse,
        headers=headers, on_result=listener, api_key=api_key, base_url=base_url,
        endpoint=endpoint, backend=backend,
    )


async def _execute(
    prepared: Sequence[tuple[SongRequest, Mapping[str, str] | None]],
    *,
    limiter: RateLimiter,
    concurrency: int,
    output_dir: str | Path | None,
    reuse: bool,
    headers: Mapping[str, str] | None,
    on_result: ResultListener | None,
    api_key: str | None,
    base_url: str | None,
    endpoint: str | None,
    backend: str,
) -> list[Song | Exception]:
    from ._worker import client_options

    if not prepared:
        return []  # nothing to make: no client, no simulator started
    options, settings = client_options(
        api_key=api_key, base_url=base_url, endpoint=endpoint, backend=backend
    )
    return await _run(
        prepared, options=options, settings=settings, limiter=limiter, concurrency=concurrency,
        output_dir=output_directory(output_dir).resolve(), headers=headers, reuse=reuse,
        on_result=on_result,
    )


def generate_many(
    requests: Iterable[SongRequest | Mapping[str, Any]],
    *,
    concurrency: int = 4,
    rpm: int = 180,
    window: float = 60.0,
    output_dir: str | Path | None = None,
    reuse: bool = False,
    headers: Mapping[str, str] | None = None,
    on_result: ResultListener | None = None,
    progress: bool | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
) -> list[Song | Exception]:
    """Make every song of ``requests``; return one ``Song`` or exception per request, in order.

    Each request is a dict of ``generate``'s arguments (``prompt``/``lyrics``/``text``, ``mode``,
    ``gender``, ``format``, ``stream`` (default False; ``"auto"`` streams when it can),
    ``model``, ``instrumental``, ``headers``, extra input fields) or a ``SongRequest``. All are
    validated before the first is sent (``BatchValidationError`` lists every bad one). At most
    ``concurrency`` songs are made at once and at most ``rpm`` requests sent in any ``window``
    seconds. Songs are saved to ``output_dir`` (default ``./funmusic-output``) with sidecars.
    ``on_result(index, result)`` is called as each ends; ``progress`` shows one progress line in
    a notebook (default: when running in a Jupyter kernel). ``reuse=True`` takes a stored song
    from the library instead of sending, when the library is installed.
    """
    _check_concurrency(concurrency)
    limiter = RateLimiter(rpm, window=window)  # bad arguments fail here, on the caller's thread
    prepared = prepare_requests(requests)  # so does a bad request, before anything is shown
    # The progress line is displayed here, on the cell's own thread, so it lands in the cell's
    # output; the batch's thread then only updates it through its display id.
    listener = _with_progress(len(prepared), on_result, progress)
    run = functools.partial(
        _execute, prepared, limiter=limiter, concurrency=concurrency, output_dir=output_dir,
        reuse=reuse, headers=headers, on_result=listener, api_key=api_key, base_url=base_url,
        endpoint=endpoint, backend=backend,
    )
    with start_blocking_portal() as portal:
        return portal.call(run)


# -- the notebook's progress line ------------------------------------------------------------


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return getattr(shell, "kernel", None) is not None


def _with_progress(
    total: int, on_result: ResultListener | None, progress: bool | None
) -> ResultListener | None:
    """``on_result`` plus, in a notebook, one progress line updated as each song ends."""
    if total == 0 or not (_in_kernel() if progress is None else progress):
        return on_result
    from IPython.display import display as _display

    display: Callable[..., Any] = _display  # IPython ships it untyped
    counts = {"done": 0, "failed": 0}
    handle: Any = display(_progress_bundle(total, **counts), raw=True, display_id=True)

    def listener(index: int, result: Song | Exception) -> None:
        counts["failed" if isinstance(result, Exception) else "done"] += 1
        if handle is not None:
            # A display-id update is safe from this thread; printing would not be.
            handle.update(_progress_bundle(total, **counts), raw=True)
        if on_result is not None:
            on_result(index, result)

    return listener


def _progress_bundle(total: int, *, done: int, failed: int) -> dict[str, str]:
    finished = done + failed
    counts = _("{finished}/{total} finished").format(finished=finished, total=total)
    if failed:
        counts += _(", {failed} failed").format(failed=failed)
    text = _("funmusic batch: {counts}").format(counts=counts)
    html = (
        f'<div class="funmusic-batch"><progress value="{finished}" max="{total}"></progress> '
        f"{html_escape(counts)}</div>"
    )
    return {"text/plain": text, "text/html": html}
