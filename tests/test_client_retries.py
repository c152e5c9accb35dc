"""Automatic retries: only where generation provably did not start (a connection that could
not be opened, a 429 before any audio), honouring Retry-After within bounds. Never after a
5xx, a timeout once sent, or any audio: those may already be billed.

Waits are observed through the clients' sleep functions, replaced here: no test sleeps.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from test_client_support import (
    PROMPT,
    MockService,
    event_stream,
    final,
    intermediate,
    json_answer,
    song_stream,
    sse,
)

from funmusic_jupyter import _async_client, _sync_client
from funmusic_jupyter._errors import APIError, APITimeoutError, RateLimitError, ServerError
from funmusic_jupyter._wire import default_backoff, retry_wait


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []

    def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    async def fake_asleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(_sync_client, "_sleep", fake_sleep)
    monkeypatch.setattr(_async_client, "_asleep", fake_asleep)
    return recorded


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[False, True], ids=["plain", "streaming"])
def streaming(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def success(stream: bool) -> httpx.Response:
    if stream:
        return event_stream(song_stream([b"song"]))
    return json_answer(final())


def throttled(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {
        "code": "Throttling.RateQuota",
        "message": "Requests rate limit exceeded",
        "request_id": "t",
    }
    return json_answer(body, status=429, headers=headers)


async def generate(service: MockService, flavour: str, stream: bool, **client_kw: Any) -> Any:
    if flavour == "sync":
        with service.sync_client(**client_kw) as client:
            return client.generate(prompt=PROMPT, stream=stream)
    async with service.async_client(**client_kw) as client:
        return await client.generate(prompt=PROMPT, stream=stream)


async def fails(service: MockService, flavour: str, stream: bool, **client_kw: Any) -> APIError:
    with pytest.raises(APIError) as info:
        await generate(service, flavour, stream, **client_kw)
    return info.value


# ---- retried -----------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ConnectTimeout("timed out")])
async def test_connect_failure_is_retried_then_succeeds(
    flavour: str, streaming: bool, waits: list[float], exc: Exception
) -> None:
    service = MockService(exc, success(streaming), audio=b"song")
    song = await generate(service, flavour, streaming)
    assert song.audio == b"song"
    assert len(service.posts) == 2
    assert waits == [1.0]


@pytest.mark.anyio
async def test_429_honours_retry_after(flavour: str, streaming: bool, waits: list[float]) -> None:
    service = MockService(throttled("3"), throttled("0.5"), success(streaming), audio=b"song")
    song = await generate(service, flavour, streaming)
    assert song.audio == b"song"
    assert len(service.posts) == 3
    assert waits == [3.0, 0.5]


@pytest.mark.anyio
async def test_429_without_retry_after_backs_off(flavour: str, waits: list[float]) -> None:
    service = MockService(throttled(), throttled(), success(False), audio=b"song")
    await generate(service, flavour, False, max_retries=5)
    assert waits == [1.0, 2.0]


@pytest.mark.anyio
async def test_retries_are_bounded_by_max_retries(
    flavour: str, streaming: bool, waits: list[float]
) -> None:
    service = MockService(throttled("1"))
    err = await fails(service, flavour, streaming, max_retries=2)
    assert type(err) is RateLimitError and err.retry_after == 1.0
    assert len(service.posts) == 3  # the first try and two retries
    assert waits == [1.0, 1.0]


@pytest.mark.anyio
async def test_backoff_is_capped_by_max_retry_wait(flavour: str, waits: list[float]) -> None:
    service = MockService(httpx.ConnectError("refused"))
    await fails(service, flavour, False, max_retries=4, max_retry_wait=3.0)
    assert waits == [1.0, 2.0, 3.0, 3.0]
    assert len(service.posts) == 5


@pytest.mark.anyio
async def test_a_retry_after_beyond_max_retry_wait_is_not_waited_out(
    flavour: str, waits: list[float]
) -> None:
    service = MockService(throttled("120"), success(False))
    err = await fails(service, flavour, False, max_retry_wait=30.0)
    assert type(err) is RateLimitError and err.retry_after == 120.0
    assert len(service.posts) == 1 and waits == []


@pytest.mark.anyio
async def test_max_retries_zero_never_retries(flavour: str, waits: list[float]) -> None:
    service = MockService(httpx.ConnectError("refused"), success(False))
    await fails(service, flavour, False, max_retries=0)
    assert len(service.posts) == 1 and waits == []


@pytest.mark.anyio
async def test_throttling_event_before_any_audio_is_retried(
    flavour: str, waits: list[float]
) -> None:
    # A 200 stream whose first event is a throttling error: nothing was generated yet.
    refused = sse(
        {"code": "Throttling", "message": "slow down", "request_id": "t"}, event="error", status=429
    )
    service = MockService(event_stream(refused), success(True))
    song = await generate(service, flavour, True)
    assert song.audio == b"song" and len(service.posts) == 2 and waits == [1.0]


# ---- never retried -----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_not_retried(
    flavour: str, streaming: bool, waits: list[float], status: int
) -> None:
    body = {"code": "InternalError" if status == 500 else "ServiceUnavailable", "message": "x"}
    service = MockService(json_answer(body, status=status), success(streaming))
    err = await fails(service, flavour, streaming)
    assert type(err) is ServerError
    assert len(service.posts) == 1 and waits == []


@pytest.mark.anyio
async def test_read_timeout_is_not_retried(
    flavour: str, streaming: bool, waits: list[float]
) -> None:
    service = MockService(httpx.ReadTimeout("timed out"), success(streaming))
    err = await fails(service, flavour, streaming)
    assert type(err) is APITimeoutError
    assert len(service.posts) == 1 and waits == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc", [httpx.WriteTimeout("w"), httpx.ReadError("reset"), httpx.RemoteProtocolError("closed")]
)
async def test_failures_after_sending_are_not_retried(
    flavour: str, waits: list[float], exc: Exception
) -> None:
    service = MockService(exc, success(False))
    await fails(service, flavour, False)
    assert len(service.posts) == 1 and waits == []


@pytest.mark.anyio
async def test_nothing_is_retried_once_audio_arrived(flavour: str, waits: list[float]) -> None:
    refused = sse({"code": "Throttling", "message": "slow down"}, event="error", status=429)
    service = MockService(event_stream(sse(intermediate(b"paid-for")) + refused), success(True))
    err = await fails(service, flavour, True)
    assert type(err) is RateLimitError and err.partial_audio == b"paid-for"
    assert len(service.posts) == 1 and waits == []


@pytest.mark.anyio
async def test_a_dropped_stream_is_not_retried(flavour: str, waits: list[float]) -> None:
    service = MockService(
        event_stream(sse(intermediate(b"abc")), error=httpx.ReadError("reset")), success(True)
    )
    err = await fails(service, flavour, True)
    assert err.partial_audio == b"abc"
    assert len(service.posts) == 1 and waits == []


# ---- the decision itself -----------------------------------------------------------------------


def test_retry_wait_table() -> None:
    rate = RateLimitError("x", retry_after=2.0)
    kw = {"max_retries": 2, "max_retry_wait": 30.0}
    assert retry_wait(httpx.ConnectError("x"), attempt=0, audio_received=0, **kw) == 1.0
    assert retry_wait(httpx.ConnectError("x"), attempt=1, audio_received=0, **kw) == 2.0
    assert retry_wait(httpx.ConnectError("x"), attempt=2, audio_received=0, **kw) is None
    assert retry_wait(rate, attempt=0, audio_received=0, **kw) == 2.0
    assert retry_wait(rate, attempt=0, audio_received=1, **kw) is None
    assert retry_wait(httpx.ReadTimeout("x"), attempt=0, audio_received=0, **kw) is None
    assert retry_wait(ServerError("x", status_code=503), attempt=0, audio_received=0, **kw) is None
    assert default_backoff(10, 30.0) == 30.0
