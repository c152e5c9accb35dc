"""``funmusic make`` and ``funmusic batch`` as a user runs them: a subprocess, a real simulator
over loopback named by ``DASHSCOPE_HTTP_BASE_URL``, stdout holding only results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from funmusic_jupyter._models import sidecar_path
from funmusic_jupyter.simulator import FAULT_HEADER, SimulatorServer

LYRICS = "[verse]\nLa la little moon"


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:
        yield server


def run(
    simulator: SimulatorServer | str | None, cwd: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    if simulator is not None:
        base = simulator if isinstance(simulator, str) else simulator.base_url
        env["DASHSCOPE_HTTP_BASE_URL"] = base
    return subprocess.run(
        [sys.executable, "-m", "funmusic_jupyter", *args], cwd=cwd, env=env, input=stdin,
        capture_output=True, text=True, timeout=120,
    )


def test_make_writes_a_playable_file_and_prints_only_its_path(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    result = run(simulator, tmp_path, "make", "Melancholic piano, rainy night yearning",
                 "-o", "rain.mp3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tmp_path / 'rain.mp3'}\n"
    audio = (tmp_path / "rain.mp3").read_bytes()
    assert audio[:3] == b"ID3" or audio[0] == 0xFF  # an MP3 a player opens
    meta = json.loads((tmp_path / "rain.json").read_text())
    assert meta["complete"] is True and meta["simulated"] is True
    assert "Traceback" not in result.stderr


def test_make_reads_stdin_and_takes_the_options(simulator: SimulatorServer, tmp_path: Path) -> None:
    result = run(simulator, tmp_path, "make", "-", "--lyrics", "-g", "male", "--instrumental",
                 "-f", "wav", stdin=LYRICS)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert result.stdout.count("\n") == 1
    assert path.parent == tmp_path / "funmusic-output" and path.suffix == ".wav"
    assert path.read_bytes()[:4] == b"RIFF"
    request = json.loads(sidecar_path(path).read_text())["request"]
    assert request["gender"] == "male" and request["instrumental"] is True
    # Short lyrics cannot stream: the shared policy falls back, and says so on stderr only.
    assert request["stream"] is False
    assert "not streamed: English lyrics for streaming must be 200–250 words" in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("make", "[verse]"), None, "lyrics must have words besides structure tags"),
        (("make", "-"), "こんにちは", "must be Chinese or English; got Japanese kana"),
        (("make", "   "), None, "TEXT is empty"),
        (("make", "a song", "-o", "x.ogg"), None, "-o must name a .mp3 or .wav file"),
        (("make", "a song", "-o", "x.wav", "-f", "mp3"), None, "is a .wav file but -f asks"),
        (("make", "a song", "--model", "fun-music-preview", "-g", "male"), None,
         "fun-music-preview takes no gender"),
    ],
)
def test_make_refuses_before_sending_with_exit_2_and_one_line(
    simulator: SimulatorServer, tmp_path: Path, args: tuple[str, ...], stdin: str | None,
    message: str,
) -> None:
    before = len(simulator.state.window._times)
    result = run(simulator, tmp_path, *args, stdin=stdin)
    assert result.returncode == 2
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert len(simulator.state.window._times) == before  # nothing was sent


def test_make_exits_1_on_an_api_failure(tmp_path: Path) -> None:
    # Nothing listens on the discard port: the request cannot be made, which is an API failure.
    result = run("http://127.0.0.1:9/api/v1", tmp_path, "make", "Rainy night piano, slow and warm")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("funmusic make: error: APIConnectionError")
    assert "Traceback" not in result.stderr


def test_batch_keeps_the_good_songs_and_exits_1_for_a_bad_line(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    lines = [
        "# a comment, then a blank line",
        "",
        json.dumps({"lyrics": LYRICS, "format": "wav"}),
        json.dumps({"prompt": "x", "gender": "robot"}),
        json.dumps({"prompt": "Fast drums and bright synths for a dance party", "stream": True,
                    "headers": {FAULT_HEADER: "drop-after=2"}}),
        "Slow warm piano",
    ]
    (tmp_path / "songs.txt").write_text("\n".join(lines) + "\n")
    result = run(simulator, tmp_path, "batch", "songs.txt", "--out", "out", "-f", "wav",
                 "--concurrency", "2")
    assert result.returncode == 1
    table = result.stdout.splitlines()
    assert table[0].split() == ["LINE", "STATUS", "SECONDS", "FILE", "OR", "ERROR"]
    rows = {row.split()[0]: row.split()[1] for row in table[1:-1]}
    assert rows == {"3": "ok", "4": "refused", "5": "failed", "6": "ok"}
    assert table[-1] == table[-1].strip() and table[-1].startswith("2 made (")
    assert table[-1].endswith("1 failed, 1 refused")
    made = sorted(p.name for p in (tmp_path / "out").glob("*.wav"))
    assert len(made) == 3 and sum(".partial." in name for name in made) == 1
    assert "line 4: gender must be one of female, male; got 'robot'" in result.stderr


def test_batch_all_good_exits_0(simulator: SimulatorServer, tmp_path: Path) -> None:
    (tmp_path / "songs.txt").write_text(json.dumps({"lyrics": LYRICS, "format": "wav"}) + "\n")
    result = run(simulator, tmp_path, "batch", "songs.txt", "--rpm", "5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("1 made (")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("batch", "missing.txt"), "cannot read missing.txt"),
        (("batch", "songs.txt", "--rpm", "0"), "argument --rpm: must be a whole number >= 1"),
    ],
)
def test_batch_bad_usage_exits_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "songs.txt").write_text("Slow warm piano\n")
    result = run(None, tmp_path, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert message in result.stderr.strip().splitlines()[-1]


def test_help_lists_the_examples(tmp_path: Path) -> None:
    top = run(None, tmp_path, "--help")
    assert 'funmusic make "Melancholic piano, rainy night yearning" -o rain.mp3' in top.stdout
    assert "funmusic batch songs.txt" in top.stdout
    make = run(None, tmp_path, "make", "--help")
    assert make.returncode == 0 and "--instrumental" in make.stdout
    assert "exit codes: 0 done, 1 the song failed" in make.stdout
    batch = run(None, tmp_path, "batch", "--help")
    assert "--rpm" in batch.stdout and "summary table" in batch.stdout


def test_make_shows_progress_on_a_terminal_only(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    import pty
    import threading

    master, slave = pty.openpty()
    received = bytearray()

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            received.extend(data)

    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    env["DASHSCOPE_HTTP_BASE_URL"] = simulator.base_url
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc = subprocess.run(
        [sys.executable, "-m", "funmusic_jupyter", "make", "Calm piano for a quiet evening",
         "-f", "wav"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=slave, timeout=120,
    )
    os.close(slave)
    reader.join(10)
    os.close(master)
    assert proc.returncode == 0
    assert proc.stdout.decode().count("\n") == 1  # the path, and no progress on stdout
    assert b"\r\x1b[Kfunmusic make: " in received and b" s of audio, " in received
    piped = run(simulator, tmp_path, "make", "Calm piano for a quiet evening", "-f", "wav")
    assert "\r" not in piped.stderr and "s of audio" not in piped.stderr  # not a terminal
