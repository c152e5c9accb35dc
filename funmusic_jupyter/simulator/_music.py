"""Arrangement and synthesis for the offline Fun-Music simulator.

``arrange`` turns lyrics (+ optional prompt) into a frozen, fully deterministic plan:
tempo, key, a chord progression per section, and a list of timed note/drum events
in absolute sample frames. ``render`` synthesizes that plan block by block: each
block is an independent time window of the global timeline, and every event's
samples are computed from its own absolute start, so any block size yields the
same PCM and notes straddling a block boundary continue without clicks.

Tonal parts are wavetable oscillators (one period with the right harmonics, read
with linear interpolation), which keeps the cost per sample constant however many
harmonics a voice has: that is what makes >20x real time possible in numpy.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ._lyrics import parse_sections, syllables, vowel_of

__all__ = [
    "SAMPLE_RATE",
    "CHANNELS",
    "MIN_SECONDS",
    "MAX_SECONDS",
    "Event",
    "Section",
    "Arrangement",
    "arrange",
    "render",
]

SAMPLE_RATE = 48000
CHANNELS = 2
MIN_SECONDS = 30.0
MAX_SECONDS = 240.0

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)

# ------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Event:
    """One sounding thing on the global timeline (a sung syllable, a chord tone, a drum hit)."""

    kind: str  # lead | harmony | pad | bass | pluck | kick | snare | hat | ohat | crash
    start: int  # absolute sample frame of the onset
    gate: int  # frames the note is held before its release starts
    release: int  # frames of release tail after the gate
    midi: float  # pitch (fractional for detuned pad voices); 0 for drums
    velocity: float  # linear gain before the master stage
    pan: float  # -1 (left) .. +1 (right)
    vowel: str = ""  # lead/harmony: vowel colour of the syllable
    syllable: str = ""  # lead/harmony: the syllable text sung on this note
    variant: int = 0  # drums: offset into the noise table; voices: 1 = consonant onset

    @property
    def end(self) -> int:
        return self.start + self.gate + self.release


@dataclass(frozen=True)
class Section:
    """A structural section: its frame span, the lines sung in it and all of its events."""

    tag: str  # intro | verse | chorus | bridge | outro
    start_frame: int
    end_frame: int
    bars: int
    lines: tuple[str, ...]
    chords: tuple[int, ...]  # scale degree (0 = tonic) of the chord in each bar
    events: tuple[Event, ...]

    @property
    def notes(self) -> tuple[Event, ...]:
        """The lead voice's notes, one per sung syllable, in time order."""
        return tuple(e for e in self.events if e.kind == "lead")


@dataclass(frozen=True)
class Arrangement:
    sample_rate: int
    channels: int
    tempo_bpm: float
    key_root_midi: int  # tonic of the female melody register (male sings it an octave lower)
    minor: bool
    gender: str  # "male" | "female"
    sections: tuple[Section, ...]
    total_frames: int

    @property
    def duration(self) -> float:
        return self.total_frames / self.sample_rate

    @property
    def lead_notes(self) -> tuple[Event, ...]:
        return tuple(n for s in self.sections for n in s.notes)


# --------------------------------------------------------------------------- mood

_FAST_WORDS = frozenset(
    "upbeat dance dancing dancer energy energetic workout workouts fitness party parties happy "
    "happiness summer joy joyful cheerful groove groovy celebrate celebration festival uplifting "
    "gym club disco edm fun exciting excited hype bounce bouncy sunny".split()
)
_SLOW_WORDS = frozenset(
    "melancholic melancholy melancholia sad sadness rain rainy raining rainfall night nights "
    "midnight lonely loneliness alone sorrow sorrowful tears tear heartbreak heartbroken grief "
    "cry crying ballad missing goodbye farewell autumn gloomy gloom nostalgia nostalgic lament "
    "slow blue blues somber sombre".split()
)
_FAST_ZH = (
    "欢快", "动感", "活力", "快乐", "热情", "夏日", "夏天", "派对",
    "跳舞", "舞曲", "运动", "健身", "开心", "激情", "欢乐",
)  # fmt: skip
_SLOW_ZH = (
    "忧伤", "悲伤", "伤感", "雨", "夜", "孤独", "寂寞",
    "思念", "眼泪", "离别", "哀", "失恋", "想念", "秋",
)  # fmt: skip


def _mood(text: str) -> str:
    """'fast', 'slow' or 'mid' from mood words (English by whole word, Chinese by substring)."""
    words = re.findall(r"[a-z]+", text.lower())
    fast = sum(w in _FAST_WORDS for w in words) + sum(text.count(w) for w in _FAST_ZH)
    slow = sum(w in _SLOW_WORDS for w in words) + sum(text.count(w) for w in _SLOW_ZH)
    if fast > slow:
        return "fast"
    if slow > fast:
        return "slow"
    return "mid"


# ------------------------------------------------------------------ section styles

# Per-section mix recipe. The chorus gets every layer, louder drums, the widest stereo
# and a higher melody so it reads as a chorus; intro/outro are soft and sparse.
_STYLE: dict[str, dict[str, float | str | bool]] = {
    "intro": {
        "pad": 0.40, "width": 0.45, "bass": "whole", "arp": 0.22, "drums": "intro",
        "lead": 0.55, "harmony": False, "low": -1, "span": 4,
    },
    "verse": {
        "pad": 0.42, "width": 0.30, "bass": "verse", "arp": 0.0, "drums": "verse",
        "lead": 0.80, "harmony": False, "low": -1, "span": 5,
    },
    "chorus": {
        "pad": 0.55, "width": 0.95, "bass": "chorus", "arp": 0.34, "drums": "chorus",
        "lead": 0.95, "harmony": True, "low": 2, "span": 5,
    },
    "bridge": {
        "pad": 0.48, "width": 0.60, "bass": "whole", "arp": 0.24, "drums": "bridge",
        "lead": 0.80, "harmony": False, "low": 1, "span": 4,
    },
    "outro": {
        "pad": 0.40, "width": 0.50, "bass": "whole", "arp": 0.0, "drums": "outro",
        "lead": 0.55, "harmony": False, "low": -1, "span": 4,
    },
}

# Chord progressions as scale degrees, one chord per bar, chosen once per song so a
# repeated chorus keeps its harmony.
_PROGRESSIONS: dict[tuple[bool, str], tuple[tuple[int, ...], ...]] = {
    (False, "verse"): ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4)),
    (False, "chorus"): ((3, 4, 0, 5), (0, 4, 5, 3), (3, 0, 4, 4)),
    (False, "bridge"): ((5, 3, 0, 4), (1, 4, 0, 5)),
    (True, "verse"): ((0, 5, 2, 6), (0, 3, 5, 4), (0, 6, 5, 6)),
    (True, "chorus"): ((5, 6, 0, 0), (5, 2, 6, 0), (3, 4, 0, 0)),
    (True, "bridge"): ((3, 0, 5, 6), (5, 6, 2, 4)),
}

# Drum patterns: (kind, beat offset within the bar, velocity).
_DRUMS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "intro": tuple(("hat", b * 0.5, 0.16 + 0.06 * (b % 2 == 0)) for b in range(8))
    + (("kick", 0.0, 0.45),),
    "verse": (
        ("kick", 0.0, 0.75),
        ("kick", 2.0, 0.7),
        ("kick", 2.5, 0.45),
        ("snare", 1.0, 0.45),
        ("snare", 3.0, 0.45),
    )
    + tuple(("hat", b * 0.5, 0.20 + 0.08 * (b % 2 == 0)) for b in range(8)),
    "chorus": (
        ("kick", 0.0, 1.0),
        ("kick", 1.0, 0.9),
        ("kick", 2.0, 1.0),
        ("kick", 3.0, 0.9),
        ("snare", 1.0, 0.85),
        ("snare", 3.0, 0.85),
    )
    + tuple(("hat", b * 1.0, 0.34) for b in range(4))
    + tuple(("ohat", b + 0.5, 0.24) for b in range(4)),
    "bridge": (("kick", 0.0, 0.6), ("snare", 3.0, 0.35))
    + tuple(("hat", float(b), 0.2) for b in range(4)),
    "outro": (("kick", 0.0, 0.45),) + tuple(("hat", float(b), 0.15) for b in range(4)),
}
# Bass patterns: (beat offset, length in beats, interval above the chord root in semitones).
_BASS: dict[str, tuple[tuple[float, float, int], ...]] = {
    "whole": ((0.0, 3.8, 0),),
    "verse": ((0.0, 1.4, 0), (1.5, 0.45, 0), (2.0, 1.4, 0), (3.5, 0.45, 7)),
    "chorus": tuple((b * 0.5, 0.42, 12 if b % 2 else 0) for b in range(8)),
}
_ARP_ORDER = (0, 1, 2, 3, 2, 1, 0, 1)  # chord-tone indices for eight 8ths (3 = root an octave up)


# Lead range in scale steps above the tonic: with the tonic in A3..G#4 this keeps a
# female lead within A3..G#5 and a male lead (an octave down) within A2..G#4.
_LEAD_LOWEST, _LEAD_HIGHEST = 0, 7


def _scale_midi(index: int, tonic: int, scale: tuple[int, ...]) -> int:
    return tonic + 12 * (index // 7) + scale[index % 7]


def _fold(midi: int, low: int) -> int:
    """Move a pitch by octaves into [low, low + 12)."""
    return low + (midi - low) % 12


def _line_rhythm(n: int, rng: random.Random) -> tuple[int, list[float], list[float]]:
    """Bars, onsets and lengths (in beats) for a line of ``n`` syllables.

    Eighth notes (sixteenths for very wordy lines), some stretched to quarters for a
    lilt, the last syllable held >= 1.5 beats, and at least half a beat of rest
    before the next line. Lines take an even number of bars so they sit on the
    chord progression's phrase grid.
    """
    unit = 0.5 if n <= 24 else 0.25
    final_min, gap_min = 1.5, 0.5
    need = (n - 1) * unit + final_min + gap_min
    bars = max(2, math.ceil(need / 4))
    bars += bars % 2
    slack = bars * 4 - need
    lengths = [unit] * (n - 1)
    order = list(range(n - 1))
    rng.shuffle(order)
    for i in order:  # stretch random syllables while there is room
        if slack < unit or sum(1 for x in lengths if x > unit) * 2 >= n:
            break
        lengths[i] += unit
        slack -= unit
    final = min(3.0, final_min + slack)
    slack -= final - final_min
    # Leftover room becomes a rest before the line (a late entry), rounded to the grid.
    lead_in = math.floor(slack / 2 / unit) * unit if slack >= 2.0 else 0.0
    lengths.append(final)
    onsets: list[float] = []
    t = lead_in
    for length in lengths:
        onsets.append(t)
        t += length
    return bars, onsets, lengths


def _contour(kind: int, p: float) -> float:
    if kind == 0:
        return p  # rising
    if kind == 1:
        return 1.0 - p  # falling
    if kind == 2:
        return math.sin(math.pi * p)  # arch
    return 1.0 - math.sin(math.pi * p)  # valley


def _nearest_chord_tone(
    target: int, degree: int, lo: int = _LEAD_LOWEST, hi: int = _LEAD_HIGHEST
) -> int:
    """Nearest scale step to ``target`` within [lo, hi] that belongs to the chord on ``degree``."""
    tones = {degree % 7, (degree + 2) % 7, (degree + 4) % 7}
    for dist in range(0, hi - lo + 1):
        for cand in (target - dist, target + dist):
            if lo <= cand <= hi and cand % 7 in tones:
                return cand
    return target


@dataclass
class _Builder:
    """Mutable scratch state while planning (the result is frozen into Sections)."""

    rng: random.Random
    spb: float  # sample frames per beat (fractional: onsets are rounded per event)
    tonic: int  # female melody tonic
    scale: tuple[int, ...]
    octave_shift: int  # -12 for male voices

    def frame(self, beat: float) -> int:
        return int(round(beat * self.spb))

    def noise_offset(self) -> int:
        return self.rng.randrange(_NOISE_LEN)


# A sung line laid out on the beat grid: (text, syllables, bars, onsets, lengths in beats).
_LaidLine = tuple[str, list[str], int, list[float], list[float]]


def _section_events(
    b: _Builder,
    tag: str,
    start_beat: float,
    bars: int,
    chords: tuple[int, ...],
    lines: list[_LaidLine],
    final: bool,
) -> list[Event]:
    style = _STYLE[tag]
    events: list[Event] = []
    rel_pad = int(0.45 * SAMPLE_RATE)
    width = float(style["width"])
    for bar in range(bars):
        bar_beat = start_beat + bar * 4
        degree = chords[bar % len(chords)]
        tones = [_scale_midi(degree + k, b.tonic, b.scale) for k in (0, 2, 4)]
        pad_notes = sorted(_fold(t, 52) for t in tones)
        last_bar = final and bar == bars - 1
        gate = b.frame(bar_beat + 4) - b.frame(bar_beat)
        # Pad: each chord tone twice, detuned a few cents and spread left/right; the
        # spread is the section's stereo width.
        for i, m in enumerate(pad_notes):
            for side in (-1.0, 1.0):
                events.append(
                    Event(
                        "pad",
                        b.frame(bar_beat),
                        gate,
                        rel_pad,
                        m + side * 0.07,
                        float(style["pad"]) * 0.38,
                        side * width * (0.6 + 0.2 * i),
                    )
                )
        # Bass on the chord root.
        root = _fold(tones[0], 34)
        for off, length, interval in _BASS[str(style["bass"])]:
            if last_bar and off > 0:
                break
            s = b.frame(bar_beat + off)
            g = b.frame(bar_beat + off + length) - s
            events.append(
                Event("bass", s, g, int(0.06 * SAMPLE_RATE), float(root + interval), 0.55, 0.0)
            )
        # Arpeggio (plucked chord tones in 8ths) for the fuller sections.
        arp = float(style["arp"])
        if arp > 0 and not last_bar:
            arp_tones = [_fold(t, 60) for t in tones]
            arp_tones.sort()
            arp_tones.append(arp_tones[0] + 12)
            for step, which in enumerate(_ARP_ORDER):
                s = b.frame(bar_beat + step * 0.5)
                g = b.frame(bar_beat + step * 0.5 + 0.5) - s
                events.append(
                    Event(
                        "pluck",
                        s,
                        g,
                        int(0.25 * SAMPLE_RATE),
                        float(arp_tones[which]),
                        arp * (1.0 if step % 2 == 0 else 0.8),
                        0.55 * width * (1 if step % 2 else -1),
                    )
                )
        # Drums: the outro's last bar rings out without them; a chorus opens on a crash.
        if not last_bar:
            for kind, off, vel in _DRUMS[str(style["drums"])]:
                length = _DRUM_LENGTH[kind]
                events.append(
                    Event(
                        kind,
                        b.frame(bar_beat + off),
                        int(length * SAMPLE_RATE),
                        0,
                        0.0,
                        vel,
                        _DRUM_PAN[kind],
                        variant=b.noise_offset(),
                    )
                )
            if tag == "chorus" and bar == 0:
                events.append(
                    Event(
                        "crash",
                        b.frame(bar_beat),
                        int(_DRUM_LENGTH["crash"] * SAMPLE_RATE),
                        0,
                        0.0,
                        0.3,
                        -0.4,
                        variant=b.noise_offset(),
                    )
                )

    # Lead voice: one note per syllable, pitches following a per-line contour,
    # snapped to the chord on beats, the last syllable of the line on a chord tone.
    low = int(style["low"])
    span = int(style["span"])
    lead_vel = float(style["lead"])
    line_beat = start_beat
    prev_index: int | None = None
    for line_no, (_text, sylls, line_bars, onsets, lengths) in enumerate(lines):
        contour = b.rng.randrange(4)
        n = len(sylls)
        last_line = line_no == len(lines) - 1
        for i, (syl, onset, length) in enumerate(zip(sylls, onsets, lengths, strict=True)):
            beat = line_beat + onset
            bar = int((beat - start_beat) // 4)
            degree = chords[bar % len(chords)]
            p = i / (n - 1) if n > 1 else 0.5
            index = low + int(round(_contour(contour, p) * span)) + b.rng.choice((-1, 0, 0, 0, 1))
            if prev_index is not None:  # keep leaps singable
                index = max(prev_index - 4, min(prev_index + 4, index))
            index = max(_LEAD_LOWEST, min(_LEAD_HIGHEST, index))
            on_beat = abs(onset - round(onset)) < 1e-9
            if i == n - 1:
                index = _nearest_chord_tone(index, 0 if last_line else degree)
            elif on_beat:
                index = _nearest_chord_tone(index, degree)
            prev_index = index
            midi = _scale_midi(index, b.tonic, b.scale) + b.octave_shift
            s = b.frame(beat)
            g = b.frame(beat + length) - s
            head = syl[:1]
            consonant = 1 if head.lower() in "bcdfghjklmnpqrstvwxz" and head.isascii() else 0
            events.append(
                Event(
                    "lead",
                    s,
                    g,
                    int(0.09 * SAMPLE_RATE),
                    float(midi),
                    lead_vel,
                    0.0,
                    vowel_of(syl),
                    syl,
                    consonant,
                )
            )
            if style["harmony"]:
                h_midi = _scale_midi(index - 2, b.tonic, b.scale) + b.octave_shift
                events.append(
                    Event(
                        "harmony",
                        s,
                        g,
                        int(0.09 * SAMPLE_RATE),
                        float(h_midi),
                        lead_vel * 0.32,
                        -0.35 if i % 2 else 0.35,
                        vowel_of(syl),
                        syl,
                        0,
                    )
                )
        line_beat += line_bars * 4
    return events


def arrange(
    *, lyrics: str, gender: str, prompt: str | None = None, instrumental: bool = False
) -> Arrangement:
    """Deterministic plan from the inputs (randomness only from a hash of the inputs).

    ``instrumental``: the same song without its lead voice and harmony (``is_instrumental``).
    An empty ``gender`` (``fun-music-preview`` takes none) sings with the default voice.
    """
    gender = gender.strip().lower() or "female"
    if gender not in ("male", "female"):
        raise ValueError(f"gender must be 'male' or 'female', got {gender!r}")
    # Gender is deliberately not part of the seed: male and female versions of a
    # song share key, tempo and melody, the male lead just sits an octave lower.
    digest = hashlib.sha256(f"funmusic-sim\x00{lyrics}\x00{prompt or ''}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    mood = _mood(prompt if prompt and prompt.strip() else lyrics)
    if mood == "fast":
        tempo = float(rng.randint(124, 132))
    elif mood == "slow":
        tempo = float(rng.randint(70, 80))
    else:
        tempo = float(rng.randint(96, 108))
    minor = mood == "slow"
    scale = _MINOR if minor else _MAJOR
    tonic = 57 + (digest[8] % 12)  # female melody tonic in A3..G#4
    b = _Builder(rng, SAMPLE_RATE * 60.0 / tempo, tonic, scale, -12 if gender == "male" else 0)
    progressions = {
        key: rng.choice(options) for key, options in _PROGRESSIONS.items() if key[0] == minor
    }

    # Body sections with their laid-out lines; leading/trailing instrumental
    # intro/outro tags merge into the automatic instrumental intro/outro.
    parsed = parse_sections(lyrics)
    if parsed and parsed[0] == ("intro", []):
        parsed = parsed[1:]
    if parsed and parsed[-1] == ("outro", []):
        parsed = parsed[:-1]
    max_beats = int(MAX_SECONDS * tempo / 60.0)
    intro_bars, outro_bars = 2, 2
    budget = max_beats - 4 * (intro_bars + outro_bars)
    body: list[tuple[str, int, list[_LaidLine]]] = []
    used = 0
    full = False
    for tag, lines in parsed:
        laid: list[_LaidLine] = []
        for line in lines:
            sylls = syllables(line)
            if not sylls:
                continue  # a line of digits/punctuation has nothing to sing
            bars, onsets, lengths = _line_rhythm(len(sylls), rng)
            if used + 4 * bars > budget:
                full = True  # too long: drop this and every later line
                break
            used += 4 * bars
            laid.append((line, sylls, bars, onsets, lengths))
        if laid:
            body.append((tag, sum(x[2] for x in laid), laid))
        elif not lines and not full:
            bars = 2 if tag in ("intro", "outro") else 4
            if used + 4 * bars <= budget:
                used += 4 * bars
                body.append((tag, bars, []))
        if full:
            break

    # Too short: pad with instrumental bars, alternately at the end and the start.
    seconds_per_bar = 4 * 60.0 / tempo
    while (intro_bars + outro_bars + used / 4) * seconds_per_bar < MIN_SECONDS:
        if outro_bars <= intro_bars:
            outro_bars += 1
        else:
            intro_bars += 1

    plan: list[tuple[str, int, list[_LaidLine]]] = (
        [("intro", intro_bars, [])] + body + [("outro", outro_bars, [])]
    )
    sections: list[Section] = []
    beat = 0.0
    for i, (tag, bars, laid) in enumerate(plan):
        prog = progressions[(minor, "verse" if tag in ("intro", "outro") else tag)]
        chords = tuple(prog[j % len(prog)] for j in range(bars))
        if tag == "outro" and i == len(plan) - 1:
            chords = chords[:-1] + (0,)  # the song lands on the tonic
        events = _section_events(b, tag, beat, bars, chords, laid, final=i == len(plan) - 1)
        if instrumental:
            # Laid out as if sung (same form, chords and length), then the voices dropped.
            events = [e for e in events if e.kind not in ("lead", "harmony")]
        events.sort(key=lambda e: (e.start, _KIND_ORDER[e.kind]))
        sections.append(
            Section(
                tag,
                b.frame(beat),
                b.frame(beat + 4 * bars),
                bars,
                tuple(x[0] for x in laid),
                chords,
                tuple(events),
            )
        )
        beat += 4 * bars
    total = min(b.frame(beat), int(MAX_SECONDS * SAMPLE_RATE))
    return Arrangement(SAMPLE_RATE, CHANNELS, tempo, tonic, minor, gender, tuple(sections), total)


# --------------------------------------------------------------------- synthesis

_KIND_ORDER = {
    k: i
    for i, k in enumerate(
        ("pad", "bass", "pluck", "kick", "snare", "hat", "ohat", "crash", "harmony", "lead")
    )
}
_DRUM_LENGTH = {"kick": 0.42, "snare": 0.3, "hat": 0.09, "ohat": 0.3, "crash": 2.0}
_DRUM_PAN = {"kick": 0.0, "snare": 0.05, "hat": 0.3, "ohat": -0.3, "crash": -0.4}
_TABLE_SIZE = 2048
_NOISE_LEN = 1 << 17
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
