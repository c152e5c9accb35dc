"""Arrangement for the offline Fun-Music simulator (its synthesis is ``_synth``).

``arrange`` turns lyrics (+ optional prompt) into a frozen, fully deterministic plan:
tempo, key, a chord progression per section, and a list of timed note/drum events
in absolute sample frames, which ``_synth.render`` turns into PCM.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass

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
]

SAMPLE_RATE = 48000
CHANNELS = 2
MIN_SECONDS = 30.0
MAX_SECONDS = 240.0

# The plan's order of parts within a frame, and its drums' lengths and pans; the noise table's
# length, since each drum hit picks its own offset into it (all shared with ``_synth``).
_KIND_ORDER = {
    k: i
    for i, k in enumerate(
        ("pad", "bass", "pluck", "kick", "snare", "hat", "ohat", "crash", "harmony", "lead")
    )
}
_DRUM_LENGTH = {"kick": 0.42, "snare": 0.3, "hat": 0.09, "ohat": 0.3, "crash": 2.0}
_DRUM_PAN = {"kick": 0.0, "snare": 0.05, "hat": 0.3, "ohat": -0.3, "crash": -0.4}
_NOISE_LEN = 1 << 17

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
