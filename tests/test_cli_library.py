"""``funmusic list`` and ``funmusic cost`` as a user runs them: a subprocess over songs that
``funmusic make`` saved from a real simulator, plus a sidecar a hand broke."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from funmusic_jupyter.simulator import SimulatorServer


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:
        yield server


def run(cwd: Path, *args: str, base_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
    if base_url:
        env["DASHSCOPE_HTTP_BASE_URL"] = base_url
    return subprocess.run(
        [sys.executable, "-m", "funmusic_jupyter", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def songs(simulator: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two songs made by ``funmusic make``, oldest first."""
    folder = tmp_path_factory.mktemp("cli-library")
    for text in ("Melancholic piano, rainy night yearning", "Calm lo-fi beat for studying"):
        made = run(folder, "make", text, "--no-stream", base_url=simulator.base_url)
        assert made.returncode == 0, made.stderr
    return folder


def test_list_shows_the_songs_newest_first_and_n_limits_it(songs: Path) -> None:
    result = run(songs, "list")
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "2 songs in funmusic-output"
    assert "'Calm lo-fi beat for studying'" in lines[1]  # newest first
    assert "'Melancholic piano, rainy night yearning'" in lines[2]
    assert "simulator" in lines[1] and "0.00 CNY" in lines[1]
    one = run(songs, "list", "1").stdout.splitlines()
    assert one[0] == "1 song in funmusic-output" and len(one) == 2 and "Calm lo-fi" in one[1]


def test_list_json_is_one_object_per_song_with_the_files(songs: Path) -> None:
    result = run(songs, "list", "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["title"] for r in rows] == [
        "Calm lo-fi beat for studying", "Melancholic piano, rainy night yearning",
    ]
    for row in rows:
        assert Path(row["path"]).is_file() and row["simulated"] is True
        assert row["partial"] is False and row["cost"] == 0.0 and row["duration"] > 0


def test_cost_separates_the_free_simulator(songs: Path) -> None:
    rows = [json.loads(line) for line in run(songs, "list", "--json").stdout.splitlines()]
    seconds = sum(r["duration"] for r in rows)
    table = run(songs, "cost")
    assert table.returncode == 0, table.stderr
    assert f"total       0 songs, 0 s        0.00 CNY  2 songs, {seconds:g} s" in table.stdout
    assert "this kernel session" not in table.stdout  # no session outside a kernel
    report = json.loads(run(songs, "cost", "--json").stdout)
    assert report["total"]["simulated_seconds"] == seconds
    assert report["total"]["billed_seconds"] == 0 and report["total"]["cost"] == 0


def test_a_broken_sidecar_and_a_deleted_song_are_skipped_with_a_warning(
    songs: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "funmusic-output"
    folder.mkdir()
    for item in (songs / "funmusic-output").iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    (folder / "broken.json").write_text("{", encoding="utf-8")
    next(folder.glob("*calm*.mp3")).unlink()
    result = run(tmp_path, "list")
    assert result.returncode == 0
    assert result.stdout.startswith("1 song in funmusic-output\n")
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2 and all(w.startswith("funmusic list: warning: ") for w in warnings)
    assert any("broken.json" in w for w in warnings)
    assert "Traceback" not in result.stderr
    assert run(tmp_path, "cost").returncode == 0


def test_an_empty_folder_and_bad_usage(tmp_path: Path) -> None:
    empty = run(tmp_path, "list")
    assert empty.returncode == 0 and empty.stdout == "No songs yet in funmusic-output.\n"
    bad = run(tmp_path, "list", "0")
    assert bad.returncode == 2 and "must be a whole number >= 1; got '0'" in bad.stderr
    price = run(tmp_path, "cost", "--price-per-second", "nan")
    assert price.returncode == 2 and "must be a number >= 0; got 'nan'" in price.stderr
    assert "Traceback" not in bad.stderr + price.stderr


def test_help_lists_the_examples() -> None:
    for command in ("list", "cost"):
        result = subprocess.run([sys.executable, "-m", "funmusic_jupyter", command, "--help"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "examples:" in result.stdout
        assert f"funmusic {command}" in result.stdout
    top = subprocess.run([sys.executable, "-m", "funmusic_jupyter", "--help"],
                         capture_output=True, text=True, timeout=60).stdout
    assert "funmusic list 10" in top and "funmusic cost" in top


def test_an_instrumental_song_is_listed_as_such(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    made = run(tmp_path, "make", "Calm lo-fi beat for studying", "--instrumental",
               base_url=simulator.base_url)
    assert made.returncode == 0, made.stderr
    line = run(tmp_path, "list").stdout.splitlines()[1]
    assert " instrumental " in line and " female " not in line
    row = json.loads(run(tmp_path, "list", "--json").stdout)
    assert row["instrumental"] is True
