"""Time to the first SSE event from the simulator (target: <= 50 ms with no first-chunk delay).

Run: python bench/simulator_latency.py [--repeat 15] [--speed 1]

Starts a ``SimulatorServer`` on loopback (first_chunk_delay=0), sends a streaming request for an
English lyrics song (~210 words, about two minutes of audio) and measures from just before the
request is sent to the moment the first complete ``data:`` line has arrived; then disconnects
(which also stops the synthesis). One warm-up request is not counted. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from funmusic_jupyter.simulator import SimulatorServer  # noqa: E402

TARGET_MS = 50.0
PATH = "/services/audio/music/generation"
_LINES = (
    "Morning light falls softly on the quiet river",
    "Where we used to walk and sing together",
    "Open skies are calling every restless heart",
    "Summer rain is dancing on the window pane",
)


def lyrics(words: int = 210) -> str:
    out: list[str] = []
    count, i = 0, 0
    for tag in ("verse", "chorus", "verse", "chorus", "bridge", "chorus", "verse", "chorus"):
        out.append(f"[{tag}]")
        for _ in range(4):
            line = _LINES[i % len(_LINES)]
            i += 1
            if count >= words:
                break
            out.append(line)
            count += len(line.split())
        out.append("")
    return "\n".join(out).strip()


def first_event_ms(sim: SimulatorServer, client: httpx.Client, body: dict[str, object]) -> float:
    # Measure an idle server: the previous run's disconnect stops its synthesis within one
    # chunk; wait for that, or we would time two songs competing for the GIL.
    deadline = time.monotonic() + 10
    while sim.state.active_syntheses and time.monotonic() < deadline:
        time.sleep(0.005)
    start = time.perf_counter()
    with client.stream("POST", PATH, json=body, headers={"X-DashScope-SSE": "enable"}) as r:
        if r.status_code != 200:
            raise SystemExit(f"unexpected {r.status_code}: {r.read()[:300]!r}")
        for line in r.iter_lines():
            if line.startswith("data:"):
                return (time.perf_counter() - start) * 1000
    raise SystemExit("the stream ended without a data line")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--speed", type=float, default=1.0, help="real-time factor (default 1)")
    args = parser.parse_args()
    text = lyrics()
    body = {"model": "fun-music-v1", "input": {"lyrics": text, "gender": "female"}}
    with SimulatorServer(speed=args.speed, first_chunk_delay=0.0) as sim, \
            httpx.Client(base_url=sim.base_url, timeout=60) as client:
        first_event_ms(sim, client, body)  # warm-up: imports, caches, the connection
        times = [first_event_ms(sim, client, body) for _ in range(args.repeat)]
    p50 = statistics.median(times)
    worst = max(times)
    print(f"simulator time to first SSE event: English lyrics, {len(text.split())} words "  # noqa: T201
          f"(incl. tags), speed {args.speed:g}, first_chunk_delay 0, {args.repeat} runs")
    verdict = "p50 " + ("met" if p50 <= TARGET_MS else "MISSED")
    verdict += ", max " + ("met" if worst <= TARGET_MS else "over")
    print(f"  p50 {p50:6.1f} ms   max {worst:6.1f} ms   min {min(times):6.1f} ms   "  # noqa: T201
          f"target <= {TARGET_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
