"""The MP3 preview a notebook keeps of a WAV song too big to embed.

A 200 s 48 kHz stereo WAV is 38 MB, 51 MB once base64-encoded into the ``.ipynb``. Above the
card's ``embed_limit`` the notebook gets an MP3 preview instead and links the full WAV on disk.

Bitrate: the highest standard MPEG-1 bitrate, up to 192 kbps, whose base64 fits
``PREVIEW_BUDGET`` (5.5 MB, so the whole card stays under 6 MB in the notebook). Base64 costs
4/3, so that is 4.1 MB of MP3: 160 kbps for a 200 s song (5.33 MB in the notebook), 128 kbps
up to 257 s, and lower only for longer songs, never under 32 kbps. A fixed 192 kbps would put
6.4 MB into the notebook for 200 s; a fixed 128 kbps wastes quality on short songs.

Encoding runs in pieces of about one second of audio: lameenc releases the GIL while it
encodes, and the short pieces bound the time any one call (and the numpy conversion around it)
can hold the kernel's main thread back while the worker thread builds the card.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass

import lameenc

from ._html import NOTE, escape, link_html
from ._i18n import _
from ._wav import wav_pcm

__all__ = ["PREVIEW_BUDGET", "Embedded", "embedded_audio", "mp3_preview", "preview_bitrate"]

PREVIEW_BUDGET = 5_500_000  # bytes of base64 in the notebook
_BITRATES = (192, 160, 128, 112, 96, 80, 64, 56, 48, 40, 32)  # kbps, MPEG-1 layer III
# LAME's "good" speed/quality point (2 is best, 7 fast): a preview is heard, so not the
# simulator's fastest setting; it stays well under real time (about 1.5 s for 200 s).
_QUALITY = 7


def preview_bitrate(seconds: float, budget: int = PREVIEW_BUDGET) -> int:
    """The highest bitrate (kbps) whose base64-encoded MP3 of ``seconds`` fits ``budget``."""
    for kbps in _BITRATES:
        mp3_bytes = kbps * 1000 / 8 * seconds
        if mp3_bytes * 4 / 3 <= budget:
            return kbps
    return _BITRATES[-1]


def mp3_preview(wav: bytes, *, budget: int = PREVIEW_BUDGET) -> tuple[bytes, int]:
    """An MP3 of ``wav`` (whole or cut short) and its bitrate in kbps.

    Raises ValueError when ``wav`` is not readable WAV audio.
    """
    frames, rate = wav_pcm(wav)
    channels = frames.shape[1]
    if channels > 2:
        frames = frames[:, :2]  # LAME encodes mono or stereo
        channels = 2
    kbps = preview_bitrate(len(frames) / rate if rate else 0.0, budget)
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(channels)
    encoder.set_quality(_QUALITY)
    out = bytearray()
    step = max(1, rate)  # one second of frames per call
    for start in range(0, len(frames), step):
        out += encoder.encode(frames[start : start + step].astype("<i2", copy=False).tobytes())
    out += encoder.flush()
    return bytes(out), kbps


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


@dataclass(frozen=True)
class Embedded:
    """The audio a card embeds, and the note that says what it is."""

    audio: bytes
    fmt: str
    note_html: str  # "" when the song itself is embedded


def _text(words: str) -> str:
    return html.escape(words, quote=False)


def embedded_audio(
    audio: bytes,
    fmt: str,
    *,
    embed_limit: int,
    saved_path: str | os.PathLike[str] | None,
    base_dir: str | os.PathLike[str] | None,
) -> Embedded:
    """What a card embeds for ``audio``: the song itself, or (a WAV over ``embed_limit``) its
    MP3 preview with a note linking the saved WAV. Exactly one of the two, never both."""
    if fmt != "wav" or len(audio) <= embed_limit:
        return Embedded(audio, fmt, "")
    try:
        preview, kbps = mp3_preview(audio)
    except ValueError:  # not readable WAV: embed it as it is rather than show nothing
        return Embedded(audio, fmt, "")
    what = _(
        "Preview: an MP3 at {kbps} kbps is embedded in the notebook instead of the {size} WAV "
        "(over the {limit} embed limit)."
    ).format(kbps=kbps, size=_megabytes(len(audio)), limit=_megabytes(embed_limit))
    if saved_path is not None:
        # The link is markup: the translated words around it are escaped (quotes left as they
        # are, as this HTML always had them), the link is not.
        where = _text(_(" The full WAV: ")) + link_html(saved_path, base_dir, "funmusic-wav-link")
    else:
        where = _text(_(" The full WAV is not saved: song.save('song.wav') writes it."))
    note = f'<div class="funmusic-preview-note" style="{NOTE}">{escape(what)}{where}</div>'
    return Embedded(preview, "mp3", note)
