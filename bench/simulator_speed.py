"""Speed of the simulator's music engine: synthesis + encoding of a ~200 s song on one core.

Run: python bench/simulator_speed.py
Prints real-time factors (target >= 20x for MP3); it measures, it does not assert on timing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from funmusic_jupyter.simulator._encode import encode  # noqa: E402
from funmusic_jupyter.simulator._music import Arrangement, arrange  # noqa: E402
from funmusic_jupyter.simulator._synth import render  # noqa: E402

TARGET_SECONDS = 200.0
TARGET_FACTOR = 20.0

_VERSE = (
    "Morning sunlight slips through the curtain,",
    "Coffee aroma fills up the room.",
    "Open the book left unfinished yesterday,",
    "Time quietly drifts by this way.",
)
_CHORUS = (
    "Take it easy, there's no hurry,",
    "Life should be this carefree.",
    "Toss your worries into the wind,",
    "Embrace every sunny day and rainy season.",
)


def _song(lines_wanted: int) -> str:
    blocks: list[str] = []
    pool = [("verse", _VERSE), ("chorus", _CHORUS)]
    i = 0
    while lines_wanted > 0:
        tag, lines = pool[i % 2]
        take = lines[: min(len(lines), lines_wanted)]
        blocks.append(f"[{tag}]\n" + "\n".join(take))
        lines_wanted -= len(take)
        i += 1
    return "\n\n".join(blocks)


def build_arrangement() -> Arrangement:
    """The shortest song of verse/chorus lines that lasts at least ~200 s."""
    # An upbeat prompt gives the fastest tempo, hence the most notes and drum hits per second.
    prompt = "upbeat summer dance pop about a bright morning"
    for lines in range(8, 200):
        arr = arrange(lyrics=_song(lines), gender="female", prompt=prompt)
        if arr.duration >= TARGET_SECONDS - 2.0:
            return arr
    raise RuntimeError("could not reach the target duration")


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity"):
        first = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {first})
        return f"pinned to core {first}"
    return "not pinned (no sched_setaffinity on this platform)"


def _time(label: str, arr: Arrangement, run: Callable[[], int | None]) -> None:
    start = time.perf_counter()
    size = run()
    elapsed = time.perf_counter() - start
    factor = arr.duration / elapsed
    print(
        f"{label}: {arr.duration:.1f} s of audio in {elapsed:.2f} s -> {factor:.1f}x real time "
        f"(target >= {TARGET_FACTOR:.0f}x){'' if size is None else f', {size / 1e6:.1f} MB'}"
    )


def _drain(blocks: Iterator[object]) -> None:
    for _ in blocks:
        pass


def main() -> None:
    print(_pin_one_core())
    arr = build_arrangement()
    assert TARGET_SECONDS - 2.0 <= arr.duration <= 240.0, arr.duration
    lines = sum(len(s.lines) for s in arr.sections)
    mode = "minor" if arr.minor else "major"
    print(f"song: {arr.duration:.1f} s, {lines} lines, {arr.tempo_bpm:.0f} bpm, {mode}")
    # Warm caches (wavetables, noise) so the figures measure steady-state work.
    next(iter(render(arr)))
    _time("synth only", arr, lambda: _drain(render(arr)))
    _time("mp3", arr, lambda: sum(len(chunk) for chunk in encode(arr, "mp3")))
    _time("wav", arr, lambda: sum(len(chunk) for chunk in encode(arr, "wav")))


if __name__ == "__main__":
    main()
