"""Does a song streaming in the background keep the kernel responsive?

Run: python bench/kernel_responsiveness.py [--speed 1] [--cells 50] [--interval 0.1]

Starts the simulator in this process (real-time pace by default: one second of audio per
second) and a real Jupyter kernel on this virtualenv's Python, then sends a trivial cell
(``1+1``) N times and measures each round trip, execute_request -> execute_reply, in three
situations:

1. idle: nothing else running;
2. ``%%funmusic``: a song streaming in the background on the extension's worker thread;
3. the vendor guide's streaming sample (``requests.post(..., stream=True)`` and an
   ``iter_lines()`` loop, from fun-music-user-guide.en.txt) running in a cell: it blocks the
   kernel, so the trivial cells wait for the song to end.

The cells are sent on a fixed clock (every ``--interval`` seconds) rather than one after the
other's reply, so a blocked kernel shows up as waiting time in every cell queued behind it,
the way a user's clicks would; in a responsive kernel the two ways measure the same thing.
Prints p50 / p95 / max per situation and the target (p95 within 20 ms of idle). No asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Runnable from a checkout without installing the package.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jupyter_client.blocking.client import BlockingKernelClient  # noqa: E402
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

from funmusic_jupyter.simulator import SimulatorServer  # noqa: E402

EXTENSION = "funmusic_jupyter"
PROMPT = (
    "High-energy electronic dance music, synthesizer effects, full of energy, "
    "suitable for fitness and workout scenarios"
)
TARGET_MS = 20.0

# The user guide's Python streaming sample, verbatim but for the URL (the simulator's) and the
# key (the simulator started here needs none).
VENDOR_SAMPLE = '''
import requests
import os
import json
import base64

api_key = os.getenv("DASHSCOPE_API_KEY")
url = "{base_url}/services/audio/tts/SpeechSynthesizer"

response = requests.post(url,
    headers={{
        "Authorization": f"Bearer {{api_key}}",
        "Content-Type": "application/json",
        "X-DashScope-SSE": "enable"
    }},
    json={{
        "model": "fun-music-v1",
        "input": {{
            "prompt": "{prompt}",
            "gender": "male"
        }}
    }},
    stream=True
)

output_file = "output.mp3"
with open(output_file, "wb") as f:
    for line in response.iter_lines():
        if not line:
            continue
        decoded = line.decode("utf-8")
        if decoded.startswith("data:"):
            data = json.loads(decoded[5:])
            finish_reason = data.get("output", {{}}).get("finish_reason")
            if finish_reason == "null":
                audio_data = data["output"]["audio"].get("data", "")
                if audio_data:
                    f.write(base64.b64decode(audio_data))
            elif finish_reason == "stop":
                print(f"Music generation complete! Saved to {{output_file}}")
'''


def start_kernel(workdir: Path) -> tuple[KernelManager, BlockingKernelClient]:
    spec = workdir / "kernels" / "bench"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "bench",
        "language": "python",
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "FUNMUSIC_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    km = KernelManager(
        kernel_name="bench",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(workdir / "kernels")]),
    )
    km.start_kernel(env=env, cwd=str(workdir))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def drain_iopub(kc: BlockingKernelClient) -> None:
    while True:
        try:
            kc.get_iopub_msg(timeout=0)
        except queue.Empty:
            return


def run(kc: BlockingKernelClient, code: str, timeout: float = 120.0) -> dict[str, object]:
    reply: dict[str, object] = kc.execute_interactive(
        code, timeout=timeout, output_hook=lambda m: None
    )
    return reply


def round_trips(
    kc: BlockingKernelClient, cells: int, interval: float, others: dict[str, dict] | None = None
) -> list[float]:
    """Send ``1+1`` every ``interval`` s; return each one's request -> reply time in ms.
    Replies to other cells that arrive meanwhile go into ``others`` (by msg_id)."""
    sent: dict[str, float] = {}
    done: list[float] = []
    next_send = time.perf_counter()
    while len(done) < cells:
        now = time.perf_counter()
        if len(sent) < cells and now >= next_send:
            sent[kc.execute("1+1", store_history=False)] = time.perf_counter()
            next_send += interval
        try:
            msg = kc.get_shell_msg(timeout=0.001)
        except queue.Empty:
            drain_iopub(kc)
            continue
        msg_id = msg["parent_header"].get("msg_id")
        if msg_id in sent:
            done.append((time.perf_counter() - sent[msg_id]) * 1000.0)
        elif others is not None:
            others[msg_id] = msg["content"]
    return done


def describe(name: str, times: list[float]) -> tuple[str, float]:
    q = statistics.quantiles(times, n=100, method="inclusive")
    p50, p95 = statistics.median(times), q[94]
    return f"{name:<44} p50 {p50:9.1f} ms   p95 {p95:9.1f} ms   max {max(times):9.1f} ms", p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=1.0, help="simulator pace (1 = real time)")
    parser.add_argument("--cells", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between cells")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, SimulatorServer(speed=args.speed) as sim:
        workdir = Path(tmp)
        km, kc = start_kernel(workdir)
        try:
            run(kc, f"%load_ext {EXTENSION}\n"
                    "%config FunMusicMagics.backend = 'api'\n"
                    f"%config FunMusicMagics.base_url = {sim.base_url!r}")
            round_trips(kc, 10, args.interval)  # warm up

            idle = round_trips(kc, args.cells, args.interval)

            run(kc, f"%%funmusic\n{PROMPT}")
            deadline = time.monotonic() + 30
            while sim.state.active_syntheses < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # audio is arriving
            streaming = round_trips(kc, args.cells, args.interval)
            still = sim.state.active_syntheses == 1
            run(kc, "%funmusic stop")

            blocking_id = kc.execute(VENDOR_SAMPLE.format(base_url=sim.base_url, prompt=PROMPT))
            while sim.state.active_syntheses < 1:
                time.sleep(0.05)
            time.sleep(1.0)
            started = time.perf_counter()
            others: dict[str, dict] = {}
            blocked = round_trips(kc, args.cells, args.interval, others)
            song_wall = time.perf_counter() - started
            # The kernel runs cells in order: the sample's reply came before the trivial ones.
            sample_status = others[blocking_id]["status"]
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)

    print(f"kernel responsiveness: {args.cells} x `1+1`, one every {args.interval:g} s; "
          f"simulator speed {args.speed:g} (1 = real time); load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    line, idle_p95 = describe("idle kernel", idle)
    print(line)
    line, bg_p95 = describe("%%funmusic streaming in the background", streaming)
    print(line + ("" if still else "   (the song ended during the measurement!)"))
    line, _ = describe("vendor requests loop streaming in the kernel", blocked)
    print(line + f"   (waited for the song to end: {song_wall:.0f} s; sample {sample_status})")
    verdict = "met" if bg_p95 - idle_p95 <= TARGET_MS else "NOT met"
    print(f"target: background p95 within {TARGET_MS:g} ms of idle p95 -> "
          f"{bg_p95 - idle_p95:+.1f} ms, {verdict}")


if __name__ == "__main__":
    main()
