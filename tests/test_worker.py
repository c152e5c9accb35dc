"""The shared background worker against the real simulator over loopback HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from funmusic_jupyter._errors import GenerationCancelled, ServerError, StreamInterruptedError
from funmusic_jupyter._models import sidecar_path
from funmusic_jupyter._validation import build_request
from funmusic_jupyter._worker import THREAD_NAME, Job, Worker, current_worker, get_worker
from funmusic_jupyter.simulator import FAULT_HEADER, SimulatorServer

PROMPT = "A cheerful ukulele song about breakfast and sunshine"
OTHER = "Slow sad piano on a rainy night, yearning"


@pytest.fixture(scope="module")
def fast() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as sim:
        yield sim


@pytest.fixture(scope="module")
def slow() -> Iterator[SimulatorServer]:
    # Two seconds of audio per second: a minute-long song streams for half a minute.
    with SimulatorServer(speed=2) as sim:
        yield sim


@pytest.fixture
def threads_started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(starting thread, new thread) for every thread started during the test."""
    started: list[tuple[str, str]] = []
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append((threading.current_thread().name, self.name))
        original(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


def options(sim: SimulatorServer) -> dict[str, object]:
    return {"backend": "api", "base_url": sim.base_url}


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_one_shared_daemon_thread() -> None:
    worker = get_worker()
    assert get_worker() is worker
    assert current_worker() is worker
    assert worker.thread.name == THREAD_NAME
    assert worker.thread.daemon
    assert [t.name for t in threading.enumerate()].count(THREAD_NAME) == 1


def test_streamed_song_is_saved_before_listeners_hear_of_it(
    fast: SimulatorServer, tmp_path: Path, threads_started: list[tuple[str, str]]
) -> None:
    events: list[str] = []
    seen_on_finish: list[tuple[bool, str]] = []

    def listener(job: Job, event: str) -> None:
        events.append(event)
        if event == "finished":
            assert job.saved_path is not None
            seen_on_finish.append((job.saved_path.exists(), threading.current_thread().name))

    request = build_request(text=PROMPT, stream=True)
    job = get_worker().submit(
        request, client_options=options(fast), output_dir=tmp_path, listener=listener,
        min_interval=0,
    )
    song = job.result(timeout=60)
    assert job.state == "done"
    assert job.error is None
    assert events[0] == "started"
    assert events[-1] == "finished"
    assert events.count("finished") == 1
    assert events.count("progress") == job.chunks > 1
    assert seen_on_finish == [(True, THREAD_NAME)]
    assert job.saved_path == song.saved_path
    assert job.saved_path.parent == tmp_path.resolve()  # type: ignore[union-attr]
    assert job.saved_path.read_bytes() == song.audio  # type: ignore[union-attr]
    assert json.loads(sidecar_path(job.saved_path).read_text())["complete"] is True  # type: ignore[arg-type]
    assert job.bytes_received == len(song.audio)
    assert job.seconds == pytest.approx(song.duration, abs=1.5)
    assert job.time_to_first_audio is not None and job.time_to_first_audio <= job.elapsed
    assert not job.running and job.done
    # Songs get no threads of their own: nothing was started from the worker's thread.
    assert [new for starter, new in threads_started if starter == THREAD_NAME] == []


def test_non_streamed_song_equals_the_streamed_one(fast: SimulatorServer, tmp_path: Path) -> None:
    worker = get_worker()
    streamed = worker.submit(
        build_request(text=PROMPT, stream=True), client_options=options(fast), output_dir=tmp_path
    ).result(timeout=60)
    job = worker.submit(
        build_request(text=PROMPT, stream=False), client_options=options(fast), output_dir=tmp_path
    )
    song = job.result(timeout=60)
    assert job.chunks == 0
    assert song.audio == streamed.audio
    assert song.saved_path != streamed.saved_path


def test_several_songs_at_once(slow: SimulatorServer, tmp_path: Path) -> None:
    worker = get_worker()
    jobs = [
        worker.submit(
            build_request(text=text, stream=True), client_options=options(slow),
            output_dir=tmp_path,
        )
        for text in (PROMPT, OTHER)
    ]
    # Both stream at the same time on the one loop.
    wait_until(lambda: all(j.chunks >= 2 for j in jobs))
    assert all(j.running for j in jobs)
    for j in jobs:
        j.cancel()
    for j in jobs:
        assert j.wait(20)
    assert [j.state for j in jobs] == ["cancelled", "cancelled"]
    audio = [j.partial_path.read_bytes() for j in jobs]  # type: ignore[union-attr]
    assert audio[0] != audio[1]


def test_cancel_closes_the_stream_and_keeps_the_partial_audio(
    slow: SimulatorServer, fast: SimulatorServer, tmp_path: Path,
    threads_started: list[tuple[str, str]],
) -> None:
    request = build_request(text=PROMPT, stream=True)
    job = get_worker().submit(request, client_options=options(slow), output_dir=tmp_path)
    wait_until(lambda: job.chunks >= 3)
    assert slow.state.active_syntheses == 1
    assert job.cancel() is True
    assert job.wait(20)
    assert job.cancel() is False  # already final
    assert job.state == "cancelled"
    assert isinstance(job.error, GenerationCancelled)
    assert job.song is None
    assert job.partial_path is not None and job.partial_path.name.endswith(".partial.mp3")
    partial = job.partial_path.read_bytes()
    assert len(partial) >= job.bytes_received > 0
    assert job.error.partial_audio == partial
    meta = json.loads(sidecar_path(job.partial_path).read_text())
    assert meta["complete"] is False
    assert meta["error"]["type"] == "GenerationCancelled"
    # The server saw the client leave: its synthesis loop stopped.
    wait_until(lambda: slow.state.active_syntheses == 0, timeout=10)
    # What arrived is the start of the very song (the simulator is deterministic).
    full = get_worker().submit(
        build_request(text=PROMPT, stream=False), client_options=options(fast),
        output_dir=tmp_path,
    ).result(timeout=60)
    assert full.audio.startswith(partial)
    assert [new for starter, new in threads_started if starter == THREAD_NAME] == []


def test_cancel_a_stalled_stream(fast: SimulatorServer, tmp_path: Path) -> None:
    job = get_worker().submit(
        build_request(text=PROMPT, stream=True), client_options=options(fast),
        output_dir=tmp_path, headers={FAULT_HEADER: "stall-after=2"},
    )
    wait_until(lambda: job.chunks == 2)
    job.cancel()
    assert job.wait(10)
    assert job.state == "cancelled"
    assert job.partial_path is not None and job.partial_path.stat().st_size == job.bytes_received


def test_a_cancelled_partial_keeps_its_request_id(fast: SimulatorServer, tmp_path: Path) -> None:
    # The cancellation carries no request id, but the stream had one: the sidecar and the file
    # name must keep it (support needs it for a song that may have been billed).
    job = get_worker().submit(
        build_request(text=PROMPT, stream=True), client_options=options(fast),
        output_dir=tmp_path, headers={FAULT_HEADER: "stall-after=1"},
    )
    wait_until(lambda: job.chunks == 1)
    job.cancel()
    assert job.wait(10) and job.state == "cancelled"
    assert job.partial_path is not None
    request_id = json.loads(sidecar_path(job.partial_path).read_text())["request_id"]
    assert isinstance(request_id, str) and request_id == job._stream.request_id
    assert request_id[:8] in job.partial_path.name


def test_cancel_before_any_audio(fast: SimulatorServer, tmp_path: Path) -> None:
    # Cancelled at once: either before the task ran (the flag) or while it connected (the
    # scope). Both end the same way, with nothing to save.
    job = get_worker().submit(
        build_request(text=PROMPT, stream=True), client_options=options(fast), output_dir=tmp_path
    )
    assert job.cancel() is True
    assert job.wait(10)
    assert job.state == "cancelled"
    assert job.chunks == 0
    assert job.partial_path is None
    assert list(tmp_path.iterdir()) == []


def test_broken_stream_fails_with_partial_audio_saved(
    fast: SimulatorServer, tmp_path: Path
) -> None:
    job = get_worker().submit(
        build_request(text=PROMPT, stream=True), client_options=options(fast),
        output_dir=tmp_path, headers={FAULT_HEADER: "drop-after=3"},
    )
    assert job.wait(30)
    assert job.state == "failed"
    assert isinstance(job.error, StreamInterruptedError)
    with pytest.raises(StreamInterruptedError):
        job.result()
    assert job.partial_path is not None
    assert job.partial_path.read_bytes() == job.error.partial_audio
    meta = json.loads(sidecar_path(job.partial_path).read_text())
    assert meta["complete"] is False
    assert meta["error"]["type"] == "StreamInterruptedError"
    assert meta["request_id"] == job.error.request_id


def test_server_error_before_audio_saves_nothing(fast: SimulatorServer, tmp_path: Path) -> None:
    job = get_worker().submit(
        build_request(text=PROMPT, stream=True), client_options=options(fast),
        output_dir=tmp_path, headers={FAULT_HEADER: "status=500"},
    )
    assert job.wait(30)
    assert job.state == "failed"
    assert isinstance(job.error, ServerError) and job.error.code == "InternalError"
    assert job.partial_path is None
    assert list(tmp_path.iterdir()) == []


def test_listener_after_the_end_is_called_at_once(fast: SimulatorServer, tmp_path: Path) -> None:
    job = get_worker().submit(
        build_request(text=PROMPT, stream=False), client_options=options(fast),
        output_dir=tmp_path,
    )
    job.wait(30)
    calls: list[tuple[str, str]] = []
    job.add_listener(lambda j, e: calls.append((e, threading.current_thread().name)))
    assert calls == [("finished", threading.current_thread().name)]


def test_a_failing_listener_does_not_break_the_song(fast: SimulatorServer, tmp_path: Path) -> None:
    def broken(job: Job, event: str) -> None:
        raise RuntimeError("display went away")

    job = get_worker().submit(
        build_request(text=PROMPT, stream=True), client_options=options(fast),
        output_dir=tmp_path, listener=broken, min_interval=0,
    )
    assert job.result(timeout=60).audio


def test_listeners_are_throttled_but_always_hear_the_end(
    fast: SimulatorServer, tmp_path: Path
) -> None:
    events: list[str] = []
    job = get_worker().submit(
        build_request(text=PROMPT, stream=True), client_options=options(fast),
        output_dir=tmp_path, listener=lambda j, e: events.append(e), min_interval=3600,
    )
    job.wait(60)
    assert job.chunks > 2
    assert events == ["started", "finished"]


def test_jobs_are_listed_and_found() -> None:
    worker = get_worker()
    ids = [job.id for job in worker.jobs()]
    assert ids == sorted(ids, key=int)
    assert worker.get(ids[-1]).id == ids[-1]
    assert all(not job.running for job in worker.jobs())
    assert worker.running() == []


def test_shutdown_cancels_and_saves(slow: SimulatorServer, tmp_path: Path) -> None:
    worker = Worker()  # a private one: the shared worker stays up for the other tests
    try:
        job = worker.submit(
            build_request(text=PROMPT, stream=True), client_options=options(slow),
            output_dir=tmp_path,
        )
        wait_until(lambda: job.chunks >= 1)
    finally:
        worker.shutdown(timeout=10)
    assert job.state == "cancelled"
    assert job.partial_path is not None and job.partial_path.exists()
    assert not worker.thread.is_alive()
    with pytest.raises(RuntimeError, match="shut down"):
        worker.submit(build_request(text=PROMPT))


def test_audio_listener_gets_every_byte_in_order_on_the_worker_thread(
    fast: SimulatorServer, tmp_path: Path
) -> None:
    pieces: list[tuple[bytes, str]] = []
    request = build_request(prompt=PROMPT, stream=True)
    job = get_worker().submit(
        request, client_options=options(fast), output_dir=tmp_path,
        audio_listener=lambda data: pieces.append((data, threading.current_thread().name)),
    )
    song = job.result(30)
    assert len(pieces) == job.chunks > 1
    assert b"".join(data for data, _ in pieces) == song.audio
    assert {name for _, name in pieces} == {THREAD_NAME}


def test_audio_listener_attached_late_gets_what_arrived_then_the_rest(tmp_path: Path) -> None:
    request = build_request(prompt=OTHER, stream=True)
    with SimulatorServer(speed=16) as sim:
        job = get_worker().submit(request, client_options=options(sim), output_dir=tmp_path)
        wait_until(lambda: job.chunks >= 2)
        pieces: list[bytes] = []
        job.add_audio_listener(pieces.append)  # from this (the test's) thread, mid-stream
        song = job.result(60)
    assert job.chunks > 4
    assert len(pieces[0]) >= 2 and b"".join(pieces) == song.audio


def test_a_failing_audio_listener_does_not_break_the_song(
    fast: SimulatorServer, tmp_path: Path
) -> None:
    def broken(data: bytes) -> None:
        raise RuntimeError("a player that fails")

    job = get_worker().submit(
        build_request(prompt=PROMPT, stream=True), client_options=options(fast),
        output_dir=tmp_path, audio_listener=broken,
    )
    assert job.result(30).audio


def test_call_later_runs_on_the_loop_thread_after_the_delay_without_a_thread(
    threads_started: list[tuple[str, str]],
) -> None:
    worker = get_worker()
    ran: list[tuple[float, str]] = []
    start = time.monotonic()
    worker.call_later(
        0.3, lambda: ran.append((time.monotonic() - start, threading.current_thread().name))
    )
    worker.call_later(0.05, lambda: 1 / 0)  # a failing call is swallowed, the loop lives on
    wait_until(lambda: bool(ran), timeout=5)
    assert ran[0][0] >= 0.3 and ran[0][1] == THREAD_NAME
    # The worker itself may have started just now (this test alone); nothing else did.
    assert [name for _, name in threads_started if name != THREAD_NAME] == []
