// WAV (RIFF) headers and 16-bit PCM, turned into blocks of the song's timeline as bytes arrive.
//
// WAV is never a Media Source Extensions type (w3c/media-source#244), so WAV always plays
// through Web Audio: the PCM itself is scheduled, no decoder involved. Blocks are cheap
// descriptors; the float samples are made from the received bytes only when a block is
// scheduled or its peaks computed, so a long song is not held twice in memory.

const ascii = (bytes, at) => String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
const u16 = (bytes, at) => bytes[at] | (bytes[at + 1] << 8);
const u32 = (bytes, at) => (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;

/**
 * The format and where the samples start, or null while the header is not all here.
 * Throws (with what it found) for anything but 16-bit PCM.
 */
export function parseWavHeader(bytes, length) {
  if (length < 12) return null;
  if (ascii(bytes, 0) !== "RIFF" || ascii(bytes, 8) !== "WAVE") {
    throw new Error(`not a WAV file (starts with ${JSON.stringify(ascii(bytes, 0))})`);
  }
  let at = 12;
  let format = null;
  while (at + 8 <= length) {
    const id = ascii(bytes, at);
    const size = u32(bytes, at + 4);
    if (id === "fmt ") {
      if (at + 24 > length) return null;
      const code = u16(bytes, at + 8);
      const bits = u16(bytes, at + 22);
      // 1: PCM; 0xFFFE: WAVE_FORMAT_EXTENSIBLE (its sub-format is PCM for 16-bit files).
      if ((code !== 1 && code !== 0xfffe) || bits !== 16) {
        throw new Error(`only 16-bit PCM WAV can play live (format ${code}, ${bits}-bit)`);
      }
      format = {
        channels: u16(bytes, at + 10),
        sampleRate: u32(bytes, at + 12),
        blockAlign: u16(bytes, at + 20),
      };
    } else if (id === "data") {
      if (!format) throw new Error("WAV data chunk before its fmt chunk");
      // Streamed WAVs may not know their size yet (0 or 0xFFFFFFFF): then the file's end is.
      const known = size > 0 && size < 0xffffffff;
      return { ...format, dataOffset: at + 8, dataSize: known ? size : Infinity };
    }
    at += 8 + size + (size & 1); // chunks are word-aligned
  }
  return null;
}

/** Samples [first, first + frames) of the PCM as an AudioBuffer (no AudioContext needed). */
export function pcmToAudioBuffer(store, header, first, frames) {
  const { channels, sampleRate, blockAlign, dataOffset } = header;
  const buffer = new AudioBuffer({ length: frames, numberOfChannels: channels, sampleRate });
  const start = dataOffset + first * blockAlign;
  const view = new DataView(store.bytes.buffer, store.bytes.byteOffset + start, frames * blockAlign);
  for (let c = 0; c < channels; c++) {
    const out = new Float32Array(frames);
    for (let i = 0, at = c * 2; i < frames; i++, at += blockAlign) {
      out[i] = view.getInt16(at, true) / 32768;
    }
    buffer.copyToChannel(out, c);
  }
  return buffer;
}

/** Same interface as Mp3Decoder: blocks {start, end, skip, buffer (a getter)} in order. */
export class WavDecoder {
  constructor(onBlock, onError) {
    this.onBlock = onBlock;
    this.onError = onError;
    this.header = null;
    this.framesDone = 0;
    this.failed = false;
    this.pending = 0; // nothing is asynchronous here
  }

  update(store, final) {
    if (this.failed) return;
    try {
      this.header = this.header || parseWavHeader(store.bytes, store.length);
    } catch (error) {
      this.failed = true;
      this.onError(error);
      return;
    }
    const header = this.header;
    if (!header) return;
    const end = Math.min(store.length, header.dataOffset + header.dataSize);
    const available = Math.floor(Math.max(0, end - header.dataOffset) / header.blockAlign);
    const frames = available - this.framesDone;
    // Blocks of at least ~0.1 s, except the last one.
    if (frames <= 0 || (frames < header.sampleRate / 10 && !final)) return;
    const first = this.framesDone;
    this.framesDone = available;
    const rate = header.sampleRate;
    this.onBlock({
      start: first / rate,
      end: available / rate,
      skip: 0,
      get buffer() {
        return pcmToAudioBuffer(store, header, first, frames);
      },
    });
  }
}
