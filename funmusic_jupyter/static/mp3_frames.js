// MPEG audio (Layer III) frame headers, and an incremental decoder that cuts the growing file
// at frame boundaries and decodes each piece with decodeAudioData.
//
// Why frames: decodeAudioData needs a whole, self-contained file; a chunk from the stream starts
// and ends anywhere. A run of whole frames is a valid MP3 "file" for every decoder. Layer III
// frames may borrow bits from the previous frame (the bit reservoir), so each piece is decoded
// with WARMUP frames before it, whose samples are skipped when it plays.

const BITRATES_V1 = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const BITRATES_V2 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
const SAMPLE_RATES = { 3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000] };
const WARMUP = 1;
const SEGMENT_FRAMES = 20; // about half a second at 48 kHz

/** The frame header at bytes[i], or null when there is none there (Layer III only). */
export function parseFrameHeader(bytes, i) {
  if (bytes[i] !== 0xff || (bytes[i + 1] & 0xe0) !== 0xe0) return null;
  const version = (bytes[i + 1] >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
  const layer = (bytes[i + 1] >> 1) & 3; // 1: Layer III
  if (version === 1 || layer !== 1) return null;
  const bitrateIndex = bytes[i + 2] >> 4;
  const rateIndex = (bytes[i + 2] >> 2) & 3;
  if (bitrateIndex === 0 || bitrateIndex === 15 || rateIndex === 3) return null;
  const mpeg1 = version === 3;
  const bitrate = (mpeg1 ? BITRATES_V1 : BITRATES_V2)[bitrateIndex] * 1000;
  const sampleRate = SAMPLE_RATES[version][rateIndex];
  const samples = mpeg1 ? 1152 : 576;
  const padding = (bytes[i + 2] >> 1) & 1;
  const length = Math.floor(((samples / 8) * bitrate) / sampleRate) + padding;
  const channels = bytes[i + 3] >> 6 === 3 ? 1 : 2;
  return { length, samples, sampleRate, channels };
}

/** Where the audio starts: after an ID3v2 tag, or null if the tag is not all here yet. */
export function skipId3(bytes, length) {
  if (length < 10) return null;
  if (bytes[0] !== 0x49 || bytes[1] !== 0x44 || bytes[2] !== 0x33) return 0; // "ID3"
  // The size is "syncsafe": 7 bits per byte.
  const size = (bytes[6] << 21) | (bytes[7] << 14) | (bytes[8] << 7) | bytes[9];
  const footer = bytes[5] & 0x10 ? 10 : 0;
  return 10 + size + footer;
}

/**
 * Turns the growing MP3 file into decoded blocks: {start, end, skip, buffer} in seconds on the
 * song's timeline (frame counts, so blocks are contiguous whatever the decoder adds).
 */
export class Mp3Decoder {
  constructor(onBlock, onError) {
    this.onBlock = onBlock;
    this.onError = onError;
    this.pos = null; // byte offset of the next frame, null until the ID3 tag is skipped
    this.frames = []; // byte offsets of frames found and not yet decoded (+ warm-up ones)
    this.framesDone = 0; // frames already on the timeline
    this.info = null; // first frame's header
    this.busy = Promise.resolve();
    this.pending = 0; // pieces waiting to be decoded
  }

  /** Find the new whole frames in store; decode them in pieces (all of them when final). */
  update(store, final) {
    const bytes = store.bytes;
    if (this.pos === null) {
      this.pos = skipId3(bytes, store.length);
      if (this.pos === null) return;
    }
    while (this.pos + 4 <= store.length) {
      const header = parseFrameHeader(bytes, this.pos);
      if (!header) {
        this.pos += 1; // lost sync (junk between frames): scan for the next header
        continue;
      }
      if (this.pos + header.length > store.length) break;
      this.info = this.info || header;
      this.frames.push([this.pos, this.pos + header.length]);
      this.pos += header.length;
    }
    // Once decoding has begun, this.frames starts with WARMUP frames already decoded.
    for (;;) {
      const warm = this.framesDone > 0 ? WARMUP : 0;
      const fresh = this.frames.length - warm;
      if (fresh <= 0 || (fresh < SEGMENT_FRAMES && !final)) break;
      const count = Math.min(fresh, SEGMENT_FRAMES);
      this._decode(store, this.frames.slice(0, warm + count), warm);
      this.frames = this.frames.slice(warm + count - WARMUP);
    }
  }

  _decode(store, frames, warm) {
    const info = this.info;
    const bytes = store.bytes.slice(frames[0][0], frames[frames.length - 1][1]);
    const first = this.framesDone;
    const count = frames.length - warm;
    this.framesDone += count;
    const frameSeconds = info.samples / info.sampleRate;
    // Decoded one at a time, in order: blocks arrive on the timeline in order.
    this.pending += 1;
    this.busy = this.busy.then(async () => {
      let buffer = null;
      try {
        // An OfflineAudioContext decodes without a user gesture, at the file's own rate.
        const ctx = new OfflineAudioContext(info.channels, 1, info.sampleRate);
        buffer = await ctx.decodeAudioData(bytes.buffer);
      } catch (error) {
        // Leave no hole in the timeline: silence where a piece would not decode.
        this.onError(error);
        const length = frames.length * info.samples;
        buffer = new AudioBuffer({ length, numberOfChannels: info.channels, sampleRate: info.sampleRate });
      }
      this.pending -= 1;
      const start = first * frameSeconds;
      this.onBlock({ start, end: start + count * frameSeconds, skip: warm * frameSeconds, buffer });
    });
  }
}
