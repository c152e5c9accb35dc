"""The embedded simulator runs in a child process: synthesis stays out of the host (the kernel),
the child says nothing on the host's console, and it goes away with the host, however the host
ends. Each test runs a real host script in its own interpreter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]

HOST = textwrap.dedent("""
    import json, os, sys
    import funmusic_jupyter as fm
    from funmusic_jupyter.simulator import FAULT_HEADER, start_embedded
    from funmusic_jupyter.simulator import _embedded

    url = start_embedded()
    assert start_embedded() == url
    song = fm.generate(lyrics="[verse]\\nRain on the window\\n[chorus]\\nStay with me")
    try:  # a broken stream: a simulator in this process would log it on our stderr
        fm.generate(lyrics="[verse]\\nRain again\\n[chorus]\\nStay",
                    headers={FAULT_HEADER: "drop-after=0"})
    except fm.FunMusicError:
        pass
    # numpy is not on the list: the client itself uses it (_wav, the card's waveform).
    heavy = [m for m in ("uvicorn", "starlette", "lameenc", "funmusic_jupyter.simulator._app",
                         "funmusic_jupyter.simulator._synthesis",
                         "funmusic_jupyter.simulator._music") if m in sys.modules]
    print(json.dumps({"url": url, "child": _embedded._child.proc.pid, "heavy": heavy,
                      "simulated": song.simulated, "head": song.audio[:3].decode("latin-1")}),
          flush=True)
    if sys.argv[1:] == ["wait"]:
        sys.stdin.read()  # until the test kills us
""")


def _host(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FUNMUSIC_SIMULATOR_SPEED": "0",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", HOST, *args], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _gone(url: str, pid: int, patience: float = 60.0) -> bool:
    """True once the child no longer answers and its process has ended (waits at most
    ``patience`` seconds: a generous bound for a loaded machine, not a speed check)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
        except httpx.TransportError:
            if not _alive(pid):
                return True
        time.sleep(0.2)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/status")
    try:  # a zombie waiting for a reaper has exited
        return "\nState:\tZ" not in status.read_text()
    except OSError:
        return True


def test_synthesis_runs_in_a_silent_child_that_stops_at_exit() -> None:
    host = _host()
    out, err = host.communicate(timeout=180)
    assert host.returncode == 0, err
    report = json.loads(out)
    assert report["simulated"] is True and report["head"] == "ID3"
    assert report["heavy"] == []  # no numpy, no uvicorn, no synthesis in the host
    assert report["child"] != host.pid
    assert err == ""  # nothing from the child (the dropped stream included) reaches our console
    assert _gone(report["url"], report["child"])  # stopped by the host's exit


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and sessions are POSIX")
def test_an_orphaned_child_exits_when_its_host_is_killed() -> None:
    host = _host("wait")
    try:
        assert host.stdout is not None
        report = json.loads(host.stdout.readline())
        url, child = report["url"], report["child"]
        assert httpx.get(url + "/services/audio/music/generation", timeout=30).status_code == 405
        # Its own session: a Ctrl+C in the terminal that runs Jupyter is not for it.
        assert os.getsid(child) != os.getsid(host.pid)
    finally:
        host.send_signal(signal.SIGKILL)  # as when a kernel is killed: no atexit runs
        host.communicate(timeout=60)
    assert _gone(url, child)
