"""Drive a real JupyterLab in a real (headless) Chromium, for the browser tests.

Nothing here is a fixture: ``tests/test_browser.py`` builds its fixtures from these pieces, so
``tests/conftest.py`` stays as it is.

- ``chromium_or_skip()``: Debian's ``/usr/bin/chromium``, or a skip with the reason (a failure
  when ``CI=true``: CI must never skip these silently).
- ``LabServer``: ``python -m jupyterlab`` (this interpreter's) on a free loopback port with a
  random token, in its own config/data/runtime directories under a temporary folder (the
  virtualenv's kernelspec and lab extensions, ipywidgets' included, still load from
  ``sys.prefix``), no DashScope variables, and user settings that keep the lab quiet and
  deterministic (no news, every cell attached to the DOM, light theme).
- ``LabPage``: one notebook open in a Playwright page: write it with nbformat, open it, wait
  for the kernel, run every cell through JupyterLab's own command (what Run > Run All Cells
  calls), and find cells' outputs.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
import pytest

CHROMIUM = Path("/usr/bin/chromium")

# What the brief and Debian's packaging need for a headless Chromium in a container. Playwright
# adds --headless and --mute-audio itself (muted media still advance currentTime).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Opt-in: lets a test call play() with no click. The live player's tests run without it, with
# the browser's real autoplay rules, and click Play as a user would.
AUTOPLAY_ARGS = ["--autoplay-policy=no-user-gesture-required"]

# Bounded waits, in milliseconds (Playwright's unit).
LAB_LOAD_MS = 60_000
KERNEL_MS = 60_000
RUN_MS = 60_000

# JupyterLab user settings written into the isolated config dir.
_USER_SETTINGS: dict[str, dict[str, Any]] = {
    # No news/update toasts over the notebook, and no request to the internet.
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Light"},
    # The default windowing ("contentVisibility"/"full") may leave off-screen cells out of the
    # DOM or unrendered; the tests look at every cell.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # The extension manager would try to reach PyPI.
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
}


def chromium_or_skip() -> Path:
    """``/usr/bin/chromium``; skip (or fail under ``CI=true``) when it is not installed."""
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = (
        f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium "
        "(apt-get install chromium); Playwright's own browser download is not used"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def serve(
    workdir: Path, *, app: str = "lab", env: Mapping[str, str] | None = None
) -> Iterator[LabServer]:
    """A module fixture's body: a started server (skipped when there is no Chromium to drive
    it, so no server starts for tests that cannot run), stopped afterwards."""
    chromium_or_skip()
    with LabServer(workdir, env=env, app=app) as server:
        yield server


def chromium(*, args: Sequence[str] = CHROMIUM_ARGS) -> Iterator[Any]:
    """A module fixture's body: Debian's Chromium through Playwright, closed afterwards."""
    from playwright.sync_api import sync_playwright

    executable = chromium_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=list(args))
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_environment(
    base: Mapping[str, str], *, dirs: Mapping[str, Path], extra: Mapping[str, str]
) -> dict[str, str]:
    """The lab's (and so its kernels') environment: ours minus anything that could reach the
    real service or the developer's own Jupyter set-up, plus the isolated directories."""
    env = {
        k: v
        for k, v in base.items()
        if not k.startswith(("DASHSCOPE_", "FUNMUSIC_", "JUPYTER", "IPYTHON"))
        and k not in ("PYTHONSTARTUP",)
    }
    repo = str(Path(__file__).resolve().parents[1])
    # The kernel imports the package from this checkout, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, base.get("PYTHONPATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), base.get("PATH", "")))
    env["HOME"] = str(dirs["home"])
    env["JUPYTER_CONFIG_DIR"] = str(dirs["config"])
    env["JUPYTER_DATA_DIR"] = str(dirs["data"])
    env["JUPYTER_RUNTIME_DIR"] = str(dirs["runtime"])
    env["IPYTHONDIR"] = str(dirs["ipython"])
    env["JUPYTER_PLATFORM_DIRS"] = "1"  # no "migrating paths" warning
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class LabServer:
    """``python -m jupyterlab`` on loopback, started by ``start()``, stopped by ``stop()``.

    ``app="notebook"``: Notebook 7 (``python -m notebook``) instead, with the same isolation,
    token and settings; ``notebook_url`` then opens its single-document page."""

    def __init__(
        self, workdir: Path, *, env: Mapping[str, str] | None = None, app: str = "lab"
    ) -> None:
        if app not in ("lab", "notebook"):
            raise ValueError(f"app must be 'lab' or 'notebook'; got {app!r}")
        self.app = app
        self.workdir = workdir
        self.root = workdir / "notebooks"
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"jupyter{app}.log"
        self.dirs = {
            name: workdir / name for name in ("home", "config", "data", "runtime", "ipython")
        }
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, *, timeout: float = 60.0) -> LabServer:
        for path in (self.root, *self.dirs.values()):
            path.mkdir(parents=True, exist_ok=True)
        self._write_user_settings()
        env = server_environment(os.environ, dirs=self.dirs, extra=self.extra_env)
        for _ in range(3):
            if self._launch(env, timeout=timeout):
                return self
            # Another process took the free port between free_port() and the bind: new port.
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError(f"jupyter lab found no free port:\n{self.log_tail()}")

    def _launch(self, env: Mapping[str, str], *, timeout: float) -> bool:
        """Start the server and wait for it; False if its port was taken."""
        app_class = "LabApp" if self.app == "lab" else "JupyterNotebookApp"
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab" if self.app == "lab" else "notebook",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            # window.jupyterapp: the tests run JupyterLab's own commands (what the menus call).
            f"--{app_class}.expose_app_in_browser=True",
        ]
        if self.app == "lab":
            # No extension manager: it would ask PyPI for listings (Notebook 7 has none).
            cmd.append("--LabApp.extension_manager=readonly")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        if self._log is not None:
            self._log.close()
        self._log = open(self.log_path, "ab")  # closed in stop()
        # A session of its own, so stop() can end the server and the kernels it started.
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                log = self.log_tail()
                self.proc = None
                if "already in use" in log or "no available port" in log:
                    return False
                raise RuntimeError(f"jupyter lab exited early:\n{log}")
            try:
                # The token in the query, as a browser would send it.
                with urllib.request.urlopen(
                    f"{self.url}/api/status?token={self.token}", timeout=5.0
                ) as response:
                    if response.status == 200:
                        return True
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"jupyter lab did not answer in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, *, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            # A clean shutdown stops the kernels too; then SIGTERM, then SIGKILL, each bounded.
            try:
                self.api("POST", "/api/shutdown", timeout=5.0)
            except (OSError, urllib.error.URLError):
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
            # Kernels are in the server's process group; a killed server leaves them behind.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------------
    def api(self, method: str, path: str, *, timeout: float = 5.0) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else {}

    def shutdown_kernels(self) -> None:
        """Shut down every kernel (each notebook has its own): memory is short on CI runners."""
        for kernel in self.api("GET", "/api/kernels"):
            try:
                self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=15.0)
            except (OSError, urllib.error.URLError):
                pass

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])

    def write_notebook(self, name: str, cells: Sequence[str | tuple[str, str]]) -> Path:
        """``name.ipynb`` in the root dir: each cell a code string, or ("markdown", text)."""
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        for cell in cells:
            if isinstance(cell, tuple):
                kind, source = cell
                assert kind == "markdown", kind
                nb.cells.append(nbformat.v4.new_markdown_cell(source))
            else:
                nb.cells.append(nbformat.v4.new_code_cell(cell))
        path = self.root / f"{name}.ipynb"
        nbformat.write(nb, path)
        return path

    def notebook_url(self, name: str) -> str:
        if self.app == "notebook":
            return f"{self.url}/notebooks/{name}.ipynb?token={self.token}"
        return f"{self.url}/lab/tree/{name}.ipynb?token={self.token}&reset"

    def _write_user_settings(self) -> None:
        base = self.dirs["config"] / "lab" / "user-settings"
        for plugin, values in _USER_SETTINGS.items():
            package, _, file = plugin.rpartition("/")
            target = base / package / f"{file}.jupyterlab-settings"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values))


# JavaScript run in the page. ``window.jupyterapp`` exists because of expose_app_in_browser.
_JS_CURRENT = "window.jupyterapp && window.jupyterapp.shell.currentWidget"
_JS_KERNEL_IDLE = f"""() => {{
    const w = {_JS_CURRENT};
    const ctx = w && w.sessionContext;
    const kernel = ctx && ctx.session && ctx.session.kernel;
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle'
        && !ctx.pendingInput;
}}"""
_JS_ALL_RUN = """() => {
    const prompts = [...document.querySelectorAll(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')];
    return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
}"""


class LabPage:
    """One notebook open in a Playwright ``Page``."""

    def __init__(self, server: LabServer, page: Any, name: str) -> None:
        self.server = server
        self.page = page
        self.name = name

    @classmethod
    def open(
        cls, server: LabServer, page: Any, name: str, cells: Sequence[str | tuple[str, str]]
    ) -> LabPage:
        server.write_notebook(name, cells)
        lab = cls(server, page, name)
        page.goto(server.notebook_url(name), wait_until="domcontentloaded")
        # The app is up and this notebook is the current widget (commands act on that one).
        page.wait_for_function(
            f"""() => {{
                const w = {_JS_CURRENT};
                return !!w && !!w.context && w.context.path === {json.dumps(f"{name}.ipynb")};
            }}""",
            timeout=LAB_LOAD_MS,
        )
        page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(
            state="visible", timeout=LAB_LOAD_MS
        )
        # More room for the notebook in screenshots: fold the file browser away (JupyterLab;
        # Notebook 7's shell has no side panel open).
        page.evaluate(
            "() => window.jupyterapp.shell.collapseLeft && window.jupyterapp.shell.collapseLeft()"
        )
        lab.wait_kernel_idle()
        return lab

    # -- kernel and running ------------------------------------------------------------------
    def wait_kernel_idle(self, timeout: float = KERNEL_MS) -> None:
        self.page.wait_for_function(_JS_KERNEL_IDLE, timeout=timeout)

    def command(self, name: str) -> None:
        """Start a JupyterLab command (the registry the menus and the palette use).

        Not awaited: ``notebook:run-all-cells`` resolves only when every cell has run, and
        ``page.evaluate`` has no timeout. Callers wait for what they expect, with a bound."""
        self.page.evaluate(
            """(name) => {
                window.__commandError = undefined;
                window.jupyterapp.commands.execute(name).catch(
                    (e) => { window.__commandError = String(e); });
            }""",
            name,
        )

    def run_all(self, *, timeout: float = RUN_MS) -> None:
        """Run > Run All Cells, then wait until every code cell has its execution count and
        the kernel is idle again."""
        self.command("notebook:run-all-cells")
        try:
            self.page.wait_for_function(_JS_ALL_RUN, timeout=timeout)
            self.wait_kernel_idle(timeout)
        except Exception as exc:
            error = self.page.evaluate("() => window.__commandError")
            raise AssertionError(
                f"cells did not finish (command error: {error}):\n{self.describe_outputs()}"
            ) from exc

    # -- reading -----------------------------------------------------------------------------
    @property
    def cells(self) -> Any:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")

    def cell(self, index: int) -> Any:
        return self.cells.nth(index)

    def output(self, index: int) -> Any:
        """The output area of cell ``index``."""
        return self.cell(index).locator(".jp-OutputArea").first

    def output_text(self, index: int) -> str:
        text: str = self.output(index).inner_text()
        return text

    def describe_outputs(self) -> str:
        """Every cell's output as text: for assertion messages."""
        parts = []
        for i in range(self.cells.count()):
            cell = self.cell(i)
            prompt = cell.locator(".jp-InputArea-prompt").first.inner_text().strip()
            out = cell.locator(".jp-OutputArea")
            text = out.first.inner_text() if out.count() else ""
            parts.append(f"--- cell {i} {prompt}\n{text[:1500]}")
        return "\n".join(parts)

    def assert_no_errors(self) -> None:
        errors = self.page.locator(
            ".jp-NotebookPanel:not(.lm-mod-hidden) "
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        )
        assert errors.count() == 0, f"a cell wrote to stderr:\n{self.describe_outputs()}"

    def screenshot(self, path: Path) -> Path:
        self.page.screenshot(path=str(path), full_page=True)
        return path
