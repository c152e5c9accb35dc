"""Every way a generation can fail, and what the user gets: the right class, status, code,
message, request id, and every audio byte that had arrived (``partial_audio``)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from test_client_support import (
    KEY,
    PROMPT,
    MockService,
    Pieces,
    StallingServer,
    b64,
    event_stream,
    final,
    intermediate,
    json_answer,
    song_stream,
    sse,
)

from funmusic_jupyter._client import FunMusicClient
from funmusic_jupyter._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentInspectionError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    ValidationError,
)

PIECES = [b"first-", b"second-", b"third"]

STATUS_TABLE = [
    (400, "InvalidParameter", BadRequestError),
    (400, "DataInspectionFailed", ContentInspectionError),
    (400, "Arrearage", PermissionDeniedError),
    (401, "InvalidApiKey", AuthenticationError),
    (403, "AccessDenied", PermissionDeniedError),
    (404, "Model.NotExist", BadRequestError),
    (429, "Throttling", RateLimitError),
    (429, "Throttling.RateQuota", RateLimitError),
    (429, "Throttling.AllocationQuota", RateLimitError),
    (500, "InternalError", ServerError),
    (503, "ServiceUnavailable", ServerError),
]


def error_body(
    code: str, message: str = "it went wrong", request_id: str | None = "rid-err"
) -> dict[str, Any]:
    body = {"code": code, "message": message}
    if request_id:
        body["request_id"] = request_id
    return body


async def failure(
    service: MockService, flavour: str, *, stream: bool, **client_kw: Any
) -> APIError:
    """Run one generation that must fail; return the error (checked against the stream's)."""
    client_kw.setdefault("max_retries", 0)
    if flavour == "sync":
        with service.sync_client(**client_kw) as client:
            if not stream:
                with pytest.raises(APIError) as info:
                    client.generate(prompt=PROMPT)
                return info.value
            with pytest.raises(APIError) as info, client.stream(prompt=PROMPT) as s:  # noqa: PT012
                for _ in s:
                    pass
            assert s.partial_audio == info.value.partial_audio
            return info.value
    async with service.async_client(**client_kw) as client:
        if not stream:
            with pytest.raises(APIError) as info:
                await client.generate(prompt=PROMPT)
            return info.value
        with pytest.raises(APIError) as info:  # noqa: PT012
            async with client.stream(prompt=PROMPT) as s:
                async for _ in s:
                    pass
        assert s.partial_audio == info.value.partial_audio
        return info.value


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ---- HTTP status errors ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streaming"])
@pytest.mark.parametrize(
    ("status", "code", "cls"), STATUS_TABLE, ids=[c for _, c, _ in STATUS_TABLE]
)
async def test_status_errors_map_to_classes(
    flavour: str, stream: bool, status: int, code: str, cls: type
) -> None:
    service = MockService(json_answer(error_body(code, f"{code} happened"), status=status))
    err = await failure(service, flavour, stream=stream)
    assert type(err) is cls
    assert (err.status_code, err.code, err.message, err.request_id) == (
        status,
        code,
        f"{code} happened",
        "rid-err",
    )
    assert err.partial_audio == b""
    assert len(service.posts) == 1


@pytest.mark.anyio
async def test_gateway_error_shape_without_request_id(flavour: str) -> None:
    body = {
        "error": {"code": "NotFound", "message": "no such route", "type": "invalid_request_error"}
    }
    err = await failure(MockService(json_answer(body, status=404)), flavour, stream=False)
    assert type(err) is BadRequestError
    assert (err.status_code, err.code, err.message, err.request_id) == (
        404,
        "NotFound",
        "no such route",
        None,
    )


@pytest.mark.anyio
async def test_request_id_from_the_header(flavour: str) -> None:
    body = {"error": {"code": "NotFound", "message": "no such route"}}
    service = MockService(json_answer(body, status=404, headers={"x-request-id": "hdr-42"}))
    err = await failure(service, flavour, stream=True)
    assert err.request_id == "hdr-42"


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 200])
async def test_stream_framed_error_labelled_json(flavour: str, status: int) -> None:
    text = (
        "event:error\n:HTTP_STATUS/400\n"
        + 'data:{"code":"InvalidParameter","message":"lyrics too long","request_id":"rid-9"}\n\n'
    )
    response = httpx.Response(
        status, content=text.encode(), headers={"content-type": "application/json"}
    )
    for stream in (False, True):
        err = await failure(MockService(response), flavour, stream=stream)
        assert type(err) is BadRequestError
        assert (err.status_code, err.code, err.message, err.request_id) == (
            400,
            "InvalidParameter",
            "lyrics too long",
            "rid-9",
        )


@pytest.mark.anyio
async def test_an_unparseable_error_body_is_quoted(flavour: str) -> None:
    response = httpx.Response(
        502, content=b"<html>Bad Gateway</html>", headers={"content-type": "text/html"}
    )
    err = await failure(MockService(response), flavour, stream=False)
    assert type(err) is ServerError and err.status_code == 502
    assert "Bad Gateway" in err.message


# ---- errors inside a 200 stream ----------------------------------------------------------------


def stream_then(after: str, pieces: list[bytes] = PIECES) -> str:
    return "".join(sse(intermediate(p), id=str(i)) for i, p in enumerate(pieces)) + after


@pytest.mark.anyio
@pytest.mark.parametrize("space", [False, True], ids=["event:error", "event: error"])
@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (500, "InternalError", ServerError),
        (400, "DataInspectionFailed", ContentInspectionError),
        (400, "InvalidParameter", BadRequestError),
    ],
)
async def test_error_event_in_the_stream(
    flavour: str, space: bool, status: int, code: str, cls: type
) -> None:
    error_event = sse(
        error_body(code, "failed midway", "rid-s"), event="error", status=status, space=space
    )
    service = MockService(event_stream(stream_then(error_event), piece=9))
    err = await failure(service, flavour, stream=True)
    assert type(err) is cls
    assert (err.status_code, err.code, err.message, err.request_id) == (
        status,
        code,
        "failed midway",
        "rid-s",
    )
    assert err.partial_audio == b"".join(PIECES)


@pytest.mark.anyio
async def test_error_json_in_a_result_event(flavour: str) -> None:
    # No "event:error", no status comment: recognised by its content (code, no output).
    error_event = sse(error_body("InvalidParameter", "bad", None), status=None)
    service = MockService(event_stream(stream_then(error_event)))
    err = await failure(service, flavour, stream=True)
    assert type(err) is BadRequestError
    assert (err.code, err.message) == ("InvalidParameter", "bad")
    assert err.request_id == "rid-1"  # from the earlier events of the same stream
    assert err.partial_audio == b"".join(PIECES)


@pytest.mark.anyio
async def test_error_event_without_data(flavour: str) -> None:
    service = MockService(event_stream(stream_then("event:error\n:HTTP_STATUS/500\n\n")))
    err = await failure(service, flavour, stream=True)
    assert type(err) is ServerError and err.status_code == 500
    assert err.partial_audio == b"".join(PIECES)


# ---- broken streams ----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
    ],
    ids=["ReadError", "RemoteProtocolError"],
)
async def test_connection_dropped_halfway(flavour: str, exc: Exception) -> None:
    text = stream_then(sse(intermediate(b"never-complete")))
    last = text.rindex("id:")
    cut = last + (len(text) - last) // 2  # in the middle of the last event: it never completes
    service = MockService(event_stream(text[:cut], piece=50, error=exc))
    err = await failure(service, flavour, stream=True)
    assert type(err) is StreamInterruptedError
    assert err.partial_audio == b"".join(PIECES)
    assert type(exc).__name__ in err.message and "3 audio chunk(s)" in err.message
    assert err.request_id == "rid-1"


@pytest.mark.anyio
async def test_stream_ended_without_a_stop_event(flavour: str) -> None:
    service = MockService(event_stream(stream_then(""), piece=64))
    err = await failure(service, flavour, stream=True)
    assert type(err) is StreamInterruptedError
    assert "before its final event" in err.message
    assert err.partial_audio == b"".join(PIECES)


@pytest.mark.anyio
async def test_malformed_data_line_is_quoted_truncated(flavour: str) -> None:
    bad = '{"output": {"audio": "' + "x" * 500
    service = MockService(event_stream(stream_then(f"data:{bad}\n\n")))
    err = await failure(service, flavour, stream=True)
    assert type(err) is StreamInterruptedError
    assert repr(bad[:40]) + "… (522 characters)" in err.message
    assert bad[:60] not in err.message  # a short excerpt, not the whole line
    assert err.partial_audio == b"".join(PIECES)


@pytest.mark.anyio
async def test_data_line_that_is_not_an_object(flavour: str) -> None:
    service = MockService(event_stream(stream_then("data:[1, 2]\n\n")))
    err = await failure(service, flavour, stream=True)
    assert type(err) is StreamInterruptedError and "'[1, 2]'" in err.message


@pytest.mark.anyio
async def test_async_idle_timeout_on_a_stalled_stream() -> None:
    service = MockService(event_stream(stream_then(""), piece=30, stall=True))
    with anyio.fail_after(20):  # a guard against hanging, not a timing assertion
        err = await failure(service, "async", stream=True, idle_timeout=0.2)
    assert type(err) is APITimeoutError
    assert "idle_timeout=0.2" in err.message
    assert err.partial_audio == b"".join(PIECES)


@pytest.mark.anyio
async def test_idle_timeout_over_loopback(flavour: str) -> None:
    first = stream_then("").encode()
    with StallingServer(first) as server:
        service_kw = {
            "base_url": server.base_url,
            "api_key": KEY,
            "idle_timeout": 0.3,
            "max_retries": 0,
        }
        if flavour == "sync":
            with FunMusicClient(**service_kw) as client, pytest.raises(APITimeoutError) as info:
                client.generate(prompt=PROMPT, stream=True)
        else:
            from funmusic_jupyter._client import AsyncFunMusicClient

            with anyio.fail_after(20):
                async with AsyncFunMusicClient(**service_kw) as aclient:
                    with pytest.raises(APITimeoutError) as info:
                        await aclient.generate(prompt=PROMPT, stream=True)
    assert info.value.partial_audio == b"".join(PIECES)
    assert info.value.request_id == "rid-1"


@pytest.mark.anyio
async def test_cancelling_a_stream_closes_the_response_and_keeps_the_audio() -> None:
    body = Pieces([stream_then("").encode()], stall=True)
    service = MockService(
        httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)
    )
    async with service.async_client() as client:
        s = client.stream(prompt=PROMPT)
        chunks = 0
        with anyio.move_on_after(20) as scope:
            async with s:
                async for _ in s:
                    chunks += 1
                    if chunks == len(PIECES):
                        scope.cancel()
                        await anyio.lowlevel.checkpoint()  # the cancellation lands here, mid-stream
    assert scope.cancelled_caught
    assert s.partial_audio == b"".join(PIECES)
    assert body.closed and s.song is None


# ---- transport errors --------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streaming"])
@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), APIConnectionError),
        (httpx.ConnectTimeout("timed out"), APITimeoutError),
    ],
)
async def test_connection_failures(flavour: str, stream: bool, exc: Exception, cls: type) -> None:
    service = MockService(exc)
    err = await failure(service, flavour, stream=stream)
    assert type(err) is cls and "fun.test" in err.message
    assert err.status_code is None and err.partial_audio == b""


@pytest.mark.anyio
async def test_read_timeout_without_streaming(flavour: str) -> None:
    service = MockService(httpx.ReadTimeout("timed out"))
    err = await failure(service, flavour, stream=False, max_retries=3)
    assert type(err) is APITimeoutError
    assert "not retried" in err.message and "read_timeout=600" in err.message
    assert len(service.posts) == 1


# ---- downloading -------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://oss.test/a.mp3", "data:audio/mpeg;base64,AAAA", "http:///nohost"],
)
async def test_only_http_urls_are_downloaded(flavour: str, url: str) -> None:
    service = MockService(json_answer(final(url=url)))
    err = await failure(service, flavour, stream=False)
    assert type(err) is APIError and err.code == "InvalidAudioURL"
    assert repr(url) in err.message and err.request_id == "rid-1"
    assert service.gets == []


@pytest.mark.anyio
async def test_download_cap_from_content_length(flavour: str) -> None:
    download = httpx.Response(200, content=b"x" * 1000)
    service = MockService(json_answer(final()), download=download)
    err = await failure(service, flavour, stream=False, max_download_bytes=999)
    assert err.code == "DownloadTooLarge" and "max_download_bytes=999" in err.message
    assert "Signature" not in err.message  # the signed query is not repeated


@pytest.mark.anyio
async def test_download_cap_enforced_while_reading(flavour: str) -> None:
    body = Pieces([b"x" * 100] * 50)  # no Content-Length: the cap must stop the reading
    service = MockService(json_answer(final()), download=httpx.Response(200, stream=body))
    err = await failure(service, flavour, stream=False, max_download_bytes=1000)
    assert err.code == "DownloadTooLarge"
    assert body.sent == 11  # stopped at the first piece past the cap, not after all 50


@pytest.mark.anyio
async def test_download_failure_status(flavour: str) -> None:
    service = MockService(
        json_answer(final()), download=httpx.Response(403, content=b"<Error>AccessDenied</Error>")
    )
    err = await failure(service, flavour, stream=False)
    assert (type(err), err.code, err.status_code) == (APIError, "DownloadFailed", 403)
    assert err.request_id == "rid-1"


@pytest.mark.anyio
async def test_async_download_timeout() -> None:
    stalled = httpx.Response(200, stream=Pieces([b"abc"], stall=True))
    service = MockService(json_answer(final()), download=stalled)
    with anyio.fail_after(20):
        err = await failure(service, "async", stream=False, download_timeout=0.2)
    assert type(err) is APITimeoutError and "download_timeout=0.2" in err.message


@pytest.mark.anyio
async def test_download_transport_error(flavour: str) -> None:
    service = MockService(json_answer(final()), download=httpx.ConnectError("refused"))
    err = await failure(service, flavour, stream=False)
    assert type(err) is APIConnectionError and "oss.test" in err.message


# ---- the key never shows -----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streaming"])
async def test_a_key_echoed_by_the_server_is_redacted(flavour: str, stream: bool) -> None:
    body = error_body("InvalidApiKey", f"Invalid API-key provided: {KEY}")
    err = await failure(MockService(json_answer(body, status=401)), flavour, stream=stream)
    assert type(err) is AuthenticationError
    for text in (str(err), repr(err), err.message, err.one_line(), *map(str, err.args)):
        assert KEY not in text
    assert "sk-…cdef" in err.message


@pytest.mark.anyio
async def test_a_key_echoed_where_the_message_is_cut_is_redacted_whole(flavour: str) -> None:
    # The key straddles the one-line cut (200 characters): redacting after the cut would leave
    # half a key that no longer matches. The full body is kept, redacted too.
    message = "x" * 190 + f" {KEY}\nsecond line {KEY}"
    body = error_body("InvalidApiKey", message)
    err = await failure(MockService(json_answer(body, status=401)), flavour, stream=False)
    assert err.body is not None and "second line" in err.body
    for text in (str(err), repr(err), err.message, err.body):
        assert KEY not in text and KEY[:12] not in text


@pytest.mark.anyio
async def test_a_key_echoed_inside_the_stream_is_redacted(flavour: str) -> None:
    error_event = sse(
        error_body("InvalidParameter", f"key {KEY} not allowed"), event="error", status=400
    )
    err = await failure(MockService(event_stream(stream_then(error_event))), flavour, stream=True)
    assert KEY not in str(err) and KEY not in repr(err)


@pytest.mark.anyio
async def test_malformed_line_echoing_the_key_is_redacted(flavour: str) -> None:
    err = await failure(MockService(event_stream(f"data:oops {KEY}\n\n")), flavour, stream=True)
    assert KEY not in str(err)


def test_error_partial_audio_is_the_streams_bytes_not_a_copy_per_access() -> None:
    # After an error the stream still answers partial_audio, equal to the error's.
    text = stream_then("event:error\n:HTTP_STATUS/500\n" + json.dumps({}) + "\n\n")
    service = MockService(event_stream(text))
    with service.sync_client(max_retries=0) as client:
        s = client.stream(prompt=PROMPT)
        with pytest.raises(APIError), s:
            for _ in s:
                pass
    assert s.partial_audio == b"".join(PIECES)
    assert s.bytes_received == len(b"".join(PIECES))


def test_a_successful_stream_after_an_error_on_another_one() -> None:
    service = MockService(
        json_answer(error_body("InternalError"), status=500),
        event_stream(song_stream([b"ok"])),
    )
    with service.sync_client(max_retries=0) as client:
        with pytest.raises(ServerError):
            client.generate(prompt=PROMPT, stream=True)
        assert client.generate(prompt=PROMPT, stream=True).audio == b"ok"


def test_b64_helper_round_trip() -> None:
    assert b64(b"\x00\xff") == "AP8="


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("connect_timeout", -1), ("read_timeout", 0), ("idle_timeout", -3.0),
        ("download_timeout", float("nan")), ("idle_timeout", "60"), ("max_retries", -5),
        ("max_retries", 1.5), ("max_retry_wait", -1), ("max_download_bytes", 0),
        ("headers", "X-Fault: x"),
    ],
)
def test_bad_client_options_are_one_line_configuration_errors(option: str, value: object) -> None:
    # Before: httpx's "Timeout value out of range" mid-request, or silently accepted.
    with pytest.raises(ConfigurationError, match=f"^{option} must be .*; got "):
        FunMusicClient(base_url="http://127.0.0.1:9/api/v1", **{option: value})


def test_bad_call_headers_are_refused_before_any_request() -> None:
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(500))
    with FunMusicClient(base_url="http://127.0.0.1:9/api/v1", transport=transport) as client:
        for bad in ("X-FunMusic-Fault: inspection", {"X-FunMusic-Fault": 3}):
            with pytest.raises(ValidationError, match="^headers must be a mapping"):
                client.generate(prompt=PROMPT, headers=bad)  # type: ignore[arg-type]
    assert sent == []


@pytest.mark.parametrize(
    "headers", [{"X-Note": "café"}, {"X-Note": "a\r\nX-Evil: 1"}, {"X-Nöte": "a"}]
)
def test_headers_that_cannot_be_sent_are_refused_before_any_request(
    headers: dict[str, str],
) -> None:
    # Before: a raw UnicodeEncodeError from httpx, or a header split in two on the wire.
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(500))
    with FunMusicClient(base_url="http://127.0.0.1:9/api/v1", transport=transport) as client:
        with pytest.raises(ValidationError, match="must be ASCII text on one line"):
            client.generate(prompt=PROMPT, headers=headers)
    with pytest.raises(ConfigurationError, match="must be ASCII text on one line"):
        FunMusicClient(base_url="http://127.0.0.1:9/api/v1", headers=headers)
    assert sent == []
