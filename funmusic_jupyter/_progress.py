"""How many seconds of audio have arrived so far, worked out from the bytes as they stream in.

The service sends an MP3 or WAV file cut into arbitrary pieces. ``AudioProgress.feed(chunk)``
reads only what is new in each piece (O(new bytes)), never the whole file again:

- MP3: an optional ID3v2 tag is skipped, then each MPEG audio frame header gives the frame's
  length and its number of samples (1152 for MPEG-1 Layer III), so the parser jumps from header
  to header. A header split across two pieces is carried over (at most a few bytes). A leading
  Xing/Info frame holds no audio and is not counted.
- WAV: the RIFF header gives the byte rate; every byte after the start of the ``data`` chunk is
  audio.

The format is recognised from the first bytes, so a mislabelled file is still measured.
"""

from __future__ import annotations

__all__ = ["AudioProgress"]

# Bitrates in kbit/s, indexed by the header's 4-bit bitrate index (0 = free format, unsupported).
_BITRATES = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# Header version bits -> sample rates; 0 is MPEG-2.5, 2 is MPEG-2, 3 is MPEG-1 (1 is reserved).
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}

_ID3_HEADER = 10
_MAX_WAV_HEADER = 1 << 16  # a WAV whose data chunk starts later than this is not measured


def _frame_info(b0: int, b1: int, b2: int, b3: int) -> tuple[int, int, int, int, int] | None:
    """(frame length, samples, sample rate, channels, side-info size) of a valid header, or None."""
    if b0 != 0xFF or (b1 & 0xE0) != 0xE0:
        return None
    version = (b1 >> 3) & 3
    layer = 4 - ((b1 >> 1) & 3)  # header bits 01 = Layer III, 10 = II, 11 = I
    bitrate_index = b2 >> 4
    rate_index = (b2 >> 2) & 3
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = _BITRATES[(1 if mpeg1 else 2, layer)][bitrate_index] * 1000
    sample_rate = _SAMPLE_RATES[version][rate_index]
    padding = (b2 >> 1) & 1
    channels = 1 if (b3 >> 6) == 3 else 2
    if layer == 1:
        length = (12 * bitrate // sample_rate + padding) * 4
        samples = 384
    elif layer == 2:
        length = 144 * bitrate // sample_rate + padding
        samples = 1152
    elif mpeg1:
        length = 144 * bitrate // sample_rate + padding
        samples = 1152
    else:
        length = 72 * bitrate // sample_rate + padding
        samples = 576
    if mpeg1:
        side_info = 17 if channels == 1 else 32
    else:
        side_info = 9 if channels == 1 else 17
    return length, samples, sample_rate, channels, side_info


class AudioProgress:
    """Incremental estimate of the seconds of audio contained in the bytes fed so far."""

    def __init__(self) -> None:
        self.kind: str | None = None  # "mp3", "wav", or "unknown" once recognised
        self.seconds: float | None = None
        self.sample_rate: int | None = None
        self.channels: int | None = None
        self._total = 0  # bytes fed so far
        # Bytes not yet understood, kept from the end of earlier pieces: a header split across
        # pieces. ``_carry`` starts at absolute offset ``_carry_at``.
        self._carry = b""
        self._carry_at = 0
        # MP3
        self._next = 0  # absolute offset of the next frame header
        self._first_frame = True
        # WAV
        self._header = bytearray()
        self._data_start: int | None = None
        self._byte_rate = 0

    def feed(self, data: bytes) -> float | None:
        """Account for ``data`` (the next bytes of the file); return the seconds so far or None."""
        if not data:
            return self.seconds
        start = self._total
        self._total += len(data)
        if self.kind is None:
            self._recognise(data)
        if self.kind == "mp3":
            self._feed_mp3(data, start)
        elif self.kind == "wav":
            self._feed_wav(data)
        return self.seconds

    # -- recognition ------------------------------------------------------------------------

    def _recognise(self, data: bytes) -> None:
        head = bytes(self._header) + data[:4] if self._header else data[:4]
        if len(head) < 4:
            self._header += data  # too short to tell yet (at most 3 bytes)
            return
        if head.startswith(b"RIFF"):
            self.kind = "wav"
            # _feed_wav appends ``data`` itself: keep only what came before it.
        elif head.startswith(b"ID3") or (head[0] == 0xFF and (head[1] & 0xE0) == 0xE0):
            self.kind = "mp3"
            self._carry, self._carry_at = bytes(self._header), 0
            self._header = bytearray()
        else:
            self.kind = "unknown"
            self._header = bytearray()

    # -- MP3 --------------------------------------------------------------------------------

    def _feed_mp3(self, data: bytes, start: int) -> None:
        total = self._total
        carry, carry_at = self._carry, self._carry_at

        def window(at: int, size: int) -> bytes:
            # ``size`` bytes from absolute offset ``at``, from the carried bytes and ``data``.
            if at >= start:
                return data[at - start : at - start + size]
            head = carry[at - carry_at : at - carry_at + size]
            return head + data[: size - len(head)]

        pos = self._next
        if pos == 0 and total >= 3 and window(0, 3) == b"ID3":
            if total < _ID3_HEADER:
                self._keep(pos, carry, carry_at, data, start)
                return
            tag = window(0, _ID3_HEADER)
            size = (tag[6] << 21) | (tag[7] << 14) | (tag[8] << 7) | tag[9]
            pos = _ID3_HEADER + size + (_ID3_HEADER if tag[5] & 0x10 else 0)

        while pos + 4 <= total:
            if pos >= start:
                i = pos - start
                info = _frame_info(data[i], data[i + 1], data[i + 2], data[i + 3])
            else:
                h = window(pos, 4)
                info = _frame_info(h[0], h[1], h[2], h[3])
            if info is None:
                # Lost sync (junk, a damaged frame): look for the next 0xFF inside this piece.
                nxt = data.find(b"\xff", max(pos + 1, start) - start)
                pos = total if nxt < 0 else start + nxt
                continue
            length, samples, rate, channels, side_info = info
            if self._first_frame:
                tag_at = pos + 4 + side_info
                if tag_at + 4 > total:
                    break  # wait for the bytes that tell whether this is a Xing/Info frame
                self._first_frame = False
                self.sample_rate, self.channels = rate, channels
                if window(tag_at, 4) in (b"Xing", b"Info"):
                    pos += length
                    continue
            self.seconds = (self.seconds or 0.0) + samples / rate
            pos += length
        self._next = pos
        self._keep(pos, carry, carry_at, data, start)

    def _keep(self, pos: int, carry: bytes, carry_at: int, data: bytes, start: int) -> None:
        # Carry the bytes from ``pos`` to the end (a partial header: a few bytes at most).
        if pos >= self._total:
            self._carry, self._carry_at = b"", self._total
        elif pos >= start:
            self._carry, self._carry_at = data[pos - start :], pos
        else:
            self._carry, self._carry_at = carry[pos - carry_at :] + data, pos

    # -- WAV --------------------------------------------------------------------------------

    def _feed_wav(self, data: bytes) -> None:
        if self._data_start is None:
            self._header += data[:_MAX_WAV_HEADER]
            self._parse_wav_header()
            if self._data_start is None:
                if len(self._header) >= _MAX_WAV_HEADER:
                    self.kind = "unknown"
                    self._header = bytearray()
                return
            self._header = bytearray()
        if self._byte_rate:
            self.seconds = max(0, self._total - self._data_start) / self._byte_rate

    def _parse_wav_header(self) -> None:
        h = self._header
        if len(h) < 12:
            return
        if h[8:12] != b"WAVE":
            self.kind = "unknown"
            return
        at = 12
        while at + 8 <= len(h):
            chunk_id = bytes(h[at : at + 4])
            size = int.from_bytes(h[at + 4 : at + 8], "little")
            body = at + 8
            if chunk_id == b"data":
                self._data_start = body
                return
            if chunk_id == b"fmt ":
                if body + 16 > len(h):
                    return
                self.channels = int.from_bytes(h[body + 2 : body + 4], "little")
                self.sample_rate = int.from_bytes(h[body + 4 : body + 8], "little")
                self._byte_rate = int.from_bytes(h[body + 8 : body + 12], "little")
            at = body + size + (size & 1)  # chunks are padded to an even length
