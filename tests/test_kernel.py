"""%%funmusic in a real Jupyter kernel (ipykernel, this virtualenv's Python) against a simulator
this test starts. One kernel for the whole module; every iopub message is kept, so the last test
can check that the API key appears in none of them, nor in a notebook saved from them.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from funmusic_jupyter._client import FunMusicClient
from funmusic_jupyter._validation import build_request
from funmusic_jupyter.simulator import SimulatorServer

pytestmark = pytest.mark.kernel

FAKE_KEY = "sk-fake-kernel-test-0123456789-abcdefABCDEF"
SONG_A = "A cheerful ukulele song about breakfast and sunshine"
SONG_B = "Fast dance beat for a party tonight with friends"
REPO = Path(__file__).resolve().parents[1]
WORKER_THREAD = "funmusic-worker"
EXTENSION = "funmusic_jupyter"


@dataclass
class Cell:
    code: str
    msg_id: str
    reply: dict[str, Any] = field(default_factory=dict)
    outputs: list[dict[str, Any]] = field(default_factory=list)  # iopub msgs with this parent

    @property
    def status(self) -> str:
        return str(self.reply.get("status"))

    def text(self) -> str:
        parts = []
        for msg in self.outputs:
            content = msg["content"]
            if "data" in content:
                parts.append(content["data"].get("text/plain", ""))
            elif msg["msg_type"] == "stream":
                parts.append(content["text"])
        return "\n".join(parts)


class Session:
    """A kernel client that records every iopub message, whatever cell it belongs to."""

    def __init__(self, km: KernelManager, kc: BlockingKernelClient) -> None:
        self.km = km
        self.kc = kc
        self.iopub: list[dict[str, Any]] = []
        self.shell: list[dict[str, Any]] = []
        self.cells: list[Cell] = []
        self._by_id: dict[str, Cell] = {}

    def _pump(self, timeout: float) -> None:
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return
        self.iopub.append(msg)
        cell = self._by_id.get(msg["parent_header"].get("msg_id", ""))
        if cell is not None:
            cell.outputs.append(msg)

    def _shell_reply(self) -> dict[str, Any] | None:
        if not self.kc.shell_channel.msg_ready():
            return None
        msg: dict[str, Any] = self.kc.get_shell_msg(timeout=1)
        self.shell.append(msg)
        cell = self._by_id.get(msg["parent_header"].get("msg_id", ""))
        if cell is not None:
            cell.reply = msg["content"]
        return msg

    def send(self, code: str) -> Cell:
        cell = Cell(code, self.kc.execute(code))
        self.cells.append(cell)
        self._by_id[cell.msg_id] = cell
        return cell

    def finish(self, cell: Cell, timeout: float = 60.0) -> Cell:
        """Until the cell's reply is in and the kernel went idle after it."""
        deadline = time.monotonic() + timeout
        while True:
            self._shell_reply()
            idle = any(
                m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
                for m in cell.outputs
            )
            if cell.reply and idle:
                return cell
            if time.monotonic() > deadline:
                raise AssertionError(f"no reply to {cell.code!r} within {timeout} s")
            self._pump(0.02)

    def run(self, code: str, timeout: float = 60.0) -> Cell:
        return self.finish(self.send(code), timeout)

    def value(self, code: str) -> Any:
        cell = self.run(code)
        assert cell.status == "ok", cell.reply
        result = [m for m in cell.outputs if m["msg_type"] == "execute_result"]
        return ast.literal_eval(result[0]["content"]["data"]["text/plain"])

    def pump_until(self, check: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            self._shell_reply()
            self._pump(0.02)

    def displays(self, display_id: str) -> list[dict[str, Any]]:
        return [
            m for m in self.iopub
            if m["msg_type"] in ("display_data", "update_display_data")
            and m["content"].get("transient", {}).get("display_id") == display_id
        ]

    def final_html(self, display_id: str) -> str:
        return str(self.displays(display_id)[-1]["content"]["data"]["text/html"])

    def threads(self) -> set[tuple[str, int]]:
        return {
            (name, ident)
            for name, ident in self.value(
                "import threading as _t; sorted((t.name, t.ident) for t in _t.enumerate())"
            )
        }


def _display_id(cell: Cell) -> str:
    """The display that turns from progress into the song's card: the cell's first. A streamed
    song's live player (a widget) is the second, and only while the song streams."""
    displays = [m for m in cell.outputs if m["msg_type"] == "display_data"]
    assert 1 <= len(displays) <= 2, displays
    if len(displays) == 2:
        assert displays[1]["content"]["data"]["text/plain"].startswith("FunMusic live player")
    return str(displays[0]["content"]["transient"]["display_id"])


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[SimulatorServer, SimulatorServer]]:
    # slow: six seconds of audio per second, so a one-minute song streams for about ten.
    with SimulatorServer(speed=6, api_key=FAKE_KEY) as slow, \
            SimulatorServer(speed=0, api_key=FAKE_KEY) as fast:
        yield slow, fast


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kernel")


@pytest.fixture(scope="module")
def session(
    servers: tuple[SimulatorServer, SimulatorServer], workdir: Path
) -> Iterator[Session]:
    slow, _ = servers
    # A kernelspec naming this interpreter: the kernel runs in the venv under test, whatever
    # other "python3" kernels the machine has.
    spec_dir = workdir / "kernels" / "funmusic-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "funmusic test",
        "language": "python",
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "FUNMUSIC_"))}
    env.update(
        DASHSCOPE_API_KEY=FAKE_KEY,
        HOME=str(workdir),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    km = KernelManager(
        kernel_name="funmusic-test",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(workdir / "kernels")]),
    )
    (workdir / "nb").mkdir()
    km.start_kernel(env=env, cwd=str(workdir / "nb"))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        s = Session(km, kc)
        setup = s.run(
            f"%load_ext {EXTENSION}\n"
            "%config FunMusicMagics.backend = 'api'\n"
            f"%config FunMusicMagics.base_url = {slow.base_url!r}\n"
            "%config FunMusicMagics.progress_interval = 0.1\n"
            # These tests are about songs being made: an unchanged cell run again must stream
            # again, not be answered from the output directory (test_library_kernel covers that).
            "%config FunMusicMagics.reuse = False\n"
            # pyzmq starts one garbage-collector thread at the kernel's first large message
            # (zero-copy send): have it before the baseline, so every thread after is ours.
            "from IPython.display import display as _d; _d({'text/plain': 'x' * 300_000}, raw=True)"
        )
        assert setup.status == "ok", setup.reply
        s.baseline = s.threads()  # type: ignore[attr-defined]
        yield s
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _extra_threads(s: Session) -> set[str]:
    """Threads the kernel has now and did not have before any song, besides the worker."""
    now = s.threads()
    extra = now - s.baseline  # type: ignore[attr-defined]
    return {name for name, _ in extra if name != WORKER_THREAD}


def test_kernel_is_this_virtualenv(session: Session) -> None:
    assert session.value("import sys; sys.executable") == sys.executable


def test_cell_returns_at_once_and_two_songs_stream_side_by_side(
    session: Session, servers: tuple[SimulatorServer, SimulatorServer], workdir: Path
) -> None:
    slow, fast = servers
    a = session.run(f"%%funmusic\n{SONG_A}")
    b = session.run(f"%%funmusic -g male\n{SONG_B}")
    assert a.status == b.status == "ok"
    ids = [_display_id(a), _display_id(b)]

    def finished(display_id: str) -> bool:
        return "<audio" in session.final_html(display_id)

    # Both cells replied while their songs were still streaming...
    assert not any(finished(i) for i in ids)
    # ...and the kernel keeps answering meanwhile.
    other = session.run("1 + 1")
    assert other.status == "ok" and "2" in other.text()
    # Both stream at the same time, and neither has finished yet.
    session.pump_until(lambda: slow.state.active_syntheses == 2, timeout=10)
    assert not any(finished(i) for i in ids)

    session.pump_until(lambda: all(finished(i) for i in ids), timeout=90)
    for display_id in ids:
        updates = [
            m for m in session.displays(display_id) if m["msg_type"] == "update_display_data"
        ]
        assert len(updates) >= 3  # progress went by in place
        assert "funmusic-progress" in updates[0]["content"]["data"]["text/html"]
        html = session.final_html(display_id)
        assert html.count("<audio") == 1
        assert '<audio controls="controls" preload="metadata"' in html
        assert 'src="data:audio/mpeg;base64,' in html
        assert "audio/wav" not in html
        assert ">Request id</th>" in html and ">Duration</th>" in html and ">Cost</th>" in html
        assert 'role="heading"' in html  # lyrics sections

    # Each saved file is the very song: compare with a direct, non-streaming download.
    out = workdir / "nb" / "funmusic-output"
    sidecars = {p: json.loads(p.read_text()) for p in out.glob("*.json")}
    client = FunMusicClient(api_key=FAKE_KEY, base_url=fast.base_url)
    try:
        for prompt, gender, display_id in ((SONG_A, "female", ids[0]), (SONG_B, "male", ids[1])):
            ((sidecar, meta),) = [
                (p, m) for p, m in sidecars.items() if m["request"].get("prompt") == prompt
            ]
            assert meta["complete"] is True and meta["gender"] == gender
            direct = client.generate_request(
                build_request(text=prompt, gender=gender, stream=False)
            )
            assert sidecar.with_suffix(".mp3").read_bytes() == direct.audio
            html = session.final_html(display_id)
            assert meta["request_id"] in html
            assert str(sidecar.with_suffix(".mp3")) in html
            first_line = next(
                line for line in meta["lyrics"].splitlines() if line and not line.startswith("[")
            )
            assert first_line.replace("'", "&#x27;") in html
    finally:
        client.close()
    assert _extra_threads(session) == set()


def test_stop_cancels_and_keeps_the_partial_audio(
    session: Session, servers: tuple[SimulatorServer, SimulatorServer], workdir: Path
) -> None:
    slow, _ = servers
    cell = session.run(f"%%funmusic\n{SONG_A}")
    display_id = _display_id(cell)
    session.pump_until(lambda: "1 chunk" not in session.final_html(display_id)
                       and "streaming" in session.final_html(display_id))
    stop = session.run("%funmusic stop")
    assert stop.status == "ok"
    text = stop.text()
    assert ": Stopped at " in text and "partial song saved to " in text
    # Relative to the kernel's working directory (the notebook's folder).
    partial = workdir / "nb" / text.split("partial song saved to ")[1].strip()
    assert partial.exists() and partial.stat().st_size > 0
    assert partial.name.endswith(".partial.mp3")
    session.pump_until(lambda: "Stopped at " in session.final_html(display_id))
    assert partial.relative_to(workdir / "nb").as_posix() in session.final_html(display_id)
    session.pump_until(lambda: slow.state.active_syntheses == 0, timeout=10)
    assert _extra_threads(session) == set()
    status = session.run("%funmusic status")
    assert "cancelled" in status.text()


def test_interrupt_during_wait_cancels_cleanly(
    session: Session, servers: tuple[SimulatorServer, SimulatorServer]
) -> None:
    slow, _ = servers
    cell = session.send(f"%%funmusic --wait --out interrupted\n{SONG_B}")
    session.pump_until(lambda: slow.state.active_syntheses == 1, timeout=30)
    time.sleep(1.0)  # a few chunks in
    session.km.interrupt_kernel()
    session.finish(cell, timeout=30)
    assert cell.status == "error"
    assert cell.reply["ename"] == "GenerationCancelled"
    errors = [m for m in cell.outputs if m["msg_type"] == "error"]
    assert len(errors) == 1
    (line,) = errors[0]["content"]["traceback"]  # one line, no traceback
    assert line.startswith("GenerationCancelled: interrupted: the song was stopped; partial")
    partial = Path(line.split("partial audio saved to ")[1])
    assert partial.exists() and partial.stat().st_size > 0
    displays = [m for m in cell.outputs if m["msg_type"] == "display_data"]
    assert len(displays) == 1 and "Stopped at " in displays[0]["content"]["data"]["text/html"]
    session.pump_until(lambda: slow.state.active_syntheses == 0, timeout=10)
    assert _extra_threads(session) == set()
    # The kernel is fine afterwards, and nothing was bound.
    assert session.value("'interrupted' in dir()") is False


def test_the_api_key_is_in_no_message_and_no_saved_notebook(
    session: Session, servers: tuple[SimulatorServer, SimulatorServer], workdir: Path
) -> None:
    slow, fast = servers
    config = session.run("%funmusic config")
    assert "present (from DASHSCOPE_API_KEY)" in config.text()
    session.run(f"%config FunMusicMagics.base_url = {fast.base_url!r}")
    try:
        song = session.run("%%funmusic --wait --no-stream --out s\n[verse]\nHello there my friend")
        assert song.status == "ok" and "<Song mp3" in song.text()  # the key reached the server
        failed = session.run(f"%%funmusic --wait --fault status=500\n{SONG_A}")
        assert "Song failed: 500 InternalError" in failed.text()
    finally:
        session.run(f"%config FunMusicMagics.base_url = {slow.base_url!r}")

    # The worker never prints: no cell of this module produced a stream output.
    assert [m for m in session.iopub if m["msg_type"] == "stream"] == []

    key_variants = (FAKE_KEY, FAKE_KEY[3:], FAKE_KEY[-16:])
    everything = json.dumps(session.iopub + session.shell, default=str)
    for variant in key_variants:
        assert variant not in everything

    # A notebook as JupyterLab would save it: outputs, with display updates applied.
    nb = nbformat.v4.new_notebook()
    by_display: dict[str, dict[str, Any]] = {}
    for cell in session.cells:
        code = nbformat.v4.new_code_cell(cell.code)
        for msg in cell.outputs:
            if msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
                output = nbformat.v4.output_from_msg(msg)
                code.outputs.append(output)
                display_id = msg["content"].get("transient", {}).get("display_id")
                if display_id:
                    by_display[display_id] = output
        nb.cells.append(code)
    for msg in session.iopub:
        if msg["msg_type"] == "update_display_data":
            target = by_display.get(msg["content"]["transient"]["display_id"])
            if target is not None:
                target["data"] = msg["content"]["data"]
    nbformat.validate(nb)
    path = workdir / "saved.ipynb"
    nbformat.write(nb, path)
    saved = path.read_text(encoding="utf-8")
    assert "<audio" in saved and "funmusic-error" in saved
    for variant in key_variants:
        assert variant not in saved
    # Nor in any file the songs left behind.
    for file in (workdir / "nb" / "funmusic-output").iterdir():
        assert FAKE_KEY.encode() not in file.read_bytes()
