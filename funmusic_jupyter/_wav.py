"""Reading WAV bytes as they arrive from the service, whole or cut short.

A streamed WAV starts with a header that announces the *whole* song's size. When the stream
stops early (a user's stop, a broken connection) the RIFF and ``data`` sizes promise bytes that
never came: some players refuse such a file, others stop at a wrong length. ``repair_wav``
rewrites those two sizes to what is really there; nothing else changes, so the file keeps its
length and every sample byte.

``wav_pcm`` gives the samples as a numpy array without copying them (16-bit PCM, the format
Fun-Music and the simulator send); other sample formats are converted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

__all__ = ["WavLayout", "is_wav", "repair_wav", "wav_layout", "wav_pcm"]

_FORMAT_PCM = 1
_FORMAT_FLOAT = 3
_FORMAT_EXTENSIBLE = 0xFFFE


@dataclass(frozen=True)
class WavLayout:
    """Where the samples are, and what the header claims versus what is there."""

    format_tag: int
    channels: int
    sample_rate: int
    bits: int
    data_offset: int  # where the sample bytes start
    data_size_claimed: int  # the ``data`` chunk's size field
    data_size: int  # whole frames actually present, in bytes

    @property
    def block_align(self) -> int:
        return max(1, self.channels * self.bits // 8)

    @property
    def frames(self) -> int:
        return self.data_size // self.block_align

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def is_wav(audio: bytes) -> bool:
    return audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"


def wav_layout(audio: bytes) -> WavLayout | None:
    """The layout of a RIFF/WAVE file, possibly cut short; None if it is not one or the
    header itself is incomplete (no ``fmt `` or no ``data`` chunk header yet)."""
    if not is_wav(audio):
        return None
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(audio):
        chunk_id = audio[pos : pos + 4]
        (size,) = struct.unpack_from("<I", audio, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt " and body + 16 <= len(audio):
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", audio, body)
            if tag == _FORMAT_EXTENSIBLE and size >= 40 and body + 26 <= len(audio):
                (tag,) = struct.unpack_from("<H", audio, body + 24)  # the sub-format GUID's head
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None or fmt[1] <= 0 or fmt[3] <= 0:
                return None
            tag, channels, rate, bits = fmt
            block = max(1, channels * bits // 8)
            present = min(size, len(audio) - body)
            return WavLayout(tag, channels, rate, bits, body, size, present - present % block)
        pos = body + size + (size % 2)  # chunks are word aligned
    return None


def repair_wav(audio: bytes) -> bytes:
    """``audio`` with its RIFF and ``data`` sizes set to what is really there.

    Returns ``audio`` itself when it is not a WAV, its header is incomplete, or the sizes are
    already right. Trailing bytes of a half frame are left in place (outside the data size).
    """
    layout = wav_layout(audio)
    if layout is None:
        return audio
    riff_size = len(audio) - 8
    (claimed_riff,) = struct.unpack_from("<I", audio, 4)
    if layout.data_size_claimed == layout.data_size and claimed_riff == riff_size:
        return audio
    fixed = bytearray(audio)
    struct.pack_into("<I", fixed, 4, riff_size)
    struct.pack_into("<I", fixed, layout.data_offset - 4, layout.data_size)
    return bytes(fixed)


def wav_pcm(audio: bytes) -> tuple[np.ndarray, int]:
    """The frames as an int16 array of shape (frames, channels), and the sample rate.

    16-bit PCM is a view of ``audio`` (no copy); 8/24/32-bit PCM and 32/64-bit float are
    converted. Raises ValueError for what is not a readable WAV.
    """
    layout = wav_layout(audio)
    if layout is None:
        raise ValueError(f"expected RIFF/WAVE audio with a data chunk; got {audio[:12]!r}")
    raw = memoryview(audio)[layout.data_offset : layout.data_offset + layout.data_size]
    tag, bits, channels = layout.format_tag, layout.bits, layout.channels
    samples: np.ndarray
    if tag == _FORMAT_PCM and bits == 16:
        samples = np.frombuffer(raw, dtype="<i2")
    elif tag == _FORMAT_PCM and bits == 8:  # unsigned
        samples = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8)
    elif tag == _FORMAT_PCM and bits in (24, 32):
        width = bits // 8
        bytes_ = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width)
        samples = bytes_[:, -2:].copy().view("<i2").reshape(-1)  # the two most significant
    elif tag == _FORMAT_FLOAT and bits in (32, 64):
        floats = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8")
        samples = (np.clip(floats, -1.0, 1.0) * 32767.0).astype(np.int16)
    else:
        raise ValueError(f"unsupported WAV sample format: tag {tag}, {bits} bits")
    return samples.reshape(-1, channels), layout.sample_rate
