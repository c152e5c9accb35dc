"""Synthesis for the offline Fun-Music simulator: an ``Arrangement`` (``_music``) to PCM.

``render`` synthesizes the plan block by block: each block is an independent time window of
the global timeline, and every event's samples are computed from its own absolute start, so
any block size yields the same PCM and notes straddling a block boundary continue without
clicks.

Tonal parts are wavetable oscillators (one period with the right harmonics, read with linear
interpolation), which keeps the cost per sample constant however many harmonics a voice has:
that is what makes >20x real time possible in numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache

import numpy as np

from ._music import (
    _KIND_ORDER,
    _NOISE_LEN,
    SAMPLE_RATE,
    Arrangement,
    Event,
)

__all__ = ["render", "render_window"]


_TABLE_SIZE = 2048
_NOISE_MASK = _NOISE_LEN - 1
_MASTER_GAIN = 0.25
_FADE_SECONDS = 2.5
_FADE_IN_SECONDS = 0.01

# Vowel formants (centre Hz, bandwidth Hz, gain) for an adult male voice; female
# formants are the same shape scaled up, as vocal tracts are shorter.
_FORMANTS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "a": ((800.0, 110.0, 1.0), (1150.0, 120.0, 0.55), (2900.0, 160.0, 0.22)),
    "e": ((420.0, 90.0, 1.0), (2000.0, 130.0, 0.35), (2600.0, 160.0, 0.25)),
    "i": ((290.0, 80.0, 1.0), (2250.0, 130.0, 0.30), (2950.0, 160.0, 0.25)),
    "o": ((470.0, 90.0, 1.0), (820.0, 100.0, 0.60), (2800.0, 140.0, 0.15)),
    "u": ((330.0, 80.0, 1.0), (720.0, 100.0, 0.40), (2500.0, 140.0, 0.10)),
}


def _midi_hz(midi: float) -> float:
    # float ** float is typed Any (a negative base would give a complex); ours is 2.0.
    ratio: float = 2.0 ** ((midi - 69.0) / 12.0)
    return 440.0 * ratio


def _table(amps: np.ndarray) -> np.ndarray:
    """One period built from harmonic amplitudes, RMS-normalised, with a wrap sample."""
    k = np.arange(1, len(amps) + 1, dtype=np.float64)
    x = np.arange(_TABLE_SIZE, dtype=np.float64) * (2.0 * np.pi / _TABLE_SIZE)
    # Elementwise multiply + numpy's pairwise sum rather than a BLAS matmul: BLAS may
    # thread or reorder the sum, and the tables must be bit-identical on every run.
    wave = (np.sin(np.outer(x, k)) * amps).sum(axis=1)
    wave /= math.sqrt(float(np.sum(amps**2)) / 2.0)
    return np.append(wave, wave[0]).astype(np.float32)


@lru_cache(maxsize=1024)
def _voice_table(vowel: str, midi: float, female: bool) -> np.ndarray:
    f0 = _midi_hz(midi)
    n = max(1, min(60, int(7000.0 / f0)))
    freqs = f0 * np.arange(1, n + 1)
    scale = 1.14 if female else 1.0
    # Saw-like glottal source (1/k), shaped by resonances at the vowel's formants.
    env = np.zeros(n)
    for centre, bw, gain in _FORMANTS.get(vowel, _FORMANTS["a"]):
        env += gain / (1.0 + ((freqs - centre * scale) / (bw * 1.6 + 0.35 * f0)) ** 2)
    amps = (1.0 / np.arange(1, n + 1)) * (0.08 + env)
    return _table(amps)


@lru_cache(maxsize=8)
def _instrument_table(name: str) -> np.ndarray:
    k = np.arange(1, 41, dtype=np.float64)
    if name == "pad":  # soft, slightly hollow saw
        amps = k**-1.5 * np.where(k % 2 == 0, 0.6, 1.0)
        amps[16:] = 0
    elif name == "bass":  # round with a little bite for small speakers
        amps = np.array([1.0, 0.55, 0.3, 0.15, 0.08, 0.04])
    else:  # pluck: bright, decays through its envelope
        amps = k**-1.2
        amps[24:] = 0
    return _table(amps)


@lru_cache(maxsize=1)
def _noise() -> tuple[np.ndarray, np.ndarray]:
    """Fixed-seed noise tables (white-ish and brighter); drums index them by absolute offsets."""
    white = np.random.default_rng(0x5EED).standard_normal(_NOISE_LEN)
    hp1 = white - np.roll(white, 1)  # first difference: a gentle high-pass for snares
    hp2 = hp1 - np.roll(hp1, 1)  # second difference: hiss for hats and cymbals
    return (hp1 / hp1.std() * 0.5).astype(np.float32), (hp2 / hp2.std() * 0.5).astype(np.float32)


def _osc(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Read a wavetable at the given phase (in cycles, float64) with linear interpolation."""
    pos = (cycles - np.floor(cycles)) * _TABLE_SIZE
    i = pos.astype(np.intp)
    w = (pos - i).astype(np.float32)
    a: np.ndarray = table[i]
    out: np.ndarray = a + w * (table[i + 1] - a)
    return out


def _envelope(t: np.ndarray, gate: float, attack: float, release: float) -> np.ndarray:
    """Linear attack, hold, linear release starting at the gate (t in seconds, float32)."""
    env = np.minimum(t * np.float32(1.0 / attack), np.float32(1.0))
    env *= np.clip((np.float32(gate + release) - t) * np.float32(1.0 / release), 0.0, 1.0)
    return env


def _synth(ev: Event, n: np.ndarray, female: bool) -> np.ndarray:
    """Mono float32 samples of one event at local frame indices ``n`` (from its onset)."""
    t = n * (1.0 / SAMPLE_RATE)  # float64: phase must stay exact over long notes
    t32 = t.astype(np.float32)
    kind = ev.kind
    gate = ev.gate / SAMPLE_RATE
    if kind in ("lead", "harmony"):
        f0 = _midi_hz(ev.midi)
        tau, scoop = 0.045, 0.025  # start a touch flat and slide up, like a singer
        rate, depth = 5.4, 0.011  # vibrato fades in after the onset
        ramp = np.clip((t - 0.16) * (1.0 / 0.3), 0.0, 1.0)
        cycles = f0 * (t - scoop * tau * (1.0 - np.exp(-t * (1.0 / tau))))
        cycles += (f0 * depth / (2.0 * np.pi * rate)) * ramp * np.sin((2.0 * np.pi * rate) * t)
        sig = _osc(_voice_table(ev.vowel, round(ev.midi), female), cycles)
        sig *= _envelope(t32, gate, 0.035, ev.release / SAMPLE_RATE)
        if ev.variant:  # a breathy consonant onset
            m = n < int(0.03 * SAMPLE_RATE)
            if m.any():
                k = n[m]
                onset_env = np.exp(-k * np.float32(1.0 / (0.008 * SAMPLE_RATE))).astype(np.float32)
                hiss = _noise()[1][(k + int(ev.midi) * 997) & _NOISE_MASK] * onset_env
                sig[m] += np.float32(0.25) * hiss
        return sig
    if kind == "pad":
        sig = _osc(_instrument_table("pad"), _midi_hz(ev.midi) * t)
        pad: np.ndarray = sig * _envelope(t32, gate, 0.25, ev.release / SAMPLE_RATE)
        return pad
    if kind == "bass":
        sig = _osc(_instrument_table("bass"), _midi_hz(ev.midi) * t)
        env = _envelope(t32, gate, 0.006, ev.release / SAMPLE_RATE)
        env *= np.float32(0.7) + np.float32(0.3) * np.exp(-t32 * np.float32(1.0 / 0.18))
        bass: np.ndarray = sig * env
        return bass
    if kind == "pluck":
        sig = _osc(_instrument_table("pluck"), _midi_hz(ev.midi) * t)
        pluck_env = _envelope(t32, gate, 0.003, ev.release / SAMPLE_RATE) * np.exp(
            -t32 * np.float32(1.0 / 0.22)
        )
        pluck: np.ndarray = sig * pluck_env
        return pluck
    hp1, hp2 = _noise()
    idx = (n + ev.variant) & _NOISE_MASK
    # Drum hits are cut at a fixed length: taper the last 30 ms so the cut never clicks.
    taper = np.clip((np.float32(gate) - t32) * np.float32(1.0 / 0.03), 0.0, 1.0)
    if kind == "kick":  # pitch-swept sine thump plus a tiny click
        cycles = 48.0 * t + (115.0 * 0.032) * (1.0 - np.exp(-t * (1.0 / 0.032)))
        body = np.sin((2.0 * np.pi) * cycles).astype(np.float32) * np.exp(
            -t32 * np.float32(1.0 / 0.22)
        )
        click = hp1[idx] * (np.float32(0.5) * np.exp(-t32 * np.float32(1.0 / 0.003)))
        sig = np.float32(1.6) * body + click
    elif kind == "snare":  # tone + noise, the noise decaying slower
        tone = np.sin((2.0 * np.pi * 190.0) * t).astype(np.float32) * np.exp(
            -t32 * np.float32(1.0 / 0.05)
        )
        rattle = np.float32(1.3) * hp1[idx] * np.exp(-t32 * np.float32(1.0 / 0.1))
        sig = np.float32(0.6) * tone + rattle
    else:
        decay = {"hat": 0.022, "ohat": 0.14, "crash": 0.7}[kind]
        sig = np.float32(1.6) * hp2[idx] * np.exp(-t32 * np.float32(1.0 / decay))
    drum: np.ndarray = sig * taper
    return drum


def _pan_gains(pan: float) -> tuple[float, float]:
    theta = (max(-1.0, min(1.0, pan)) + 1.0) * (np.pi / 4.0)  # constant-power pan law
    return math.cos(theta) * math.sqrt(2.0), math.sin(theta) * math.sqrt(2.0)


def _master(left: np.ndarray, right: np.ndarray, b0: int, total: int) -> np.ndarray:
    """Fixed gain + tanh soft limiter + end fade -> interleaved int16 (n, 2).

    The gain is a constant (not measured from the audio) because every block is
    rendered on its own: a data-dependent gain would step at block boundaries.
    """
    n = left.shape[0]
    stereo = np.empty((n, 2), dtype=np.float32)
    stereo[:, 0] = left
    stereo[:, 1] = right
    stereo *= np.float32(_MASTER_GAIN)
    np.tanh(stereo, out=stereo)
    fade = int(_FADE_SECONDS * SAMPLE_RATE)
    fade_in = int(_FADE_IN_SECONDS * SAMPLE_RATE)
    pos = np.arange(b0, b0 + n)
    if b0 + n > total - fade:
        g = np.clip((total - pos) * (1.0 / fade), 0.0, 1.0).astype(np.float32)
        stereo *= (g * g)[:, None]  # squared ramp: a smooth, natural-sounding fade
    if b0 < fade_in:
        stereo *= np.clip(pos * (1.0 / fade_in), 0.0, 1.0).astype(np.float32)[:, None]
    stereo *= np.float32(32767.0 * 0.97)
    return np.rint(stereo).astype(np.int16)


def _flatten(arr: Arrangement) -> tuple[list[Event], np.ndarray, np.ndarray]:
    events = [e for s in arr.sections for e in s.events]
    events.sort(key=lambda e: (e.start, _KIND_ORDER[e.kind]))
    starts = np.fromiter((e.start for e in events), dtype=np.int64, count=len(events))
    ends = np.fromiter((e.end for e in events), dtype=np.int64, count=len(events))
    return events, starts, ends


def render_window(
    arr: Arrangement, b0: int, b1: int, *, kinds: frozenset[str] | None = None
) -> np.ndarray:
    """Synthesize frames [b0, b1) of the song as int16 (n, 2).

    ``kinds`` restricts the parts (for tests).
    """
    events, starts, ends = _flatten(arr)
    return _render_block(arr, events, starts, ends, b0, b1, kinds)


def _render_block(
    arr: Arrangement,
    events: list[Event],
    starts: np.ndarray,
    ends: np.ndarray,
    b0: int,
    b1: int,
    kinds: frozenset[str] | None,
) -> np.ndarray:
    n = b1 - b0
    left = np.zeros(n, dtype=np.float32)
    right = np.zeros(n, dtype=np.float32)
    female = arr.gender == "female"
    # Events are visited in one global order, so every sample sums the same terms in
    # the same order whatever the block size: the PCM is bit-identical.
    for j in np.flatnonzero((starts < b1) & (ends > b0)):
        ev = events[int(j)]
        if kinds is not None and ev.kind not in kinds:
            continue
        s0 = max(b0, ev.start)
        s1 = min(b1, ev.end)
        sig = _synth(ev, np.arange(s0 - ev.start, s1 - ev.start, dtype=np.int64), female)
        gl, gr = _pan_gains(ev.pan)
        sig *= np.float32(ev.velocity)
        left[s0 - b0 : s1 - b0] += np.float32(gl) * sig
        right[s0 - b0 : s1 - b0] += np.float32(gr) * sig
    return _master(left, right, b0, arr.total_frames)


def render(arr: Arrangement, *, block_frames: int = 48000) -> Iterator[np.ndarray]:
    """Synthesize incrementally: int16 blocks of shape (n, 2), n <= block_frames.

    The blocks sum to total_frames.

    Each block is synthesized only when the consumer asks for it.
    """
    if block_frames <= 0:
        raise ValueError("block_frames must be positive")
    events, starts, ends = _flatten(arr)
    for b0 in range(0, arr.total_frames, block_frames):
        b1 = min(b0 + block_frames, arr.total_frames)
        yield _render_block(arr, events, starts, ends, b0, b1, None)
