// The FunMusic live player: plays a song while it streams, then hands playback over to the
// song's final <audio> card. Protocol and Python side: funmusic_jupyter/_live.py.
//
// anywidget gives `initialize` the model once, and `render` each view (an output can be shown
// more than once, and a reloaded tab makes new views). The bytes, their decoded blocks and the
// waveform's peaks live at model level (LiveSong) and are shared; each view has its own engine.
import { Mp3Decoder } from "./mp3_frames.js";
import { WavDecoder } from "./wav_pcm.js";
import { Peaks } from "./waveform.js";
import { MseEngine, WebAudioEngine, mseSupport } from "./engines.js";
import { PlayerView } from "./player_view.js";

const NEED_RETRY_MS = 2000; // ask again for the same missing bytes after this long
const CARD_WAIT_MS = 10000; // how long to look for the card after `end`
const CARD_WAIT_REMOVED_MS = 2000; // … after a playing view was removed before `end`

/** The received file: one growing byte array (doubling), so slices are cheap. */
class ByteStore {
  constructor() {
    this.bytes = new Uint8Array(256 * 1024);
    this.length = 0;
  }
  append(data) {
    if (this.length + data.length > this.bytes.length) {
      const grown = new Uint8Array(Math.max(this.length + data.length, this.bytes.length * 2));
      grown.set(this.bytes.subarray(0, this.length));
      this.bytes = grown;
    }
    this.bytes.set(data, this.length);
    this.length += data.length;
  }
}

/** Which engine plays this format here: "mse", "webaudio", or null (none can). */
export function chooseEngine(format, wanted) {
  const webAudio = typeof AudioContext === "function" && typeof AudioBuffer === "function";
  if (format === "mp3" && wanted !== "webaudio" && mseSupport()) return "mse";
  if (format === "wav" || format === "mp3") {
    const canDecode = format === "wav" || typeof OfflineAudioContext === "function";
    return webAudio && canDecode ? "webaudio" : null;
  }
  return null;
}

/** Everything about one song in this page, shared by its views. */
class LiveSong {
  constructor(model) {
    this.model = model;
    this.store = new ByteStore();
    this.endSize = null;
    this.blocks = []; // decoded pieces, in timeline order (kept only for Web Audio playback)
    this.decodedSeconds = 0;
    this.peaks = new Peaks();
    this.views = new Set();
    this.listeners = new Set();
    this.handoff = null; // the hand-over, once started (a Promise)
    this.handoffReport = null; // … and what it reported, once done
    this.handedOver = false;
    this.need = { offset: -1, at: 0 };
    this.format = model.get("format");
    this.engine = chooseEngine(this.format, model.get("engine"));
    this.decodeError = null;
    this.stats = { firstChunkAt: null, chunks: 0, needs: 0, duplicates: 0 };
    const Decoder = this.format === "wav" ? WavDecoder : Mp3Decoder;
    const canDecode = typeof OfflineAudioContext === "function" || this.format === "wav";
    this.decoder = canDecode
      ? new Decoder(
          (block) => this._addBlock(block),
          (error) => {
            this.decodeError = String(error.message || error);
            this.emit();
          },
        )
      : null;
  }

  get complete() {
    return this.endSize !== null && this.store.length >= this.endSize;
  }
  get decoderIdle() {
    return !this.decoder || this.decoder.pending === 0;
  }
  get status() {
    return this.model.get("status");
  }

  blockAt(t) {
    for (let i = this.blocks.length - 1; i >= 0; i--) {
      const block = this.blocks[i];
      if (block.start <= t + 1e-6) return t < block.end - 1e-6 ? block : null;
    }
    return null;
  }

  on(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit() {
    for (const listener of this.listeners) listener();
  }

  /** msg:custom from Python: {type: "chunk", offset} + one buffer, or {type: "end", size}. */
  onMessage(msg, buffers) {
    if (msg.type === "chunk" && buffers && buffers.length) {
      const view = buffers[0]; // a DataView
      const have = this.store.length;
      if (msg.offset > have) {
        this.askFrom(have); // a gap: something was lost (sent before this model existed)
        return;
      }
      const skip = have - msg.offset;
      if (skip >= view.byteLength) {
        this.stats.duplicates += 1;
        return;
      }
      this.store.append(new Uint8Array(view.buffer, view.byteOffset + skip, view.byteLength - skip));
      this.stats.chunks += 1;
      if (this.stats.firstChunkAt === null) this.stats.firstChunkAt = performance.now();
      this._arrived();
    } else if (msg.type === "end") {
      this.endSize = msg.size;
      if (this.store.length < msg.size) this.askFrom(this.store.length);
      this._arrived();
    }
  }

  askFrom(offset) {
    const now = performance.now();
    if (this.need.offset === offset && now - this.need.at < NEED_RETRY_MS) return;
    this.need = { offset, at: now };
    this.stats.needs += 1;
    this.model.send({ type: "need", offset });
  }

  _arrived() {
    if (this.decoder) this.decoder.update(this.store, this.complete);
    this.emit();
    if (this.complete) this.startHandoff();
  }

  _addBlock(block) {
    this.peaks.add(block);
    if (this.engine === "webaudio") this.blocks.push(block);
    this.decodedSeconds = Math.max(this.decodedSeconds, block.end);
    this.emit();
  }

  /** The card's <audio>, looked for until it appears (it may come just before or after `end`). */
  async findCard(timeoutMs) {
    const id = this.model.get("handoff_id");
    const selector = `audio[data-funmusic-handoff="${CSS.escape(id)}"]`;
    const until = performance.now() + timeoutMs;
    for (;;) {
      const card = document.querySelector(selector);
      if (card || performance.now() > until) return card;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** After `end` (or when a playing view goes away): move playback to the card, once. */
  startHandoff(fromView = null) {
    if (this.handoff) return this.handoff;
    this.handoff = (async () => {
      const card = await this.findCard(fromView ? CARD_WAIT_REMOVED_MS : CARD_WAIT_MS);
      const views = fromView ? [fromView] : [...this.views];
      // The view that is playing (or has played furthest) is the one the listener hears.
      views.sort((a, b) => b.score() - a.score());
      const view = views.find((v) => v.score() > 0) || null;
      let report = { position: null, playing: false };
      if (!card) report.card = false; // no card to go to: the live player stays the player
      else if (view) report = await view.handOverTo(card, fromView ? "view removed" : "end");
      this.handedOver = !!card && !report.error;
      for (const v of [...this.views]) v.afterHandoff(view, this.handedOver);
      this.model.send({ type: "handed-over", ...report });
      this.handoffReport = report;
      this.emit();
      return report;
    })();
    return this.handoff;
  }
}

export default () => {
  const songs = new Map(); // by the model's `_key` trait
  return {
    initialize({ model }) {
      const song = new LiveSong(model);
      const key = model.get("_key");
      songs.set(key, song);
      model.on("msg:custom", (msg, buffers) => song.onMessage(msg, buffers));
      model.on("change:status", () => {
        // Finished while our `end` went missing: ask for the rest (Python repeats `end`).
        if (song.status !== "streaming" && song.status !== "waiting" && song.endSize === null) {
          song.askFrom(song.store.length);
        }
        song.emit();
      });
      // Messages sent before this model existed are lost: ask for everything so far.
      song.askFrom(0);
      return () => {
        songs.delete(key);
        for (const view of song.views) view.destroy();
      };
    },
    render({ model, el }) {
      const song = songs.get(model.get("_key"));
      const makeEngine = (onChange) => {
        if (song.engine === "mse") return new MseEngine(song, mseSupport(), onChange);
        if (song.engine === "webaudio") return new WebAudioEngine(song, onChange);
        return null;
      };
      const view = new PlayerView(song, model, el, makeEngine);
      return () => view.cleanup();
    },
  };
};
