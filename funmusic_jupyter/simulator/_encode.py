"""Incremental MP3/WAV encoding of a simulated song.

Audio is encoded while it is synthesized: each yielded chunk carries about
``chunk_seconds`` of sound, so a caller can stream or save the song without ever
holding the whole PCM in memory. Every file is marked as simulated (an ID3v2.3 tag
on the MP3, a LIST/INFO chunk in the WAV) so it is never mistaken for real
fun-music-v1 output.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import lameenc

from ._music import Arrangement
from ._synth import render

__all__ = ["TITLE", "COMMENT", "SOFTWARE", "encode", "encode_all", "id3_tag", "wav_header"]

TITLE = "funmusic-jupyter simulated song"
COMMENT = "SIMULATED by funmusic-jupyter, not fun-music-v1"
SOFTWARE = "funmusic-jupyter simulator"

_MP3_BITRATE_KBPS = 128
# LAME quality 7 is its fast setting: this is a simulator, and the benchmark needs
# encoding to stay a small fraction of the time budget.
_MP3_QUALITY = 7


def _id3_frame(frame_id: str, payload: bytes) -> bytes:
    # ID3v2.3 frame sizes are plain big-endian (only the tag header is syncsafe).
    return frame_id.encode("ascii") + struct.pack(">I", len(payload)) + b"\x00\x00" + payload


def id3_tag() -> bytes:
    """A small ID3v2.3 tag: title, comment and a TXXX frame saying the song is simulated."""
    latin1 = 0  # text encoding byte: ISO-8859-1 (all our strings are ASCII)
    frames = (
        _id3_frame("TIT2", bytes([latin1]) + TITLE.encode("latin-1"))
        + _id3_frame("COMM", bytes([latin1]) + b"eng" + b"\x00" + COMMENT.encode("latin-1"))
        + _id3_frame("TXXX", bytes([latin1]) + b"SIMULATED\x00" + COMMENT.encode("latin-1"))
        + _id3_frame("TSSE", bytes([latin1]) + SOFTWARE.encode("latin-1"))
    )
    size = len(frames)
    syncsafe = bytes(((size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F))
    return b"ID3" + b"\x03\x00" + b"\x00" + syncsafe + frames


def _info_subchunk(chunk_id: bytes, text: str) -> bytes:
    data = text.encode("ascii") + b"\x00"
    body = chunk_id + struct.pack("<I", len(data)) + data
    return body + (b"\x00" if len(data) % 2 else b"")  # RIFF chunks are word aligned


def wav_header(total_frames: int, sample_rate: int = 48000, channels: int = 2) -> bytes:
    """RIFF/WAVE header (fmt + LIST/INFO + data chunk header) with exact sizes for 16-bit PCM."""
    block_align = channels * 2
    data_size = total_frames * block_align
    fmt = b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block_align, block_align, 16
    )
    info = (
        b"INFO"
        + _info_subchunk(b"INAM", TITLE)
        + _info_subchunk(b"ICMT", COMMENT)
        + _info_subchunk(b"ISFT", SOFTWARE)
    )
    list_chunk = b"LIST" + struct.pack("<I", len(info)) + info
    data_hdr = b"data" + struct.pack("<I", data_size)
    # RIFF size counts everything after its own 8-byte header, PCM included.
    riff_size = 4 + len(fmt) + len(list_chunk) + len(data_hdr) + data_size + (data_size % 2)
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + fmt + list_chunk + data_hdr


def encode(arr: Arrangement, fmt: str, *, chunk_seconds: float = 1.0) -> Iterator[bytes]:
    """Encode while synthesizing; ``b''.join(...)`` is a complete file ('mp3' or 'wav').

    Each chunk holds about ``chunk_seconds`` of audio; the first also carries the
    header/tag, the last MP3 chunk the encoder flush. Same inputs -> same bytes.
    """
    fmt = fmt.lower()
    if fmt not in ("mp3", "wav"):
        raise ValueError(f"unsupported format {fmt!r}: expected 'mp3' or 'wav'")
    if chunk_seconds <= 0:
        raise ValueError("chunk_seconds must be positive")
    block = max(1, int(round(chunk_seconds * arr.sample_rate)))
    if fmt == "wav":
        yield from _encode_wav(arr, block)
    else:
        yield from _encode_mp3(arr, block)


def _encode_wav(arr: Arrangement, block: int) -> Iterator[bytes]:
    head = wav_header(arr.total_frames, arr.sample_rate, arr.channels)
    for pcm in render(arr, block_frames=block):
        # int16 little-endian interleaved is exactly the WAV data layout on LE hosts;
        # astype('<i2') keeps it right on big-endian ones too.
        yield head + pcm.astype("<i2", copy=False).tobytes()
        head = b""
    if head:  # zero-length song: still a valid (empty) file
        yield head


def _encode_mp3(arr: Arrangement, block: int) -> Iterator[bytes]:
    enc = lameenc.Encoder()
    enc.set_bit_rate(_MP3_BITRATE_KBPS)
    enc.set_in_sample_rate(arr.sample_rate)
    enc.set_channels(arr.channels)
    enc.set_quality(_MP3_QUALITY)
    head = id3_tag()
    n_blocks = -(-arr.total_frames // block)
    # Known block count (no look-ahead render): the flush rides on the last block.
    for i, pcm in enumerate(render(arr, block_frames=block)):
        out = bytes(enc.encode(pcm.tobytes()))
        if i == n_blocks - 1:
            out += bytes(enc.flush())
        yield head + out
        head = b""
    if head:  # zero-length song: tag plus an empty stream
        yield head + bytes(enc.flush())


def encode_all(arr: Arrangement, fmt: str) -> bytes:
    """The whole file at once: ``b''.join(encode(arr, fmt))``."""
    return b"".join(encode(arr, fmt))
