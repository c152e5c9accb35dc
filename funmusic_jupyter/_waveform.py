"""The song's shape: peaks from its audio, and a small picture of them for the card.

Peaks are the same for a song's WAV and its MP3, so the live player (which computes them in the
browser) and tests can compare against ``song_peaks``:

- the channels are mixed to mono (their mean), the mix is cut into blocks of ``BLOCK_FRAMES``
  frames and each block keeps its largest magnitude; ``bars`` bars then each take the largest
  of the blocks that fall in their share of the song;
- values are fractions of full scale (0 to 1), not normalised: a quiet song looks quiet in a
  comparison; the picture scales to its own loudest bar.

MP3 is decoded with ``miniaudio`` (see ``pyproject.toml`` for why), 1 s of audio per call, and
its C calls run without the GIL, so a kernel whose worker thread draws a 200 s song's waveform
keeps answering (``bench/card_size_and_stall.py`` measures it). An MP3 cut mid-frame decodes
up to its last whole frame.

The picture is a PNG in an ``<img>`` data URI, not inline SVG: JupyterLab's sanitizer (used for
the outputs of an untrusted notebook, e.g. one reopened elsewhere) drops ``<svg>`` but keeps
``<img src="data:...">``. It is a two-colour palette image of a few hundred bytes.
"""

from __future__ import annotations

import base64
import html
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ._wav import is_wav, wav_pcm

__all__ = ["BLOCK_FRAMES", "Shape", "analyse", "song_peaks", "waveform_html", "waveform_png"]

BLOCK_FRAMES = 1024
DEFAULT_BARS = 240
_FULL_SCALE = 32768.0
# Blocks handled per numpy step: about a second of 48 kHz audio, so no one step holds the GIL
# for long and no step needs more than a few hundred KB of temporary memory.
_BLOCKS_PER_STEP = 48
# A mid blue that reads on JupyterLab's light and dark themes alike (a PNG cannot use the
# theme's CSS variables), slightly translucent so it takes on a little of the background.
_COLOUR = (47, 128, 215, 230)
_HEIGHT = 40


@dataclass(frozen=True)
class Shape:
    """What one pass over the audio learns: the peaks, and how long the audio really is."""

    peaks: list[float]
    frames: int
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _wav_mono_steps(audio: bytes) -> tuple[Iterator[np.ndarray], int]:
    frames, rate = wav_pcm(audio)
    step = BLOCK_FRAMES * _BLOCKS_PER_STEP

    def steps() -> Iterator[np.ndarray]:
        for start in range(0, len(frames), step):
            yield frames[start : start + step].mean(axis=1, dtype=np.float32)

    return steps(), rate


def _mp3_mono_steps(audio: bytes) -> tuple[Iterator[np.ndarray], int]:
    import miniaudio  # type: ignore[import-untyped]

    # The first frame header tells the rate; decoding at 0 Hz keeps the file's own rate (no
    # resampling, which would smooth the peaks). nchannels=1: miniaudio mixes to the mean.
    rate = _mp3_sample_rate(audio)

    def steps() -> Iterator[np.ndarray]:
        try:
            chunks = miniaudio.stream_memory(
                audio,
                output_format=miniaudio.SampleFormat.SIGNED16,
                nchannels=1,
                sample_rate=0,
                frames_to_read=BLOCK_FRAMES * _BLOCKS_PER_STEP,
            )
            for chunk in chunks:
                yield np.frombuffer(chunk, dtype=np.int16).astype(np.float32)
        except miniaudio.DecodeError:
            return  # nothing decodable (a cut-off tag, no whole frame yet): no peaks

    return steps(), rate


_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_sample_rate(audio: bytes) -> int:
    """The sample rate in the first MPEG audio frame header (after any ID3v2 tag); 0 if none."""
    pos = 0
    if audio[:3] == b"ID3" and len(audio) >= 10:
        size = audio[6] << 21 | audio[7] << 14 | audio[8] << 7 | audio[9]
        pos = 10 + size
    end = min(len(audio) - 3, pos + 65536)
    while pos < end:
        if audio[pos] == 0xFF and audio[pos + 1] & 0xE0 == 0xE0:
            version, rate_index = (audio[pos + 1] >> 3) & 3, (audio[pos + 2] >> 2) & 3
            if version in _MP3_RATES and rate_index < 3:
                return _MP3_RATES[version][rate_index]
        pos += 1
    return 0


def analyse(audio: bytes, fmt: str, bars: int = DEFAULT_BARS) -> Shape:
    """Peaks (``bars`` of them) and the decoded length of ``audio`` ("mp3" or "wav").

    Audio that cannot be decoded gives zero frames and flat peaks rather than an error: a card
    must still show, and say what it can.
    """
    if bars < 1:
        raise ValueError(f"bars must be at least 1; got {bars!r}")
    try:
        if fmt == "wav" or is_wav(audio):
            steps, rate = _wav_mono_steps(audio)
        else:
            steps, rate = _mp3_mono_steps(audio)
        maxima: list[np.ndarray] = []
        frames = 0
        for mono in steps:
            frames += len(mono)
            whole = len(mono) - len(mono) % BLOCK_FRAMES
            if whole:
                blocks = np.abs(mono[:whole]).reshape(-1, BLOCK_FRAMES).max(axis=1)
                maxima.append(blocks)
            if whole < len(mono):  # a short last piece is a block of its own
                maxima.append(np.abs(mono[whole:]).max(keepdims=True))
    except ValueError:
        return Shape([0.0] * bars, 0, 0)
    if not maxima:
        return Shape([0.0] * bars, frames, rate)
    blocks = np.concatenate(maxima)
    starts = (np.arange(bars) * len(blocks)) // bars
    peaks = np.maximum.reduceat(blocks, starts) / _FULL_SCALE
    return Shape([round(float(p), 4) for p in np.clip(peaks, 0.0, 1.0)], frames, rate)


def song_peaks(audio: bytes, fmt: str, bars: int = DEFAULT_BARS) -> list[float]:
    """``bars`` peak magnitudes of ``audio`` (an "mp3" or "wav" file), each 0 to 1 of full
    scale, in time order; the same song as MP3 or as WAV gives nearly the same list."""
    return analyse(audio, fmt, bars).peaks


def _png(width: int, height: int, rows: list[bytes], colour: tuple[int, int, int, int]) -> bytes:
    """A 1-bit palette PNG: index 0 transparent, index 1 ``colour`` (RGBA)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 1, 3, 0, 0, 0)
    palette = bytes((0, 0, 0)) + bytes(colour[:3])
    alpha = bytes((0, colour[3]))
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"PLTE", palette)
        + chunk(b"tRNS", alpha)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def waveform_png(peaks: list[float], *, height: int = _HEIGHT) -> bytes:
    """The peaks as bars mirrored around the middle line, 2 px per bar (1 bar, 1 gap),
    scaled so the loudest bar fills the height; silence is a thin line."""
    width = max(2, 2 * len(peaks))
    loudest = max(peaks, default=0.0)
    scale = 1.0 / loudest if loudest > 0 else 0.0
    half = height / 2
    image = np.zeros((height, width), dtype=bool)
    for i, peak in enumerate(peaks):
        reach = max(0.5, peak * scale * half)
        top, bottom = int(round(half - reach)), int(round(half + reach))
        image[max(0, top) : max(top + 1, min(height, bottom)), 2 * i] = True
    rows = [np.packbits(row).tobytes() for row in image]
    return _png(width, height, rows, _COLOUR)


def waveform_html(peaks: list[float], *, label: str = "Waveform of the song") -> str:
    """An ``<img>`` of the peaks, full width, a data URI (no file, no network)."""
    data = base64.b64encode(waveform_png(peaks)).decode("ascii")
    alt = html.escape(label, quote=True)
    return (
        f'<img class="funmusic-waveform" alt="{alt}" src="data:image/png;base64,{data}"'
        f' style="display: block; width: 100%; height: {_HEIGHT}px; margin: 4px 0 2px;">'
    )
