"""The ``funmusic`` command: ``lab`` (JupyterLab, as root too) and ``simulator``.

The argv ``funmusic lab`` builds is checked as root and as a normal user without launching
anything; one test really launches it (as whoever runs the tests; CI containers are root, which
is the case ``jupyter lab`` alone refuses) and asks the server for its status.
"""

from __future__ import annotations

import importlib.metadata
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _jupyterlab import free_port, server_environment

import funmusic_jupyter as fm
from funmusic_jupyter import _cli

PYTHON = sys.executable


def run_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "funmusic_jupyter", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


# -- the argv of `funmusic lab` ------------------------------------------------------------------


def test_lab_adds_allow_root_only_for_root() -> None:
    args = ["notebooks/01_quickstart.ipynb", "--port", "8899"]
    assert _cli.lab_argv(args, root=False) == [PYTHON, "-m", "jupyterlab", *args]
    assert _cli.lab_argv(args, root=True) == [PYTHON, "-m", "jupyterlab", "--allow-root", *args]


@pytest.mark.parametrize(
    "given", ["--allow-root", "--no-allow-root", "--ServerApp.allow_root=False"]
)
def test_lab_leaves_an_explicit_root_choice_alone(given: str) -> None:
    assert _cli.lab_argv([given], root=True) == [PYTHON, "-m", "jupyterlab", given]


@pytest.mark.parametrize("root", [True, False], ids=["root", "user"])
def test_lab_runs_jupyterlab_with_the_arguments_in_order(
    monkeypatch: pytest.MonkeyPatch, root: bool
) -> None:
    launched: list[list[str]] = []

    def fake_exec(argv: list[str]) -> int:
        launched.append(argv)
        return 0

    monkeypatch.setattr(_cli, "_exec", fake_exec)
    monkeypatch.setattr(_cli, "is_root", lambda: root)
    args = ["nb.ipynb", "--port", "8899", "--help", "--", "x.ipynb"]
    assert _cli.main(["lab", *args]) == 0
    flag = ["--allow-root"] if root else []
    assert launched == [[PYTHON, "-m", "jupyterlab", *flag, *args]]


def test_is_root_is_the_effective_user() -> None:
    assert _cli.is_root() == (os.geteuid() == 0)


@pytest.mark.parametrize(("code", "expected"), [(0, 0), (1, 1), (3, 1)])
def test_lab_exit_codes(monkeypatch: pytest.MonkeyPatch, code: int, expected: int) -> None:
    monkeypatch.setattr(_cli, "_exec", lambda argv: code)
    assert _cli.main(["lab"]) == expected


def test_lab_failures_are_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def cannot(argv: list[str]) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_cli, "_exec", cannot)
    assert _cli.main(["lab"]) == 1
    assert capsys.readouterr().err == "funmusic lab: cannot start JupyterLab: Permission denied\n"

    monkeypatch.setattr(_cli.importlib.util, "find_spec", lambda name: None)
    assert _cli.main(["lab"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("funmusic lab: JupyterLab is not installed") and err.count("\n") == 1
    assert "pip install 'funmusic-jupyter[lab]'" in err


# -- the command itself ----------------------------------------------------------------------


def test_help_has_the_commands_and_an_example() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and result.stderr == ""
    assert "lab" in result.stdout and "simulator" in result.stdout
    assert "funmusic lab notebooks/01_quickstart.ipynb" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: COMMAND"),
        (("make-coffee",), "invalid choice: 'make-coffee'"),
        (("--colour", "lab"), "unrecognized arguments: --colour"),
    ],
)
def test_bad_usage_exits_2_with_what_was_expected(args: tuple[str, ...], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2 and result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("funmusic: error: ") and message in last, result.stderr


def test_the_console_script_is_this_main() -> None:
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="funmusic")
    assert script.load() is _cli.main


# -- `funmusic simulator` --------------------------------------------------------------------


def test_simulator_help_and_errors_are_the_simulators() -> None:
    result = run_cli("simulator", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: funmusic simulator ")
    for option in ("--host", "--port", "--speed", "--api-key", "--rpm"):
        assert option in result.stdout
    bad = run_cli("simulator", "--port", "http")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        "funmusic simulator: error: argument --port: expected a port 0-65535; got 'http'"
    )


def test_simulator_serves_songs(tmp_path: Path) -> None:
    port = free_port()
    argv = [PYTHON, "-m", "funmusic_jupyter", "simulator", "--port", str(port), "--speed", "0"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()  # printed once it listens
            assert banner.startswith(f"Fun-Music SIMULATOR listening on http://127.0.0.1:{port}")
            song = fm.generate(
                prompt="A short happy tune",
                base_url=f"http://127.0.0.1:{port}/api/v1",
                backend="api",
            )
            assert song.simulated and song.duration > 0
        finally:
            proc.terminate()
            proc.wait(15)


# -- really launching JupyterLab ---------------------------------------------------------------


def test_lab_really_starts_and_answers(tmp_path: Path) -> None:
    # As root (this test's usual CI case) `jupyter lab` with these arguments exits at once:
    # "Running as root is not recommended. Use --allow-root to bypass."
    dirs = {name: tmp_path / name for name in ("home", "config", "data", "runtime", "ipython")}
    for path in dirs.values():
        path.mkdir()
    env = server_environment(os.environ, dirs=dirs, extra={})
    port, token = free_port(), secrets.token_hex(16)
    log = (tmp_path / "lab.log").open("wb")
    proc = subprocess.Popen(
        [
            PYTHON, "-m", "funmusic_jupyter", "lab",
            "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
            "--LabApp.extension_manager=readonly",
        ],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "lab.log").read_text(errors="replace")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    break
            except (OSError, urllib.error.URLError):
                assert time.monotonic() < deadline, "JupyterLab did not answer in 60 s"
                time.sleep(0.2)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
        log.close()
