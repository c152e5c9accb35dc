"""The reliability suite: every fault we know how to make, against the real simulator and against
a stand-in server for what the simulator cannot do (``_standin.py``), and a soak.

Each fault must end in a typed, one-line error within a time bound, keep the partial audio
byte-exact (a prefix of the simulator's own song, event for event), and never repeat a billable
request: generation requests are counted where they arrive (the stand-in server) or where they
leave (an httpx hook on the client, for the simulator). Only a 429, which starts nothing, may be
sent again.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from _standin import (
    Recording,
    Request,
    StandInServer,
    record,
    replay,
    reset,
    send,
    send_chunked,
    trickle,
)

import funmusic_jupyter as fm
from funmusic_jupyter import _api
from funmusic_jupyter._client import AsyncFunMusicClient, FunMusicClient
from funmusic_jupyter._errors import (
    APIError,
    APITimeoutError,
    BadRequestError,
    ContentInspectionError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from funmusic_jupyter.simulator import FAULT_HEADER, SimulatorServer
from funmusic_jupyter.simulator._faults import FAULT_SYNTAX, parse_fault

# Valid for streaming and not; the simulator's shortest songs (30 s) come from short text.
PROMPT = "Warm acoustic guitar ballad for a rainy evening"
BODY = {"model": "fun-music-v1", "input": {"prompt": PROMPT, "gender": "female", "format": "mp3"}}


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:
        yield server


@dataclass(frozen=True)
class Song:
    """The simulator's song for ``PROMPT``: its stream's events and their audio, and the file."""

    recording: Recording
    events: list[bytes]  # each event's bytes, with its blank line
    chunks: list[bytes]  # the audio of each audio event

    def prefix(self, n: int) -> bytes:
        return b"".join(self.chunks[:n])


@pytest.fixture(scope="module")
def song(simulator: SimulatorServer) -> Song:
    recording = record(simulator.base_url, BODY)
    events = [e + b"\n\n" for e in recording.sse.split(b"\n\n") if e.strip()]
    chunks = []
    for event in events:
        data = json.loads(event.split(b"data:", 1)[1])
        piece = data["output"]["audio"]["data"]
        if piece:
            chunks.append(base64.b64decode(piece))
    assert b"".join(chunks) == recording.audio and len(chunks) >= 4
    return Song(recording, events, chunks)


def assert_one_line(err: APIError) -> None:
    (line,) = err._render_traceback_()
    assert "\n" not in line and "\r" not in line and len(line) < 400, line


# ---- every X-FunMusic-Fault of the simulator -------------------------------------------------

# fault -> (error class or None for a song, audio events before it, POSTs it may take)
SIMULATOR_FAULTS: dict[str, tuple[type[APIError] | None, int, int]] = {
    "drop-after=3": (StreamInterruptedError, 3, 1),
    "stall-after=2": (APITimeoutError, 2, 1),
    "status=500": (ServerError, 0, 1),
    "status=503": (ServerError, 0, 1),
    "throttle=0.05x1": (None, 0, 2),  # a 429 (nothing started), then the song
    "throttle=60": (RateLimitError, 0, 1),  # longer than max_retry_wait: not waited out
    "error-event-after=2": (ServerError, 2, 1),
    "malformed-after=2": (StreamInterruptedError, 2, 1),
    "inspection": (ContentInspectionError, 0, 1),
}
IDLE = 0.6


def _idle(fault: str) -> float:
    # Short only where a stall is the point: a whole song on a shared, busy machine may pause
    # longer than that between two events.
    return IDLE if fault.startswith("stall") else 10.0


def test_the_matrix_covers_every_fault_the_simulator_knows() -> None:
    kinds = {parse_fault(v.replace("SECONDS", "1").replace("TIMES", "1").replace("N", "1"))
             for v in FAULT_SYNTAX}
    covered = {parse_fault(v) for v in SIMULATOR_FAULTS}
    assert {(k.kind, k.status) for k in kinds if k} <= {(k.kind, k.status) for k in covered if k}


def _counting(posts: list[str]) -> dict[str, list[Callable[..., Any]]]:
    def hook(request: httpx.Request) -> None:
        if request.method == "POST":
            posts.append(str(request.url))

    return {"request": [hook]}


def _check(err: BaseException | None, fault: str, song: Song, elapsed: float,
           posts: int, audio: bytes) -> None:
    expected, after, allowed_posts = SIMULATOR_FAULTS[fault]
    assert posts == allowed_posts, f"{fault}: {posts} generation requests"
    assert elapsed < IDLE + 8, f"{fault}: took {elapsed:.1f} s"
    if expected is None:
        assert err is None and audio == song.recording.audio
        return
    assert type(err) is expected, f"{fault}: {err!r}"
    assert isinstance(err, APIError)
    assert_one_line(err)
    assert err.partial_audio == song.prefix(after)  # byte-exact, whole events only


@pytest.mark.parametrize("fault", list(SIMULATOR_FAULTS))
def test_simulator_fault_sync(simulator: SimulatorServer, song: Song, fault: str) -> None:
    posts: list[str] = []
    with FunMusicClient(base_url=simulator.base_url, idle_timeout=_idle(fault)) as client:
        client._http.event_hooks = _counting(posts)
        started = time.monotonic()
        err: BaseException | None = None
        audio = b""
        try:
            audio = client.generate(prompt=PROMPT, stream=True,
                                    headers={FAULT_HEADER: fault}).audio
        except APIError as exc:
            err = exc
        _check(err, fault, song, time.monotonic() - started, len(posts), audio)


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["drop-after=3", "stall-after=2", "malformed-after=2",
                                   "throttle=0.05x1"])
async def test_simulator_fault_async(simulator: SimulatorServer, song: Song, fault: str) -> None:
    posts: list[str] = []
    async with AsyncFunMusicClient(base_url=simulator.base_url,
                                   idle_timeout=_idle(fault)) as client:
        async def hook(request: httpx.Request) -> None:
            if request.method == "POST":
                posts.append(str(request.url))

        client._http.event_hooks = {"request": [hook]}
        started = time.monotonic()
        err: BaseException | None = None
        audio = b""
        try:
            # The simulator counts throttle=…xTIMES attempts per header value and body: another
            # value than the sync test's, so this one is throttled too.
            header = fault.replace("0.05x1", "0.06x1")
            made = await client.generate(prompt=PROMPT, stream=True,
                                         headers={FAULT_HEADER: header})
            audio = made.audio
        except APIError as exc:
            err = exc
        _check(err, fault, song, time.monotonic() - started, len(posts), audio)


# ---- what only a stand-in server can do -------------------------------------------------------


NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
    b"</html>\r\n"
)


@dataclass
class Case:
    """A stand-in server's behaviour, what the client must raise, and how fast."""

    handler: Callable[[StandInServer, Song], Callable[[Request, socket.socket], bool]]
    error: type[APIError]
    events: int = 0  # audio events before the fault: the partial audio must be exactly them
    posts: int = 1
    bound: float = 5.0
    stream: bool = True
    client: dict[str, Any] | None = None
    check: Callable[[APIError], None] | None = None


def _stream_then(n: int, tail: Callable[[socket.socket], bool]) -> Callable[..., Any]:
    """Send the head and the first ``n`` audio events of the song, then do ``tail``."""

    def make(server: StandInServer, song: Song) -> Callable[[Request, socket.socket], bool]:
        def handle(request: Request, conn: socket.socket) -> bool:
            head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"x-request-id: standin-1\r\n\r\n")  # no length: the body ends at close
            conn.sendall(head + b"".join(song.events[:n]))
            return tail(conn)

        return handle

    return make


def _answer(status: int, body: bytes, content_type: str, **headers: Any) -> Callable[..., Any]:
    def make(server: StandInServer, song: Song) -> Callable[[Request, socket.socket], bool]:
        return lambda request, conn: send(conn, status, body, content_type, **headers)

    return make


def _trickle_after(n: int) -> Callable[..., Any]:
    def make(server: StandInServer, song: Song) -> Callable[[Request, socket.socket], bool]:
        def handle(request: Request, conn: socket.socket) -> bool:
            first = [b"".join(song.events[:n])]
            send_chunked(conn, 200, itertools.chain(first, trickle(server, b":\n", 0.05)))
            return False

        return handle

    return make


def _reset_mid_event(conn: socket.socket) -> bool:
    conn.sendall(b'id:9\nevent:result\n:HTTP_STATUS/200\ndata:{"output":{"audio":{"data":"SUQz')
    time.sleep(0.05)
    return reset(conn)


def _huge_line(conn: socket.socket) -> bool:
    line = b"data:" + b"A" * (50 * 2**20)
    conn.sendall(line + b"\n\n")
    conn.close()
    return False


def _claims_2gb(conn: socket.socket) -> bool:
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                 b"content-length: 2147483648\r\n\r\n{\"output\": {")
    conn.close()
    return False


def _download_claims_2gb(server: StandInServer, song: Song) -> Callable[..., bool]:
    answer = song.recording.json.replace(b"http://origin.invalid", server.origin.encode())

    def handle(request: Request, conn: socket.socket) -> bool:
        if request.method == "POST":
            return send(conn, 200, answer, "application/json")
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\n"
                     b"content-length: 2147483648\r\n\r\n" + song.recording.audio[:1000])
        time.sleep(0.3)  # and then nothing: the client must not wait for the rest
        return False

    return handle


def _retry_after(value: str | Callable[[], str]) -> Callable[..., Any]:
    """429s with this Retry-After (a callable is asked at each answer: dates made when the
    test module was imported would be minutes stale by then)."""
    body = json.dumps({"code": "Throttling.RateQuota", "message": "Requests rate limit exceeded",
                       "request_id": "r-429"}).encode()

    def make(server: StandInServer, song: Song) -> Callable[[Request, socket.socket], bool]:
        def handle(request: Request, conn: socket.socket) -> bool:
            header = value() if callable(value) else value
            return send(conn, 429, body, "application/json", retry_after=header)

        return handle

    return make


def _http_date(offset: float) -> str:
    import email.utils

    return email.utils.formatdate(time.time() + offset, usegmt=True)


def _message_is(text: str) -> Callable[[APIError], None]:
    def check(err: APIError) -> None:
        assert err.message == text and err.body is not None
        assert len(err.body.splitlines()) > 1 or "line 9 too" in err.body  # kept whole

    return check


def _code_is(err: APIError, code: str) -> None:
    assert err.code == code, err.code


def _retry_after_is(low: float, high: float) -> Callable[[APIError], None]:
    def check(err: APIError) -> None:
        assert isinstance(err, RateLimitError) and err.retry_after is not None
        assert low <= err.retry_after <= high, err.retry_after

    return check


MULTI_LINE = json.dumps({
    "code": "InvalidParameter", "request_id": "r-1",
    "message": "Lyrics rejected:\nline 3 is too long\r\nline 9 too",
}).encode()

FAST_RETRY = {"max_retries": 2, "max_retry_wait": 0.2}
CASES: dict[str, Case] = {
    "html-502": Case(_answer(502, NGINX_502, "text/html"), ServerError,
                     check=_message_is("502 Bad Gateway")),
    "html-502-not-streamed": Case(_answer(502, NGINX_502, "text/html"), ServerError, stream=False,
                                  check=_message_is("502 Bad Gateway")),
    "multi-line-json-400": Case(_answer(400, MULTI_LINE, "application/json"), BadRequestError,
                                check=_message_is("Lyrics rejected:")),
    "keep-alive-trickle": Case(_trickle_after(2), APITimeoutError, events=2, bound=IDLE * 2 + 1),
    "retry-after-huge": Case(_retry_after("1000000000"), RateLimitError, bound=1.0,
                             client=FAST_RETRY, check=_retry_after_is(1e9, 1e9)),
    # A negative wait is not honoured as "now": the client backs off (0.2 s) between tries.
    "retry-after-negative": Case(_retry_after("-5"), RateLimitError, posts=3, bound=3.0,
                                 client=FAST_RETRY),
    "retry-after-date-far": Case(_retry_after(lambda: _http_date(3600)), RateLimitError, bound=1.0,
                                 client=FAST_RETRY, check=_retry_after_is(3500, 3600)),
    "retry-after-date-past": Case(_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), RateLimitError,
                                  posts=3, bound=2.0, client=FAST_RETRY,
                                  check=_retry_after_is(0, 0)),
    "2gb-content-length": Case(_stream_then(0, _claims_2gb), StreamInterruptedError,
                               stream=False),
    "2gb-download": Case(_download_claims_2gb, APIError, stream=False, bound=1.0,
                         check=lambda err: _code_is(err, "DownloadTooLarge")),
    # Read whole (about 1.5 s here), then refused as "not JSON"; the bound allows a busy machine.
    # (With the suite's 0.6 s idle timeout a busy machine may time out reading it instead.)
    "50mb-sse-line": Case(_stream_then(3, _huge_line), StreamInterruptedError, events=3,
                          bound=20.0, client={"idle_timeout": 30.0}),
    "reset-mid-event": Case(_stream_then(3, _reset_mid_event), StreamInterruptedError, events=3),
}


def _run_sync(case: Case, base_url: str) -> tuple[BaseException | None, float]:
    kw: dict[str, Any] = {"idle_timeout": IDLE, "read_timeout": 5.0, **(case.client or {})}
    started = time.monotonic()
    with FunMusicClient(base_url=base_url, **kw) as client:
        try:
            client.generate(prompt=PROMPT, stream=case.stream)
        except APIError as exc:
            return exc, time.monotonic() - started
    return None, time.monotonic() - started


async def _run_async(case: Case, base_url: str) -> tuple[BaseException | None, float]:
    kw: dict[str, Any] = {"idle_timeout": IDLE, "read_timeout": 5.0, **(case.client or {})}
    started = time.monotonic()
    async with AsyncFunMusicClient(base_url=base_url, **kw) as client:
        try:
            await client.generate(prompt=PROMPT, stream=case.stream)
        except APIError as exc:
            return exc, time.monotonic() - started
    return None, time.monotonic() - started


def _assert_case(name: str, case: Case, song: Song, err: BaseException | None,
                 elapsed: float, posts: int) -> None:
    assert isinstance(err, case.error), f"{name}: {err!r}"
    assert isinstance(err, APIError)
    assert_one_line(err)
    assert elapsed < case.bound, f"{name}: took {elapsed:.1f} s"
    assert posts == case.posts, f"{name}: {posts} generation requests"
    assert err.partial_audio == song.prefix(case.events)
    if case.check:
        case.check(err)


@pytest.mark.parametrize("name", list(CASES))
def test_stand_in_fault_sync(song: Song, name: str) -> None:
    case = CASES[name]
    server: StandInServer = StandInServer(lambda r, c: case.handler(server, song)(r, c))
    with server:
        err, elapsed = _run_sync(case, server.base_url)
        posts = server.posts
    _assert_case(name, case, song, err, elapsed, posts)


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["keep-alive-trickle", "reset-mid-event", "html-502",
                                  "retry-after-date-far", "2gb-download"])
async def test_stand_in_fault_async(song: Song, name: str) -> None:
    case = CASES[name]
    server: StandInServer = StandInServer(lambda r, c: case.handler(server, song)(r, c))
    with server:
        err, elapsed = await _run_async(case, server.base_url)
        posts = server.posts
    _assert_case(name, case, song, err, elapsed, posts)


# ---- soak: 50 songs, nothing grows -------------------------------------------------------------

SOAK = 50


def _resources() -> tuple[int, int, int]:
    """Threads, file descriptors and sockets of this process."""
    fds = os.listdir("/proc/self/fd")
    sockets = 0
    for fd in fds:
        try:
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return threading.active_count(), len(fds), sockets


def _assert_no_growth(before: tuple[int, int, int], after: tuple[int, int, int]) -> None:
    # Small constants: a pooled keep-alive connection, a lazily started helper thread.
    assert after[0] - before[0] <= 2, f"threads {before[0]} -> {after[0]}"
    assert after[1] - before[1] <= 4, f"fds {before[1]} -> {after[1]}"
    assert after[2] - before[2] <= 2, f"sockets {before[2]} -> {after[2]}"


@pytest.fixture
def replaying(song: Song) -> Iterator[StandInServer]:
    server: StandInServer = StandInServer(replay(song.recording, lambda: server))
    with server:
        yield server


def test_soak_generate(replaying: StandInServer, song: Song) -> None:
    url = replaying.base_url
    assert fm.generate(prompt=PROMPT, base_url=url).audio == song.recording.audio  # warm up
    gc.collect()
    before = _resources()
    for i in range(SOAK):
        made = fm.generate(prompt=PROMPT, base_url=url, stream=bool(i % 2))
        assert made.audio == song.recording.audio
    gc.collect()
    _assert_no_growth(before, _resources())
    assert replaying.posts == SOAK + 1
    _api.close_default_clients()


def test_soak_agenerate_under_asyncio_run(replaying: StandInServer, song: Song) -> None:
    url = replaying.base_url
    asyncio.run(fm.agenerate(prompt=PROMPT, base_url=url))  # warm up
    gc.collect()
    before = _resources()
    for i in range(SOAK):
        made = asyncio.run(fm.agenerate(prompt=PROMPT, base_url=url, stream=bool(i % 2)))
        assert made.audio == song.recording.audio
    gc.collect()
    _assert_no_growth(before, _resources())
    assert _api._async_clients == {}


def test_soak_anyio_run_closes_its_clients(replaying: StandInServer, song: Song) -> None:
    async def one() -> bytes:
        return (await fm.agenerate(prompt=PROMPT, base_url=replaying.base_url)).audio

    for _ in range(3):
        assert anyio.run(one) == song.recording.audio
    assert _api._async_clients == {}


_KERNEL_RESOURCES = """
import os as _os, threading as _th
def _funmusic_resources():
    fds = _os.listdir('/proc/self/fd')
    socks = 0
    for fd in fds:
        try:
            socks += _os.readlink(f'/proc/self/fd/{fd}').startswith('socket:')
        except OSError:
            pass
    return (_th.active_count(), len(fds), socks)
"""


@pytest.mark.kernel
def test_soak_magic_wait_in_a_real_kernel(
    replaying: StandInServer, song: Song, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import sys

    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from test_kernel import EXTENSION, FAKE_KEY, REPO, Session

    workdir = tmp_path_factory.mktemp("soak-kernel")
    spec_dir = workdir / "kernels" / "funmusic-soak"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "funmusic soak", "language": "python",
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "FUNMUSIC_"))}
    env.update(DASHSCOPE_API_KEY=FAKE_KEY, HOME=str(workdir),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    specs = KernelSpecManager(kernel_dirs=[str(workdir / "kernels")])
    km = KernelManager(kernel_name="funmusic-soak", kernel_spec_manager=specs)
    (workdir / "nb").mkdir()
    km.start_kernel(env=env, cwd=str(workdir / "nb"))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        s = Session(km, kc)
        setup = s.run(
            f"%load_ext {EXTENSION}\n"
            "%config FunMusicMagics.backend = 'api'\n"
            f"%config FunMusicMagics.base_url = {replaying.base_url!r}\n"
            # The soak makes the same song again and again: each must be a new request, not a
            # song reused from the output directory.
            "%config FunMusicMagics.reuse = False\n"
            + _KERNEL_RESOURCES
        )
        assert setup.status == "ok", setup.reply
        cell = f"%%funmusic --wait --no-stream\n{PROMPT}"
        assert s.run(cell).status == "ok"  # warm up: the worker thread, the pooled connection
        s.value("import gc; gc.collect()")
        before = tuple(s.value("_funmusic_resources()"))
        for i in range(SOAK):
            run = s.run(cell if i % 2 else cell.replace(" --no-stream", ""), timeout=60)
            assert run.status == "ok", run.reply
        s.value("import gc; gc.collect()")
        after = tuple(s.value("_funmusic_resources()"))
        songs = s.value("len(list(__import__('pathlib').Path('funmusic-output').glob('*.mp3')))")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert songs == SOAK + 1 and replaying.posts == SOAK + 1
    _assert_no_growth(before, after)  # type: ignore[arg-type]
