"""Fault injection (``X-FunMusic-Fault``): every fault, streaming and not, over real HTTP."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from funmusic_jupyter._errors import ServerError, error_from_response
from funmusic_jupyter.simulator import FAULT_HEADER, SIMULATED_HEADER, SimulatorServer
from funmusic_jupyter.simulator._faults import (
    FAULT_SYNTAX,
    Fault,
    FaultSyntaxError,
    parse_fault,
)

GEN = "/services/audio/music/generation"
SSE = {"X-DashScope-SSE": "enable"}
# A streaming-valid prompt: faults strike after a few chunks, so little is ever synthesized.
STREAM_BODY = {"model": "fun-music-v1",
               "input": {"prompt": "A bright pop song about a bicycle ride in spring"}}
# Short Chinese lyrics make the shortest (30 s) song, for the faults that need a whole song.
JSON_BODY = {"model": "fun-music-v1", "input": {"lyrics": "[verse]\n春风吹过山岗\n我们一起歌唱"}}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:
        yield server


@pytest.fixture(scope="module")
def http(sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=60) as client:
        yield client


def _events(raw: bytes) -> list[list[str]]:
    text = raw.decode("utf-8")
    blocks = text.split("\n\n")
    return [b.split("\n") for b in blocks if b]


def _stream_until_broken(http: httpx.Client, fault: str,
                         body: dict[str, Any] = STREAM_BODY) -> tuple[bytes, Exception | None]:
    """Every byte the stream delivered, and how it ended (None: a clean end)."""
    received = bytearray()
    with http.stream("POST", GEN, json=body, headers={**SSE, FAULT_HEADER: fault}) as r:
        assert r.status_code == 200 and r.headers[SIMULATED_HEADER] == "true"
        try:
            for piece in r.iter_raw():
                received += piece
        except (httpx.RemoteProtocolError, httpx.ReadTimeout) as exc:
            return bytes(received), exc
    return bytes(received), None


def _audio_events(events: list[list[str]]) -> list[dict[str, Any]]:
    out = []
    for lines in events:
        assert lines[1] == "event:result" and lines[2] == ":HTTP_STATUS/200"
        data = json.loads(lines[3][5:])
        assert data["output"]["finish_reason"] == "null"
        assert base64.b64decode(data["output"]["audio"]["data"])
        out.append(data)
    return out


# -------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("value", "fault"), [
    ("drop-after=3", Fault("drop-after", after=3)),
    ("stall-after=0", Fault("stall-after", after=0)),
    ("status=500", Fault("status", status=500)),
    (" STATUS=503 ", Fault("status", status=503)),
    ("throttle=2", Fault("throttle", seconds=2.0)),
    ("throttle=0.5x2", Fault("throttle", seconds=0.5, times=2)),
    ("error-event-after=1", Fault("error-event-after", after=1)),
    ("malformed-after=4", Fault("malformed-after", after=4)),
    ("inspection", Fault("inspection")),
])
def test_parse_fault(value: str, fault: Fault) -> None:
    assert parse_fault(value) == fault
    assert parse_fault(fault.header_value()) == fault


@pytest.mark.parametrize("value", [
    "", "drop", "drop-after", "drop-after=", "drop-after=-1", "drop-after=two", "drop-after=1.5",
    "status=404", "status=", "throttle=soon", "throttle=1x0", "throttle=-1", "throttle=99999",
    "inspection=1", "explode", "drop_after=1",
])
def test_parse_fault_refuses_what_it_does_not_know(value: str) -> None:
    with pytest.raises(FaultSyntaxError) as info:
        parse_fault(value)
    message = str(info.value)
    assert repr(value) in message and all(v in message for v in FAULT_SYNTAX)


def test_no_header_is_no_fault() -> None:
    assert parse_fault(None) is None


def test_unknown_fault_is_a_400_naming_the_valid_ones(http: httpx.Client) -> None:
    r = http.post(GEN, json=JSON_BODY, headers={FAULT_HEADER: "drop-afer=2"})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "InvalidParameter" and r.headers["x-request-id"] == body["request_id"]
    assert "'drop-afer=2'" in body["message"]
    assert all(v in body["message"] for v in FAULT_SYNTAX)


# ---------------------------------------------------------------- faults in a stream


@pytest.mark.parametrize("n", [0, 2])
def test_drop_after_breaks_the_connection_mid_stream(http: httpx.Client, n: int) -> None:
    raw, ended = _stream_until_broken(http, f"drop-after={n}")
    assert isinstance(ended, httpx.RemoteProtocolError)  # an incomplete chunked body
    assert len(_audio_events(_events(raw))) == n
    assert raw.endswith(b"\n\n") or (n == 0 and raw == b"")  # whole events, then the break


def test_drop_after_more_chunks_than_the_song_has_strikes_before_the_final_event(
    http: httpx.Client,
) -> None:
    raw, ended = _stream_until_broken(http, "drop-after=100000")
    assert isinstance(ended, httpx.RemoteProtocolError)
    events = _audio_events(_events(raw))
    assert len(events) >= 30  # every audio chunk of a 30 s+ song, then no final event


def test_stall_after_keeps_the_connection_open_and_silent(sim: SimulatorServer) -> None:
    timeout = httpx.Timeout(60, read=2.0)
    with httpx.Client(base_url=sim.base_url, timeout=timeout) as client:
        raw, ended = _stream_until_broken(client, "stall-after=1")
    assert isinstance(ended, httpx.ReadTimeout)
    assert len(_audio_events(_events(raw))) == 1


def test_error_event_after_sends_a_dashscope_error_inside_the_200_stream(
    http: httpx.Client,
) -> None:
    raw, ended = _stream_until_broken(http, "error-event-after=2")
    assert ended is None  # the stream ends cleanly after the error event
    events = _events(raw)
    assert len(_audio_events(events[:2])) == 2 and len(events) == 3
    assert events[2][:3] == ["id:3", "event:error", ":HTTP_STATUS/500"]
    data = json.loads(events[2][3][5:])
    request_id = json.loads(events[0][3][5:])["request_id"]
    assert data == {"code": "InternalError", "message": data["message"], "request_id": request_id}
    assert data["message"]


def test_malformed_after_sends_a_data_line_that_is_not_json(http: httpx.Client) -> None:
    raw, ended = _stream_until_broken(http, "malformed-after=1")
    assert ended is None
    events = _events(raw)
    assert len(_audio_events(events[:1])) == 1 and len(events) == 2
    assert events[1][:3] == ["id:2", "event:result", ":HTTP_STATUS/200"]
    assert events[1][3].startswith("data:")
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[1][3][5:])


# ------------------------------------------------------------------ status faults


@pytest.mark.parametrize(("fault", "status", "code"), [
    ("status=500", 500, "InternalError"),
    ("status=503", 503, "ServiceUnavailable"),
    ("inspection", 400, "DataInspectionFailed"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_status_faults_answer_before_any_audio(http: httpx.Client, fault: str, status: int,
                                               code: str, stream: bool) -> None:
    headers = {FAULT_HEADER: fault, **(SSE if stream else {})}
    r = http.post(GEN, json=STREAM_BODY, headers=headers)
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"request_id", "code", "message"} and body["code"] == code
    assert r.headers["x-request-id"] == body["request_id"]
    assert r.headers[SIMULATED_HEADER] == "true"


def test_throttle_answers_429_with_retry_after_every_time(http: httpx.Client) -> None:
    for _ in range(2):
        r = http.post(GEN, json=JSON_BODY, headers={FAULT_HEADER: "throttle=2"})
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        assert r.json()["code"] == "Throttling.RateQuota"


def test_throttle_times_lets_the_retry_of_the_same_body_through(http: httpx.Client) -> None:
    # A body of its own, so no other test has used up its attempts.
    body = {"model": "fun-music-v1",
            "input": {"prompt": f"A cheerful song number {uuid.uuid4().hex[:8]} about trains"}}
    headers = {**SSE, FAULT_HEADER: "throttle=0.5x2"}
    for _ in range(2):
        r = http.post(GEN, json=body, headers=headers)
        assert r.status_code == 429 and r.headers["retry-after"] == "0.5"
    other = {"model": "fun-music-v1", "input": {**body["input"], "gender": "male"}}
    assert http.post(GEN, json=other, headers=headers).status_code == 429  # its first attempt
    with http.stream("POST", GEN, json=body, headers=headers) as r:  # the third attempt
        assert r.status_code == 200
        assert next(r.iter_lines()) == "id:1"


# ------------------------------------------------------------- non-streaming faults


def test_drop_without_streaming_cuts_the_json_body(http: httpx.Client) -> None:
    with http.stream("POST", GEN, json=JSON_BODY, headers={FAULT_HEADER: "drop-after=0"}) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            r.read()


def test_stall_without_streaming_sends_headers_then_nothing(sim: SimulatorServer) -> None:
    with httpx.Client(base_url=sim.base_url, timeout=httpx.Timeout(60, read=1.0)) as client, \
            client.stream("POST", GEN, json=JSON_BODY,
                          headers={FAULT_HEADER: "stall-after=0"}) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            r.read()


def test_error_event_without_streaming_is_a_stream_framed_500(http: httpx.Client) -> None:
    r = http.post(GEN, json=JSON_BODY, headers={FAULT_HEADER: "error-event-after=0"})
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.text.startswith("event:error\n:HTTP_STATUS/500\ndata:{")
    error = error_from_response(r.status_code, r.text, r.headers)
    assert isinstance(error, ServerError) and error.code == "InternalError"
    assert error.request_id == r.headers["x-request-id"]


def test_malformed_without_streaming_is_a_200_with_broken_json(http: httpx.Client) -> None:
    r = http.post(GEN, json=JSON_BODY, headers={FAULT_HEADER: "malformed-after=0"})
    assert r.status_code == 200 and r.text.startswith('{"output":')
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)


def test_a_normal_request_after_the_faults_still_works(http: httpx.Client) -> None:
    # Faults are per request: the server is not left in a broken state.
    r = http.post(GEN, json=JSON_BODY)
    assert r.status_code == 200 and r.json()["output"]["finish_reason"] == "stop"
