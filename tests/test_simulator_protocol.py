"""The simulator speaks Fun-Music's wire protocol: real loopback HTTP, checked at the byte level.

Every request goes through a real uvicorn server (``SimulatorServer``) with ``httpx``; nothing
here uses the package's own client, so a shared misunderstanding cannot hide.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from funmusic_jupyter._errors import ConfigurationError, ValidationError
from funmusic_jupyter._validation import build_request
from funmusic_jupyter.simulator import SIMULATED_HEADER, SimulatorServer, create_app, start_embedded
from funmusic_jupyter.simulator._embedded import _embedded_speed
from funmusic_jupyter.simulator._server import is_loopback
from funmusic_jupyter.simulator._state import SongCache

GEN = "/services/audio/music/generation"
TTS = "/services/audio/tts/SpeechSynthesizer"
SSE = {"X-DashScope-SSE": "enable"}
ROOT = Path(__file__).resolve().parents[1]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _english_lyrics(words: int) -> str:
    pool = ("morning light falls softly on the quiet river where we used to walk and sing "
            "together under open summer skies").split()
    lines, n, tags = [], 0, ["verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"]
    for i, tag in enumerate(tags):
        lines.append(f"[{tag}]")
        for _ in range(4):
            take = min(8, words - n)
            if take <= 0:
                break
            lines.append(" ".join(pool[(n + k + i) % len(pool)] for k in range(take)).capitalize())
            n += take
        lines.append("")
    return "\n".join(lines).strip() + "\n"


EN_LYRICS = _english_lyrics(208)  # inside the streaming window of 200–250 words
ZH_LYRICS = "[verse]\n春风吹过山岗\n我们一起歌唱\n\n[chorus]\n阳光照在脸上\n心里充满希望"


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    input: dict[str, Any]
    streams: tuple[bool, ...] = (False, True)

    @property
    def fmt(self) -> str:
        return str(self.input.get("format", "mp3"))

    @property
    def sent_lyrics(self) -> str | None:
        lyrics = self.input.get("lyrics")
        return lyrics if isinstance(lyrics, str) else None


CASES = [
    Case("generation-prompt-mp3", GEN,
         {"prompt": "Fresh summer folk song, acoustic guitar and harmonica, upbeat",
          "gender": "female"}),
    Case("tts-lyrics-en-wav", TTS, {"lyrics": EN_LYRICS, "gender": "male", "format": "wav"}),
    Case("tts-prompt-zh-mp3", TTS, {"prompt": "一首关于夏天海边的欢快歌曲", "format": "mp3"}),
    # Both fields: the lyrics win and the prompt is ignored, as the service documents.
    Case("generation-lyrics-zh-mp3", GEN,
         {"lyrics": ZH_LYRICS, "prompt": "ignored", "gender": "male"}, streams=(False,)),
]
PARAMS = [pytest.param(c, s, id=f"{c.name}-{'stream' if s else 'json'}")
          for c in CASES for s in c.streams]


@dataclass
class Result:
    status: int
    headers: httpx.Headers
    raw: bytes
    body: dict[str, Any] | None = None  # non-streaming JSON
    events: list[list[str]] = field(default_factory=list)  # streaming: each event's lines
    audio: bytes = b""  # the download (JSON) or the concatenated chunks (stream)


def parse_events(raw: bytes) -> list[list[str]]:
    """Split an SSE body into events, each the list of its lines; the body must end an event."""
    assert raw.endswith(b"\n\n"), raw[-80:]
    return [block.split("\n") for block in raw.decode("utf-8")[:-2].split("\n\n")]


def event_data(lines: list[str]) -> dict[str, Any]:
    assert lines[-1].startswith("data:")
    data: dict[str, Any] = json.loads(lines[-1][5:])
    return data


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:
        yield server


@pytest.fixture(scope="module")
def http(sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=120) as client:
        yield client


Results = Callable[[Case, bool], Result]


@pytest.fixture(scope="module")
def results(http: httpx.Client) -> Results:
    """Lazily made songs, one request per (case, stream), shared by the tests of this module."""
    cache: dict[tuple[str, bool], Result] = {}

    def get(case: Case, stream: bool) -> Result:
        if (case.name, stream) not in cache:
            cache[(case.name, stream)] = _request(http, case, stream)
        return cache[(case.name, stream)]

    return get


def _request(http: httpx.Client, case: Case, stream: bool) -> Result:
    body = {"model": "fun-music-v1", "input": case.input}
    if not stream:
        r = http.post(case.path, json=body)
        assert r.status_code == 200, r.text
        result = Result(r.status_code, r.headers, r.content, body=r.json())
        dl = httpx.get(result.body["output"]["audio"]["url"], timeout=60)  # type: ignore[index]
        assert dl.status_code == 200
        result.audio = dl.content
        return result
    with http.stream("POST", case.path, json=body, headers=SSE) as r:
        raw = r.read()
    assert r.status_code == 200, raw[:300]
    result = Result(r.status_code, r.headers, raw, events=parse_events(raw))
    result.audio = b"".join(base64.b64decode(event_data(e)["output"]["audio"]["data"])
                            for e in result.events[:-1])
    return result


# ---------------------------------------------------------------------- success shapes


@pytest.mark.parametrize(("case", "stream"), [p for p in PARAMS if p.values[1] is False])
def test_json_answer_is_shaped_like_the_vendor_example(
    case: Case, stream: bool, results: Results, sim: SimulatorServer
) -> None:
    res = results(case, stream)
    body = res.body
    assert body is not None
    assert res.headers["content-type"] == "application/json"
    assert res.headers[SIMULATED_HEADER] == "true"
    assert set(body) == {"output", "usage", "request_id"}
    assert UUID.match(body["request_id"]) and res.headers["x-request-id"] == body["request_id"]
    out = body["output"]
    assert set(out) == {"audio", "extra_info", "finish_reason"}
    assert out["finish_reason"] == "stop"
    audio = out["audio"]
    assert set(audio) == {"data", "expires_at", "id", "url"}
    assert audio["data"] == ""
    assert audio["id"].startswith("audio_") and UUID.match(audio["id"][6:])
    assert type(audio["expires_at"]) is int and audio["expires_at"] > time.time() + 86000
    extra = out["extra_info"]
    assert set(extra) == {"channels", "lyrics", "sample_rate"}
    assert type(extra["sample_rate"]) is int and extra["sample_rate"] == 48000
    assert type(extra["channels"]) is int and extra["channels"] == 2
    assert type(body["usage"]["duration"]) is int and 30 <= body["usage"]["duration"] <= 240
    if case.sent_lyrics is not None:
        assert extra["lyrics"] == case.sent_lyrics  # returned exactly as sent
    else:
        assert "[verse]" in extra["lyrics"] and "[chorus]" in extra["lyrics"]
    # An OSS-shaped link to the simulator's own file route, signed, expiring at expires_at.
    url = urlsplit(audio["url"])
    assert (url.scheme, url.hostname, url.port) == ("http", "127.0.0.1", sim.port)
    assert re.fullmatch(rf"/oss/fun-music/\d{{8}}/{audio['id'][6:]}\.{case.fmt}", url.path)
    query = parse_qs(url.query)
    assert query["Expires"] == [str(audio["expires_at"])] and query["Signature"][0]


@pytest.mark.parametrize(("case", "stream"), [p for p in PARAMS if p.values[1] is True])
def test_stream_is_framed_exactly_like_dashscope(
    case: Case, stream: bool, results: Results
) -> None:
    res = results(case, stream)
    assert res.headers["content-type"] == "text/event-stream;charset=UTF-8"
    assert res.headers[SIMULATED_HEADER] == "true"
    request_id = res.headers["x-request-id"]
    assert UUID.match(request_id)
    assert len(res.events) >= 3
    audio_id = None
    for n, lines in enumerate(res.events, start=1):
        assert lines[:3] == [f"id:{n}", "event:result", ":HTTP_STATUS/200"], lines[:3]
        assert len(lines) == 4 and lines[3].startswith("data:{")
        data = event_data(lines)
        assert data["request_id"] == request_id
        audio = data["output"]["audio"]
        audio_id = audio_id or audio["id"]
        assert audio["id"] == audio_id and audio_id.startswith("audio_")
        assert type(audio["expires_at"]) is int
        if n < len(res.events):
            assert set(data) == {"output", "request_id"}
            assert set(data["output"]) == {"audio", "finish_reason"}
            assert data["output"]["finish_reason"] == "null"  # the string, not JSON null
            assert set(audio) == {"data", "expires_at", "id"}
            assert base64.b64decode(audio["data"], validate=True)
    final = event_data(res.events[-1])
    assert set(final) == {"output", "usage", "request_id"}
    assert final["output"]["finish_reason"] == "stop"
    assert final["output"]["audio"]["data"] == ""
    assert final["output"]["audio"]["url"].startswith("http://127.0.0.1:")
    extra = final["output"]["extra_info"]
    assert set(extra) == {"channels", "sample_rate", "lyrics"}
    assert extra["sample_rate"] == "48000"  # a string in the stream's final event
    assert extra["channels"] == 2
    assert type(final["usage"]["duration"]) is int
    # About one second of audio per event.
    assert abs((len(res.events) - 1) - final["usage"]["duration"]) <= 2
    if case.sent_lyrics is not None:
        assert extra["lyrics"] == case.sent_lyrics
    # The compact JSON the vendor's Java sample finds by substring.
    assert '"finish_reason":"null"' in res.events[0][3]
    assert res.events[0][3].startswith('data:{"output":{"audio":{"data":"')


@pytest.mark.parametrize("case", [c for c in CASES if True in c.streams], ids=lambda c: c.name)
def test_stream_chunks_equal_the_non_streaming_download(
    case: Case, results: Results
) -> None:
    streamed, whole = results(case, True), results(case, False)
    assert streamed.audio and streamed.audio == whole.audio
    final = event_data(streamed.events[-1])
    assert final["output"]["extra_info"]["lyrics"] == whole.body["output"]["extra_info"]["lyrics"]  # type: ignore[index]
    assert final["usage"]["duration"] == whole.body["usage"]["duration"]  # type: ignore[index]
    # The stream's own URL serves the same file.
    dl = httpx.get(final["output"]["audio"]["url"], timeout=60)
    assert dl.status_code == 200 and dl.content == streamed.audio


@pytest.mark.parametrize("case", CASES[:2], ids=lambda c: c.name)
def test_download_has_the_format_content_type_and_ranges(
    case: Case, results: Results
) -> None:
    res = results(case, False)
    url = res.body["output"]["audio"]["url"]  # type: ignore[index]
    expected = {"mp3": "audio/mpeg", "wav": "audio/wav"}[case.fmt]
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["content-type"] == expected
    assert int(head.headers["content-length"]) == len(res.audio) and head.content == b""
    assert head.headers[SIMULATED_HEADER] == "true"
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == res.audio[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(res.audio)}"


# -------------------------------------------------------------------------- errors


def _assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"request_id", "code", "message"}
    assert body["code"] == code and body["message"]
    assert UUID.match(body["request_id"]) and r.headers["x-request-id"] == body["request_id"]
    assert r.headers[SIMULATED_HEADER] == "true"
    return body


@pytest.mark.parametrize("path", [GEN, TTS])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_only_post_is_allowed(http: httpx.Client, path: str, method: str) -> None:
    r = http.request(method, path)
    body = _assert_error(r, 405, "MethodNotAllowed")
    assert method in body["message"] and r.headers["allow"] == "POST"


def test_unknown_path_is_a_dashscope_shaped_404(http: httpx.Client) -> None:
    body = _assert_error(http.post("/services/audio/music/generate", json={}), 404, "NotFound")
    assert GEN in body["message"]


@pytest.mark.parametrize(("header", "stream"), [
    ("enable", True), ("ENABLE", True), ("Enable", True),
    ("disable", False), ("true", False), (None, False),
])
def test_streaming_only_with_the_sse_header(http: httpx.Client, header: str | None,
                                            stream: bool) -> None:
    # Streaming and non-streaming have different limits, so the 400 tells which one was used.
    headers = {} if header is None else {"X-DashScope-SSE": header}
    r = http.post(GEN, headers=headers,
                  json={"model": "fun-music-v1", "input": {"lyrics": "[verse]\nhi"}})
    body = _assert_error(r, 400, "InvalidParameter")
    assert ("for streaming" in body["message"]) is stream, body["message"]


@pytest.mark.parametrize(("raw", "expected"), [
    (b"{not json", "got malformed JSON"),
    (b"", "got malformed JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "must be a JSON object; got list"),
    (b'{"model": "fun-music-v1", "input": "sing"}', "input must be a JSON object; got str"),
])
def test_malformed_bodies_are_invalid_parameter(http: httpx.Client, raw: bytes,
                                                expected: str) -> None:
    r = http.post(GEN, content=raw, headers={"content-type": "application/json"})
    assert expected in _assert_error(r, 400, "InvalidParameter")["message"]


def test_oversized_body_is_refused(http: httpx.Client) -> None:
    r = http.post(GEN, content=b'{"model": "' + b"x" * (2 << 20) + b'"}')
    assert "at most" in _assert_error(r, 400, "InvalidParameter")["message"]


def test_unknown_model_is_404_and_the_preview_model_is_accepted(http: httpx.Client) -> None:
    good = {"prompt": "a song about rain"}
    body = _assert_error(http.post(GEN, json={"model": "qwen-tts", "input": good}),
                         404, "Model.NotExist")
    assert body["message"] == "Model not exist."
    # fun-music-preview passes the model check and meets the same validation (bad gender).
    r = http.post(GEN, json={"model": "fun-music-preview",
                             "input": {**good, "gender": "robot"}})
    assert "gender" in _assert_error(r, 400, "InvalidParameter")["message"]


# Each row: the client's build_request arguments; the simulator gets the same as a JSON body.
BAD_INPUTS = [
    dict(lyrics="[verse]\nhi"),
    dict(lyrics="[verse]\n" + "la " * 30, stream=True),
    dict(lyrics="[verse]\n" + "啦" * 400),
    dict(lyrics="[verse]\n" + "啦" * 100, stream=True),
    dict(lyrics=EN_LYRICS + "\n".join(["and we sing it again"] * 10), stream=True),
    dict(lyrics="[verse]\n[chorus]"),
    dict(lyrics="[verse]\nこんにちは世界"),
    dict(lyrics="[verse]\n안녕하세요 여러분"),
    dict(prompt="   "),
    dict(prompt="jazz", stream=True),
    dict(prompt="x" * 2001),
    dict(prompt=" ".join(["rain"] * 1001), stream=True),
    dict(prompt="a song\x00"),
    dict(prompt="a song", gender="robot"),
    dict(prompt="a song", gender=1),
    dict(prompt="a song", format="ogg"),
    dict(lyrics=123),
    dict(),
    dict(prompt="a song", model=""),
]


def _client_message(kwargs: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        build_request(**kwargs)
    return str(info.value)


def _json_body(kwargs: dict[str, Any]) -> dict[str, Any]:
    inp = {k: v for k, v in kwargs.items() if k not in ("stream", "model")}
    return {"model": kwargs.get("model", "fun-music-v1"), "input": inp}


@pytest.mark.parametrize("kwargs", BAD_INPUTS, ids=lambda k: ",".join(k) or "empty")
def test_validation_errors_match_the_client_word_for_word(http: httpx.Client,
                                                          kwargs: dict[str, Any]) -> None:
    expected = _client_message(kwargs)
    headers = SSE if kwargs.get("stream") else {}
    r = http.post(GEN, json=_json_body(kwargs), headers=headers)
    assert _assert_error(r, 400, "InvalidParameter")["message"] == expected


def test_api_key_is_required_when_configured() -> None:
    key = "sk-simulator-secret-4242"
    bad = {"model": "fun-music-v1", "input": {"lyrics": "[verse]\nhi"}}
    with SimulatorServer(speed=0, api_key=key) as server, \
            httpx.Client(base_url=server.base_url) as client:
        for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": key},
                        {"Authorization": f"Basic {key}"}):
            r = client.post(GEN, json=bad, headers=headers)
            body = _assert_error(r, 401, "InvalidApiKey")
            assert body["message"] == "Invalid API-key provided."
            assert key not in r.text
        # The right key gets past authentication (to validation, which refuses "hi").
        r = client.post(GEN, json=bad, headers={"Authorization": f"Bearer {key}"})
        _assert_error(r, 400, "InvalidParameter")
        assert key not in repr(server.state)


def test_no_key_configured_accepts_any_or_no_key(http: httpx.Client) -> None:
    bad = {"model": "fun-music-v1", "input": {"lyrics": "[verse]\nhi"}}
    for headers in ({}, {"Authorization": "Bearer None"}):
        _assert_error(http.post(GEN, json=bad, headers=headers), 400, "InvalidParameter")


def test_requests_over_rpm_are_throttled() -> None:
    bad = {"model": "fun-music-v1", "input": {"lyrics": "[verse]\nhi"}}
    with SimulatorServer(speed=0, rpm=3) as server, \
            httpx.Client(base_url=server.base_url) as client:
        for _ in range(3):
            _assert_error(client.post(GEN, json=bad), 400, "InvalidParameter")
        r = client.post(TTS, json=bad)  # one window for both paths: one account
        body = _assert_error(r, 429, "Throttling.RateQuota")
        assert "rate limit" in body["message"].lower()
        assert 1 <= int(r.headers["retry-after"]) <= 60
        _assert_error(client.post(GEN, json=bad), 429, "Throttling.RateQuota")


# ------------------------------------------------------------------------ download URLs


def test_download_url_expires_with_an_oss_error() -> None:
    with SimulatorServer(speed=0, url_ttl=1) as server:
        r = httpx.post(server.base_url + GEN, timeout=60,
                       json={"model": "fun-music-v1", "input": {"lyrics": ZH_LYRICS}})
        assert r.status_code == 200
        audio = r.json()["output"]["audio"]
        assert audio["expires_at"] <= time.time() + 2
        first = httpx.get(audio["url"])
        assert first.status_code == 200 and first.content[:3] == b"ID3"
        while time.time() <= audio["expires_at"] + 0.05:
            time.sleep(0.1)
        expired = httpx.get(audio["url"])
        assert expired.status_code == 403
        assert expired.headers["content-type"].startswith("application/xml")
        assert expired.headers[SIMULATED_HEADER] == "true"
        text = expired.text
        assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error>')
        assert "<Code>AccessDenied</Code>" in text
        assert "<Message>Request has expired.</Message>" in text
        assert re.search(r"<RequestId>[0-9A-F]{24}</RequestId>", text)


def test_download_signature_is_checked(results: Results) -> None:
    url = results(CASES[0], False).body["output"]["audio"]["url"]  # type: ignore[index]
    base, query = url.split("?", 1)
    params = parse_qs(query)
    cases = {
        base: "AccessDenied",  # no signature at all
        f"{base}?Expires={params['Expires'][0]}&Signature=AAAA": "SignatureDoesNotMatch",
        f"{base}?Expires={int(params['Expires'][0]) + 1000}&OSSAccessKeyId=SIMULATOR"
        f"&Signature={query.split('Signature=')[1]}": "SignatureDoesNotMatch",
        url.replace("/oss/fun-music/", "/oss/fun-music/0/"): None,  # another path: 404 route
    }
    for target, code in cases.items():
        r = httpx.get(target)
        if code is None:
            assert r.status_code == 404
            continue
        assert r.status_code == 403 and f"<Code>{code}</Code>" in r.text, (target, r.text)


def test_song_cache_evicts_least_recently_used_first() -> None:
    store = SongCache(max_bytes=10)
    store.put("a", b"1234", "audio/mpeg")
    store.put("b", b"5678", "audio/mpeg")
    assert store.get("a") is not None  # "a" is now the most recently used
    store.put("c", b"90", "audio/wav")  # 10 bytes: still fits
    store.put("d", b"xyz", "audio/wav")  # 13 > 10: evict "b", the least recently used
    assert store.get("b") is None and store.get("a") is not None
    assert store.total_bytes <= 10 and len(store) == 3
    store.put("huge", b"x" * 50, "audio/wav")  # alone over the limit: kept, the rest evicted
    assert store.get("huge") is not None and len(store) == 1


# --------------------------------------------------------------- pacing and disconnects


def test_client_disconnect_stops_synthesis() -> None:
    # Paced at real time, the song would take a minute: synthesis must stop when we leave.
    with SimulatorServer(speed=1.0) as server:
        body = {"model": "fun-music-v1", "input": {"prompt": "a slow song about the moon"}}
        with httpx.stream("POST", server.base_url + GEN, json=body, headers=SSE,
                          timeout=30) as r:
            lines = r.iter_lines()
            assert next(lines) == "id:1"
            assert server.state.active_syntheses == 1
        deadline = time.monotonic() + 10
        while server.state.active_syntheses and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.state.active_syntheses == 0


def test_server_stop_ends_open_streams() -> None:
    server = SimulatorServer(speed=1.0).start()
    body = {"model": "fun-music-v1", "input": {"prompt": "a slow song about the moon"}}
    with httpx.stream("POST", server.base_url + GEN, json=body, headers=SSE, timeout=30) as r:
        assert r.status_code == 200
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        with pytest.raises(httpx.RemoteProtocolError):
            for _ in r.iter_raw():
                pass
        stopper.join(30)
    assert not stopper.is_alive() and not server.is_running
    assert server.state.active_syntheses == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.base_url + GEN)


def test_create_app_rejects_bad_settings() -> None:
    for kwargs, word in [
        ({"speed": -1}, "speed"), ({"speed": float("nan")}, "speed"),
        ({"first_chunk_delay": -0.5}, "first_chunk_delay"), ({"url_ttl": 0}, "url_ttl"),
        ({"rpm": 0}, "rpm"), ({"rpm": 2.5}, "rpm"), ({"api_key": " "}, "api_key"),
    ]:
        with pytest.raises(ValueError, match=word):
            create_app(**kwargs)
    create_app(speed=float("inf"))  # inf: unpaced


# ----------------------------------------------------------------- CLI and embedded


def _cli(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, **(extra_env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "funmusic_jupyter.simulator", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)  # Ctrl+C, as a teacher stops it
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def test_cli_serves_songs_and_says_it_is_a_simulator() -> None:
    proc = _cli("--port", "0", "--speed", "0", "--api-key", "sk-classroom-7777")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.fullmatch(r"Fun-Music SIMULATOR listening on (http://127\.0\.0\.1:\d+/api/v1)\n",
                             first)
        assert match, first
        base_url = match.group(1)
        banner = first
        while "Ctrl+C" not in banner:  # read the banner here: communicate() skips the buffer
            banner += proc.stdout.readline()
        r = httpx.post(base_url + GEN, timeout=60,
                       headers={"Authorization": "Bearer sk-classroom-7777"},
                       json={"model": "fun-music-v1", "input": {"lyrics": ZH_LYRICS}})
        assert r.status_code == 200 and r.headers[SIMULATED_HEADER] == "true"
        assert httpx.get(r.json()["output"]["audio"]["url"]).content[:3] == b"ID3"
    finally:
        out, err = _stop(proc)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert f"DASHSCOPE_HTTP_BASE_URL={base_url}\n" in banner
    assert "sk-…7777" in banner
    assert "sk-classroom-7777" not in banner + out + err  # the key is shown masked only
    assert "WARNING" not in err


def test_cli_takes_its_key_from_the_environment_to_keep_it_out_of_ps() -> None:
    key = "sk-classroom-from-env-42"
    proc = _cli("--port", "0", "--speed", "0", extra_env={"FUNMUSIC_SIMULATOR_API_KEY": key})
    try:
        assert proc.stdout is not None
        match = re.search(r"(http://127\.0\.0\.1:\d+/api/v1)", proc.stdout.readline())
        assert match
        body = {"model": "fun-music-v1", "input": {"lyrics": ZH_LYRICS}}
        refused = httpx.post(match.group(1) + GEN, timeout=60, json=body)
        assert refused.status_code == 401 and refused.json()["code"] == "InvalidApiKey"
        accepted = httpx.post(match.group(1) + GEN, timeout=60, json=body,
                              headers={"Authorization": f"Bearer {key}"})
        assert accepted.status_code == 200
    finally:
        out, err = _stop(proc)
    assert key not in out + err


def test_cli_warns_when_binding_beyond_loopback() -> None:
    proc = _cli("--host", "0.0.0.0", "--port", "0")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Fun-Music SIMULATOR listening on http://0.0.0.0:")
    finally:
        out, err = _stop(proc)
    assert "WARNING: binding to 0.0.0.0" in err and "--api-key" in err


def test_cli_refuses_bad_arguments() -> None:
    proc = _cli("--speed", "-2")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--speed" in err and "-2" in err


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20")


def test_start_embedded_is_idempotent_across_threads() -> None:
    urls: list[str] = []
    threads = [threading.Thread(target=lambda: urls.append(start_embedded())) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    urls.append(start_embedded())
    assert len(urls) == 7 and len(set(urls)) == 1
    url = urls[0]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", url)
    r = httpx.get(url + GEN)
    assert r.status_code == 405 and r.headers[SIMULATED_HEADER] == "true"


def test_embedded_speed_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUNMUSIC_SIMULATOR_SPEED", raising=False)
    assert _embedded_speed() == 4.0
    monkeypatch.setenv("FUNMUSIC_SIMULATOR_SPEED", "0")
    assert _embedded_speed() == 0.0
    monkeypatch.setenv("FUNMUSIC_SIMULATOR_SPEED", "fast")
    with pytest.raises(ConfigurationError, match="FUNMUSIC_SIMULATOR_SPEED.*'fast'"):
        _embedded_speed()


def test_request_ids_are_fresh_per_request(http: httpx.Client) -> None:
    ids = {http.get(GEN).json()["request_id"] for _ in range(3)}
    assert len(ids) == 3 and all(uuid.UUID(i) for i in ids)
