"""Stateless download URLs, several instances and ``--workers``: real simulator processes, real
loopback HTTP.

A URL carries its song (signed); any process that shares the secret makes the same bytes again,
so a school can run several instances behind a proxy without sticky sessions.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import pytest

from funmusic_jupyter.simulator import SimulatorServer
from funmusic_jupyter.simulator._synthesis import SongSpec
from funmusic_jupyter.simulator._tokens import UrlSigner

ROOT = Path(__file__).resolve().parents[1]
GEN = "/services/audio/music/generation"
SSE = {"X-DashScope-SSE": "enable"}
PROMPT = "A bright folk song about a school trip to the sea, guitar and whistling"
LYRICS = "[verse]\n春风吹过山岗\n我们一起歌唱\n\n[chorus]\n阳光照在脸上\n心里充满希望"
MODULE = (sys.executable, "-m", "funmusic_jupyter.simulator")
CLI = (sys.executable, "-m", "funmusic_jupyter", "simulator")  # the `funmusic simulator` command


class Instance:
    """``python -m funmusic_jupyter.simulator`` (or ``command``) on a free port, stopped with
    Ctrl+C."""

    def __init__(self, *args: str, secret: str | None = None,
                 command: tuple[str, ...] = MODULE) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                             os.environ.get("PYTHONPATH", "")])}
        env.pop("FUNMUSIC_SIMULATOR_SECRET", None)
        if secret is not None:
            env["FUNMUSIC_SIMULATOR_SECRET"] = secret
        self.proc = subprocess.Popen(
            [*command, "--port", "0", "--speed", "0", *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        self.banner = ""
        while "Ctrl+C" not in self.banner:
            line = self.proc.stdout.readline()
            assert line, self.stop()
            self.banner += line
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+/api/v1)", self.banner)
        assert match, self.banner
        self.base_url = match.group(1)
        self.root = self.base_url.removesuffix("/api/v1")

    def stop(self) -> str:
        """Ctrl+C; the exit must be clean. Returns stderr."""
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        assert self.proc.returncode == 0 and "Traceback" not in err, err
        return err


def on(url: str, root: str) -> str:
    """The same URL, asked of another instance (what a load balancer does)."""
    parts, other = urlsplit(url), urlsplit(root)
    return urlunsplit((other.scheme, other.netloc, parts.path, parts.query, ""))


def body(model: str = "fun-music-v1", **input: object) -> dict[str, object]:
    return {"model": model, "input": input}


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Instance, Instance]]:
    first = Instance("--workers", "1", secret="a-school-wide-secret")
    try:
        # The other one as `funmusic simulator`, its secret given on the command line.
        second = Instance("--workers", "2", "--secret", "a-school-wide-secret", command=CLI)
    except BaseException:
        first.stop()
        raise
    assert "2 synthesis processes" in second.banner
    yield first, second
    errors = first.stop() + second.stop()
    assert "WARNING" not in errors


def test_a_url_made_by_one_instance_downloads_from_the_other(
    pair: tuple[Instance, Instance],
) -> None:
    first, second = pair
    r = httpx.post(first.base_url + GEN, json=body(prompt=PROMPT), timeout=120)
    assert r.status_code == 200, r.text
    url = r.json()["output"]["audio"]["url"]
    assert url.startswith(first.root + "/oss/fun-music/")
    here = httpx.get(url, timeout=120)
    there = httpx.get(on(url, second.root), timeout=120)  # never made there: made again
    assert here.status_code == there.status_code == 200
    assert here.content[:3] == b"ID3" and len(here.content) > 100_000
    assert there.content == here.content
    assert there.headers["content-type"] == "audio/mpeg"
    ranged = httpx.get(on(url, second.root), headers={"Range": "bytes=0-9"}, timeout=120)
    assert ranged.status_code == 206 and ranged.content == here.content[:10]


def test_a_streamed_song_downloads_from_the_other_instance(
    pair: tuple[Instance, Instance],
) -> None:
    first, second = pair
    with httpx.stream("POST", second.base_url + GEN, headers=SSE, timeout=120,
                      json=body(prompt=PROMPT + " at dawn", format="wav")) as r:
        raw = r.read().decode()
    events = [json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:")]
    streamed = b"".join(base64.b64decode(e["output"]["audio"]["data"]) for e in events[:-1])
    url = events[-1]["output"]["audio"]["url"]
    downloaded = httpx.get(on(url, first.root), timeout=120)
    assert downloaded.status_code == 200 and downloaded.headers["content-type"] == "audio/wav"
    assert streamed[:4] == b"RIFF" and downloaded.content == streamed


def test_instrumental_and_preview_songs_download_from_the_other_instance(
    pair: tuple[Instance, Instance],
) -> None:
    # The URL carries is_instrumental (and the preview model's absent gender): the other
    # instance, making the song again, must make the instrumental, not the sung song.
    first, second = pair
    made: dict[str, bytes] = {}
    for name, request in [
        ("sung", body(lyrics=LYRICS)),
        ("instrumental", body(lyrics=LYRICS, is_instrumental=True)),
        ("preview", body("fun-music-preview", prompt=PROMPT)),
        ("preview-instrumental", body("fun-music-preview", prompt=PROMPT, is_instrumental=True)),
    ]:
        r = httpx.post(first.base_url + GEN, json=request, timeout=120)
        assert r.status_code == 200, r.text
        output = r.json()["output"]
        there = httpx.get(on(output["audio"]["url"], second.root), timeout=120)
        here = httpx.get(output["audio"]["url"], timeout=120)
        assert there.status_code == here.status_code == 200, there.text
        assert there.content == here.content, name
        made[name] = here.content
        if "instrumental" in name:
            assert output["extra_info"]["lyrics"] == ""
    assert len(set(made.values())) == len(made)  # four different songs


def test_another_secret_does_not_serve_the_url(pair: tuple[Instance, Instance]) -> None:
    first, _ = pair
    r = httpx.post(first.base_url + GEN, json=body(lyrics=LYRICS), timeout=120)
    url = r.json()["output"]["audio"]["url"]
    with SimulatorServer(speed=0, secret="another-secret") as stranger:
        refused = httpx.get(on(url, stranger.base_url.removesuffix("/api/v1")), timeout=60)
    assert refused.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in refused.text


def test_an_altered_song_token_is_refused(pair: tuple[Instance, Instance]) -> None:
    first, _ = pair
    r = httpx.post(first.base_url + GEN, json=body(lyrics=LYRICS), timeout=120)
    url = r.json()["output"]["audio"]["url"]
    query = parse_qs(urlsplit(url).query)
    other = UrlSigner.token_for(SongSpec("lyrics", LYRICS, "male", "mp3"))  # male, not female
    forged = url.replace(f"song={query['song'][0]}", f"song={other}")
    assert forged != url
    refused = httpx.get(forged, timeout=60)
    assert refused.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in refused.text


def test_an_evicted_song_is_made_again_identically() -> None:
    with SimulatorServer(speed=0) as server:
        server.state.store.max_bytes = 1  # keeps only the newest song
        urls, first_bytes = [], []
        for text in ("first song about rain", "second song about sun"):
            r = httpx.post(server.base_url + GEN, json=body(prompt=text), timeout=120)
            urls.append(r.json()["output"]["audio"]["url"])
            first_bytes.append(httpx.get(urls[-1], timeout=120).content)
        assert len(server.state.store) == 1
        again = httpx.get(urls[0], timeout=120)
    assert again.status_code == 200 and again.content == first_bytes[0]
    assert first_bytes[0] != first_bytes[1]


def test_song_tokens_round_trip() -> None:
    for spec in (SongSpec("lyrics", LYRICS, "female", "wav"),
                 SongSpec("prompt", "x" * 2000, "male", "mp3"),
                 SongSpec("prompt", PROMPT, "", "mp3", instrumental=True)):
        token = UrlSigner.token_for(spec)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token) and len(token) < 3000
        assert UrlSigner.spec_from(token) == spec
    for bad in ("", "!!!", base64.urlsafe_b64encode(b"not zlib").decode()):
        with pytest.raises(ValueError):
            UrlSigner.spec_from(bad)


def test_workers_make_the_same_songs_in_their_own_processes() -> None:
    psutil = pytest.importorskip("psutil")
    server = Instance("--workers", "2")
    try:
        assert "2 synthesis processes" in server.banner
        bodies = [body(prompt=f"{PROMPT} {i}") for i in range(3)] + [body(lyrics=LYRICS)]
        with httpx.Client(timeout=120) as http:
            urls = [http.post(server.base_url + GEN, json=b).json()["output"]["audio"]["url"]
                    for b in bodies]
            pooled = [http.get(url).content for url in urls]
        workers = psutil.Process(server.proc.pid).children()
        assert len([w for w in workers if "spawn_main" in " ".join(w.cmdline())]) == 2
    finally:
        server.stop()
    with SimulatorServer(speed=0) as threads, httpx.Client(timeout=120) as http:
        made_here = [http.get(http.post(threads.base_url + GEN, json=b)
                              .json()["output"]["audio"]["url"]).content for b in bodies]
    assert pooled == made_here and len(set(pooled)) == len(bodies)


def test_workers_exit_when_their_server_is_killed() -> None:
    psutil = pytest.importorskip("psutil")
    server = Instance("--workers", "2")
    try:
        workers = [w for w in psutil.Process(server.proc.pid).children()
                   if "spawn_main" in " ".join(w.cmdline())]
    finally:
        server.proc.kill()  # as the OOM killer would: no Ctrl+C, no clean-up in the server
        server.proc.wait(timeout=60)
    # Patience for a loaded machine, not a speed check.
    _, alive = psutil.wait_procs(workers, timeout=60)
    for worker in alive:  # never left behind, even when this test fails
        worker.kill()
    psutil.wait_procs(alive, timeout=60)
    server.proc.communicate(timeout=60)  # the workers held its output pipes: closed now
    assert len(workers) == 2 and alive == []


def test_rpm_counts_the_whole_instance_whatever_its_workers() -> None:
    server = Instance("--workers", "2", "--rpm", "3")
    try:
        bad = body(lyrics="[verse]\nhi")  # refused after admission: counted, nothing made
        for _ in range(3):  # each on its own connection, as three students' would be
            assert httpx.post(server.base_url + GEN, json=bad, timeout=60).status_code == 400
        r = httpx.post(server.base_url + GEN, json=body(prompt=PROMPT), timeout=60)
        assert r.status_code == 429 and r.json()["code"] == "Throttling.RateQuota"
    finally:
        server.stop()


def test_pool_spreads_songs_and_a_disconnect_stops_the_worker() -> None:
    # Paced at real time a song takes minutes: each worker holds one until the clients leave.
    with SimulatorServer(speed=1, workers=2) as server:
        pool = server.state.pool
        assert pool is not None
        streams, lines = [], []
        with httpx.Client(timeout=120) as http:
            for i in range(2):
                r = http.send(http.build_request(
                    "POST", server.base_url + GEN, headers=SSE,
                    json=body(prompt=f"a slow song about the moon, part {i + 1}")), stream=True)
                lines.append(r.iter_lines())  # kept: a dropped iterator closes the stream
                assert next(lines[-1]) == "id:1"
                streams.append(r)
            assert server.state.active_syntheses == 2 and pool.held() == [1, 1]
            for r in streams:
                r.close()
        deadline = time.monotonic() + 60  # patience on a loaded machine, not a speed check
        while (server.state.active_syntheses or sum(pool.held())) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.state.active_syntheses == 0 and pool.held() == [0, 0]


@pytest.mark.parametrize(("args", "word"), [
    (("--workers", "0"), "--workers"),
    (("--workers", "many"), "--workers"),
    (("--secret", " "), "--secret"),
])
@pytest.mark.parametrize("command", [MODULE, CLI], ids=["module", "funmusic-simulator"])
def test_cli_refuses_bad_scale_options(args: tuple[str, ...], word: str,
                                       command: tuple[str, ...]) -> None:
    proc = subprocess.run([*command, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and word in proc.stderr
    prog = "funmusic simulator" if command == CLI else "python -m funmusic_jupyter.simulator"
    assert f"usage: {prog}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()[-1]) < 200, proc.stderr


def test_create_app_rejects_bad_scale_settings() -> None:
    from funmusic_jupyter.simulator import create_app

    for kwargs, word in [({"workers": -1}, "workers"), ({"workers": 1.5}, "workers"),
                         ({"workers": True}, "workers"), ({"secret": " "}, "secret")]:
        with pytest.raises(ValueError, match=word):
            create_app(**kwargs)  # type: ignore[arg-type]
