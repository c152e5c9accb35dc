"""The embedded simulator: one child process per host process (a kernel, a script), started on
first use, stopped at exit.

Synthesis is CPU work that holds the GIL for most of each chunk; inside a kernel it would delay
every cell while songs stream. So the simulator runs in a child process (``_child``), started
with ``subprocess`` rather than ``fork`` (a kernel has threads, and forking a threaded process is
unsafe). The child writes nothing to the user's console, opens no console window on Windows, is
in its own session on POSIX (a Ctrl+C in the terminal that runs Jupyter is not for it), and
exits by itself when this process goes away, killed or not (see ``_child``).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

from .._errors import ConfigurationError

__all__ = ["EMBEDDED_FIRST_CHUNK_DELAY", "EMBEDDED_SPEED", "SPEED_ENV", "start_embedded",
           "stop_embedded"]

SPEED_ENV = "FUNMUSIC_SIMULATOR_SPEED"
EMBEDDED_SPEED = 4.0
EMBEDDED_FIRST_CHUNK_DELAY = 0.5
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 10.0
# Where ``funmusic_jupyter`` lives: the child imports this very copy, installed or not.
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# The child's start-up is on the first song's path, so it skips the package's __init__ (the
# client: httpx and the rest, a third of the child's imports) by registering the package
# without running it; the simulator imports only private modules, by relative imports.
_BOOTSTRAP = """\
import importlib.machinery, importlib.util, sys
spec = importlib.machinery.ModuleSpec("funmusic_jupyter", None, is_package=True)
package = importlib.util.module_from_spec(spec)
package.__path__ = [sys.argv[1]]
sys.modules["funmusic_jupyter"] = package
from funmusic_jupyter.simulator._child import main
sys.exit(main(sys.argv[2:]))
"""

logger = logging.getLogger("funmusic_jupyter.simulator")


def _embedded_speed() -> float:
    raw = os.environ.get(SPEED_ENV, "").strip()
    if not raw:
        return EMBEDDED_SPEED
    try:
        speed = float(raw)
    except ValueError:
        speed = math.nan
    if math.isnan(speed) or speed < 0:
        raise ConfigurationError(
            f"{SPEED_ENV} must be a real-time factor >= 0 (audio seconds per wall second; "
            f"0 or inf: as fast as possible); got {raw!r}"
        )
    return speed


class _Child:
    """One running child simulator and its pipes."""

    def __init__(self, speed: float) -> None:
        # The simulator never receives the user's key: not even in its environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}
        options: dict[str, object] = {}
        if os.name == "nt":
            options["creationflags"] = subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined,unused-ignore]
        else:
            options["start_new_session"] = True
        self.proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-c", _BOOTSTRAP, _PACKAGE_DIR,
             "--speed", repr(speed), "--first-chunk-delay", repr(EMBEDDED_FIRST_CHUNK_DELAY)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            # Not the user's folder: a notebook's own numpy.py must not shadow numpy there.
            cwd=_PACKAGE_ROOT, env=env, close_fds=True, **options,  # type: ignore[call-overload]
        )
        self.base_url = self._wait_ready()

    def _wait_ready(self) -> str:
        proc = self.proc
        assert proc.stdout is not None and proc.stderr is not None
        # readline() has no timeout: a child that hangs is killed, which ends the line.
        timer = threading.Timer(_START_TIMEOUT, proc.kill)
        timer.daemon = True
        timer.start()
        try:
            line = proc.stdout.readline()
        finally:
            timer.cancel()
        if not line.strip().isdigit():
            proc.kill()
            err = proc.stderr.read().decode("utf-8", "replace").strip()
            proc.wait()
            self._close_pipes()
            last = err.splitlines()[-1] if err else f"exit status {proc.returncode}"
            raise RuntimeError(f"the Fun-Music simulator did not start: {last}")
        # The child now writes nowhere: its output pipes are done with.
        proc.stdout.close()
        proc.stderr.close()
        # Written out rather than imported from ``_app``/``_server``: those would load uvicorn,
        # Starlette and the synthesis into this process, which is what the child is for.
        return f"http://127.0.0.1:{int(line)}/api/v1"

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    @property
    def is_running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """End-of-file on its stdin asks it to stop; a child that does not is killed."""
        self._close_pipes()
        try:
            self.proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_lock = threading.Lock()
_child: _Child | None = None
_child_pid: int | None = None  # the process that started it (a fork must not reuse or stop it)
_atexit_registered = False


def stop_embedded() -> None:
    """Stop this process's embedded simulator, if it started one (at exit, or in tests)."""
    global _child
    with _lock:
        child, _child = _child, None
    if child is not None and _child_pid == os.getpid():
        child.stop()


def start_embedded() -> str:
    """Start the process's simulator once (thread-safe) and return its base URL (``…/api/v1``).

    It runs in a child process. Speed from ``FUNMUSIC_SIMULATOR_SPEED`` (default 4.0),
    first-chunk delay 0.5 s. Stopped at interpreter exit; a child that finds this process gone
    exits by itself. A forked copy of this process gets its own simulator.
    """
    global _child, _child_pid, _atexit_registered
    with _lock:
        pid = os.getpid()
        if _child is not None and _child_pid == pid:
            if _child.is_running:
                return _child.base_url
            _child.stop()  # it died: reap it and close its pipes before starting another
        child = _Child(_embedded_speed())
        _child, _child_pid = child, pid
        if not _atexit_registered:
            atexit.register(stop_embedded)
            _atexit_registered = True
        logger.debug("embedded simulator started at %s (pid %s)", child.base_url, child.proc.pid)
        return child.base_url
