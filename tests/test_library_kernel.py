"""Reuse survives a kernel restart: it reads the output directory, not the kernel's memory.

A real ipykernel (this virtualenv's Python) runs a ``%%funmusic --wait`` cell, is restarted, and
runs it again; the simulator, in this process, counts the generation requests it receives.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from test_library import Counting

from funmusic_jupyter.simulator import SimulatorServer

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[1]
CELL = "%%funmusic --wait\nA cheerful ukulele song about breakfast and sunshine"


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer(speed=0)
    server.app = Counting(server.app)
    with server:
        yield server


def _run(km: KernelManager, code: str) -> list[dict[str, Any]]:
    """Run ``code`` in a fresh client of the kernel; its display and error outputs."""
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        outputs: list[dict[str, Any]] = []

        def keep(msg: dict[str, Any]) -> None:
            if msg["msg_type"] in ("display_data", "execute_result", "error", "stream"):
                outputs.append(msg["content"])

        reply = kc.execute_interactive(code, timeout=120, output_hook=keep)
        assert reply["content"]["status"] == "ok", (reply["content"], outputs)
        return outputs
    finally:
        kc.stop_channels()


def test_a_restarted_kernel_reuses_the_song_and_sends_nothing(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    spec_dir = tmp_path / "kernels" / "funmusic-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "funmusic test",
                "language": "python",
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "FUNMUSIC_"))}
    env.update(
        HOME=str(tmp_path),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    (tmp_path / "nb").mkdir()
    km = KernelManager(
        kernel_name="funmusic-test",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]),
    )
    setup = (
        "%load_ext funmusic_jupyter\n"
        "%config FunMusicMagics.backend = 'api'\n"
        f"%config FunMusicMagics.base_url = {sim.base_url!r}\n"
    )
    app = sim.app
    assert isinstance(app, Counting)
    km.start_kernel(env=env, cwd=str(tmp_path / "nb"))
    try:
        _run(km, setup)
        first = _run(km, CELL)
        assert app.posts == 1
        assert not any("reused" in o.get("data", {}).get("text/plain", "") for o in first)

        km.restart_kernel(now=True)
        _run(km, setup)
        second = _run(km, CELL)
        assert app.posts == 1  # nothing reached the simulator the second time
        shown = [o["data"]["text/plain"] for o in second if "data" in o]
        assert len(shown) == 1 and "reused from funmusic-output/" in shown[0], second
        assert "not billed; --fresh makes a new take" in shown[0]

        _run(km, CELL.replace("--wait", "--wait --fresh"))
        assert app.posts == 2
    finally:
        km.shutdown_kernel(now=True)


def test_run_all_twice_on_three_songs_sends_three_requests(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    """The issue's "done when": Run All twice on a notebook of three songs, in two kernels."""
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    prompts = [
        "A cheerful ukulele song about breakfast and sunshine",
        "Slow jazz ballad for a rainy evening in the city",
        "Calm lo-fi beat for studying late at night",
    ]
    cells = [
        "%load_ext funmusic_jupyter\n%config FunMusicMagics.backend = 'api'\n"
        f"%config FunMusicMagics.base_url = {sim.base_url!r}",
        *(f"%%funmusic --wait\n{prompt}" for prompt in prompts),
        "%funmusic list",
        "%funmusic cost",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "FUNMUSIC_"))}
    env.update(HOME=str(tmp_path))
    app = sim.app
    assert isinstance(app, Counting)

    def run_all() -> list[str]:
        nb = new_notebook(cells=[new_code_cell(c) for c in cells])
        client = NotebookClient(nb, timeout=180, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}})
        old = dict(os.environ)  # the kernel inherits this environment: no key, a fresh HOME
        os.environ.clear()
        os.environ.update(env)
        try:
            client.execute()
        finally:
            os.environ.clear()
            os.environ.update(old)
        return [
            "\n".join(str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)
            for cell in nbformat.from_dict(nb).cells
        ]

    first = run_all()
    assert app.posts == 3
    second = run_all()
    assert app.posts == 3  # the second Run All sent nothing
    for shown in second[1:4]:
        assert "reused from funmusic-output/" in shown and "not billed" in shown
    assert second[4].startswith("3 songs in funmusic-output")
    assert all(f"'{p}'" in second[4] for p in prompts)
    assert "3 songs," in second[5] and "this kernel session: 0.00 CNY (0 s billed)" in second[5]
    assert "3 songs," in first[5]
