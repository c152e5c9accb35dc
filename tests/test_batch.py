"""``generate_many`` / ``agenerate_many``: validation up front, the rate limit, order, failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

import funmusic_jupyter as fm
from funmusic_jupyter._batch import RateLimiter
from funmusic_jupyter._models import sidecar_path
from funmusic_jupyter.simulator import FAULT_HEADER, SimulatorServer


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:
        yield server


def _admitted(server: SimulatorServer) -> list[float]:
    # The simulator's own record of when it admitted each generation request (its 429 window).
    return list(server.state.window._times)


# -- the limiter, on a virtual clock ---------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def _max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


@pytest.mark.anyio
async def test_limiter_never_exceeds_rpm_in_any_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(6, window=60.0, clock=clock, sleep=clock.sleep)
    sent: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        sent.append(clock())

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)
    assert len(sent) == 20
    assert _max_in_window(sent, 60.0) == 6
    # A burst of 6 at once, then each waits exactly for the oldest to leave the window.
    assert sent[:6] == [1000.0] * 6
    assert sent[6:12] == [1060.0] * 6
    assert sent[-1] == 1180.0


def test_limiter_delay_counts_down() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, window=10.0, clock=clock)
    assert limiter.delay() == 0.0
    first = await_slot(limiter)
    clock.now = 1004.0
    await_slot(limiter)
    clock.now = 1000.0
    assert limiter.delay() == 10.0
    limiter.answered(first)  # answered at 1000.0: no change
    assert limiter.delay() == 10.0
    clock.now = 1007.5
    assert limiter.delay() == 2.5
    clock.now = 1010.0
    assert limiter.delay() == 0.0


def test_an_answer_moves_the_slot_later() -> None:
    # The server counted the request at some moment before it answered: from the answer on,
    # the slot counts from then, so the next request waits a whole window after it.
    clock = FakeClock()
    limiter = RateLimiter(1, window=10.0, clock=clock)
    slot = await_slot(limiter)
    clock.now = 1003.0
    limiter.answered(slot)
    assert limiter.delay() == 10.0
    clock.now = 1012.0
    assert limiter.delay() == 1.0


def await_slot(limiter: RateLimiter) -> object:
    return anyio.run(limiter.acquire)


@pytest.mark.parametrize("rpm", [0, -1, 1.5, True, "180"])
def test_bad_rpm_is_refused(rpm: object) -> None:
    with pytest.raises(fm.ConfigurationError, match="rpm must be a whole number"):
        fm.generate_many([], rpm=rpm)  # type: ignore[arg-type]


# -- validation before sending ---------------------------------------------------------------


def test_every_bad_request_is_reported_and_nothing_is_sent(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    requests: list[object] = [
        {"prompt": "Rainy night piano"},
        {"prompt": "Rainy night piano", "gender": "robot"},
        {"lyrics": "こんにちは世界"},
        {"prompt": "ok", "base_url": "http://x"},
        42,
    ]
    with pytest.raises(fm.BatchValidationError) as info:
        fm.generate_many(requests, base_url=simulator.base_url, output_dir=tmp_path)  # type: ignore[arg-type]
    lines = str(info.value).splitlines()
    assert lines[0] == "4 of 5 requests refused, nothing was sent:"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "request 1", "request 2", "request 3", "request 4"
    ]
    assert "gender must be one of female, male; got 'robot'" in lines[1]
    assert set(info.value.errors) == {1, 2, 3, 4}
    assert isinstance(info.value, fm.ValidationError)
    assert _admitted(simulator) == []
    assert list(tmp_path.iterdir()) == []


# -- against the simulator -------------------------------------------------------------------


def _tiny(n: int) -> dict[str, object]:
    # A one-line lyric in WAV: the shortest song the simulator makes (no MP3 encoding).
    return {"lyrics": f"[verse]\nLa la number {n}", "format": "wav"}


def test_results_in_input_order_and_saved(simulator: SimulatorServer, tmp_path: Path) -> None:
    requests: list[fm.SongRequest | dict[str, object]] = [_tiny(n) for n in range(4)]
    requests[2] = fm.build_request(lyrics="[verse]\nLa la number 2", format="mp3")
    seen: list[int] = []
    results = fm.generate_many(
        requests, concurrency=3, base_url=simulator.base_url, output_dir=tmp_path,
        on_result=lambda i, r: seen.append(i),
    )
    assert sorted(seen) == [0, 1, 2, 3]
    assert all(isinstance(r, fm.Song) for r in results)
    songs = [r for r in results if isinstance(r, fm.Song)]
    assert [s.request.text for s in songs] == [f"[verse]\nLa la number {n}" for n in range(4)]
    assert [s.format for s in songs] == ["wav", "wav", "mp3", "wav"]
    for song in songs:
        assert song.saved_path is not None and song.saved_path.parent == tmp_path.resolve()
        assert song.saved_path.read_bytes() == song.audio
        assert json.loads(sidecar_path(song.saved_path).read_text())["complete"] is True


def test_a_failure_is_kept_and_its_partial_audio_saved(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    requests = [
        _tiny(1),
        {"prompt": "Calm piano for a quiet evening", "stream": True, "format": "wav",
         "headers": {FAULT_HEADER: "drop-after=2"}},
        _tiny(3),
    ]
    results = fm.generate_many(requests, base_url=simulator.base_url, output_dir=tmp_path)
    assert isinstance(results[0], fm.Song) and isinstance(results[2], fm.Song)
    error = results[1]
    assert isinstance(error, fm.StreamInterruptedError)
    partial = error.partial_path  # type: ignore[attr-defined]
    assert partial.name.endswith(".partial.wav") and partial.stat().st_size > 0
    assert json.loads(sidecar_path(partial).read_text())["complete"] is False


def test_rate_limit_holds_in_the_servers_log(simulator: SimulatorServer, tmp_path: Path) -> None:
    # 12 requests at 6 per (short, virtual-minute) window: the server never admits 7 in one.
    # Each is answered at once with a 500 after admission, so no song is synthesised.
    window = 0.6
    requests = [{"prompt": f"Tiny loop number {n}"} for n in range(12)]
    results = fm.generate_many(
        requests, concurrency=12, rpm=6, window=window, base_url=simulator.base_url,
        output_dir=tmp_path, headers={FAULT_HEADER: "status=500"},
    )
    assert all(isinstance(r, fm.ServerError) for r in results)  # failures kept, in place
    times = sorted(_admitted(simulator))
    assert len(times) == 12
    assert _max_in_window(times, window) == 6
    assert times[-1] - times[0] >= window  # the second half really waited


@pytest.mark.anyio
async def test_async_twin(simulator: SimulatorServer, tmp_path: Path) -> None:
    results = await fm.agenerate_many(
        [{"prompt": "Async one", "format": "wav"}, _tiny(1)],
        base_url=simulator.base_url, output_dir=tmp_path,
    )
    assert [r.request.mode for r in results if isinstance(r, fm.Song)] == ["prompt", "lyrics"]


def test_reuse_seam_skips_the_request(
    simulator: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from funmusic_jupyter import _batch

    first = fm.generate_many([_tiny(0)], base_url=simulator.base_url, output_dir=tmp_path)[0]
    assert isinstance(first, fm.Song)
    monkeypatch.setattr(_batch, "_find_reusable", lambda request, settings, out: first)
    again = fm.generate_many([_tiny(0)], base_url=simulator.base_url,
                             output_dir=tmp_path, reuse=True)
    assert again == [first]
    assert len(_admitted(simulator)) == 1  # the second batch sent nothing


def test_one_progress_line_in_a_notebook_updated_from_the_batch_thread(
    simulator: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import IPython.display

    shown: list[tuple[str, str]] = []

    class Handle:
        def update(self, bundle: dict[str, str], raw: bool) -> None:
            shown.append((threading.current_thread().name, bundle["text/plain"]))

    def display(bundle: dict[str, str], raw: bool, display_id: bool) -> Handle:
        shown.append((threading.current_thread().name, bundle["text/plain"]))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    fm.generate_many([_tiny(1), {"prompt": "x", "headers": {FAULT_HEADER: "status=500"}}],
                     progress=True, base_url=simulator.base_url, output_dir=tmp_path)
    main = threading.current_thread().name
    assert shown[0] == (main, "funmusic batch: 0/2 finished")  # one display, made here
    assert shown[-1][1] == "funmusic batch: 2/2 finished, 1 failed"
    assert len(shown) == 3 and all(name != main for name, _ in shown[1:])  # then only updates


def test_no_progress_outside_a_kernel_by_default(
    simulator: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import IPython.display

    def display(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may be displayed outside a notebook")

    monkeypatch.setattr(IPython.display, "display", display)
    assert isinstance(
        fm.generate_many([_tiny(2)], base_url=simulator.base_url, output_dir=tmp_path)[0],
        fm.Song,
    )


def test_notes_are_warned_once_with_their_index(simulator: SimulatorServer, tmp_path: Path) -> None:
    both = {**_tiny(5), "prompt": "ignored"}
    with pytest.warns(fm.FunMusicWarning) as caught:
        fm.generate_many([_tiny(4), both], base_url=simulator.base_url, output_dir=tmp_path)
    assert [str(w.message) for w in caught] == [
        "request 1: both lyrics and a prompt were given: the lyrics are used and the prompt "
        "is ignored"
    ]


@pytest.mark.anyio
async def test_a_cancelled_batch_keeps_the_partial_audio(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    stalls = {"prompt": "Calm piano for a quiet evening", "stream": True, "format": "wav",
              "headers": {FAULT_HEADER: "stall-after=2"}}
    with anyio.move_on_after(3) as scope:
        await fm.agenerate_many([stalls], base_url=simulator.base_url, output_dir=tmp_path)
    assert scope.cancelled_caught
    _check_one_cancelled_partial(tmp_path)


def _check_one_cancelled_partial(folder: Path) -> None:
    (partial,) = folder.glob("*.partial.wav")
    assert partial.stat().st_size > 0
    assert json.loads(sidecar_path(partial).read_text())["error"]["type"] == "GenerationCancelled"
