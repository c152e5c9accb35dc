// The two ways to play a song that is still arriving. Both read the song's model-level state
// (its bytes and decoded blocks) and offer: play() (a Promise; rejects with NotAllowedError
// when the browser wants a user gesture first), pause(), seek(t), and the getters position,
// playing (play was asked for), buffering (ran out of audio, waiting for more), ended,
// received (seconds playable).

/** Media Source Extensions for MP3: the MediaSource class to use, or null. */
export function mseSupport() {
  if (window.MediaSource && MediaSource.isTypeSupported("audio/mpeg")) {
    return { Source: MediaSource, managed: false };
  }
  // iOS Safari (17.1+) has only ManagedMediaSource.
  if (window.ManagedMediaSource && ManagedMediaSource.isTypeSupported("audio/mpeg")) {
    return { Source: ManagedMediaSource, managed: true };
  }
  return null;
}

const APPEND_PIECE = 512 * 1024;

/** MP3 through an <audio> element fed by a SourceBuffer: the browser's own player. */
export class MseEngine {
  constructor(song, support, onChange) {
    this.kind = support.managed ? "managed-mse" : "mse";
    this.song = song;
    this.onChange = onChange;
    this.appended = 0; // bytes handed to the SourceBuffer
    this.closed = false; // endOfStream() called
    this.waiting = false;
    this.error = null;
    const audio = (this.element = document.createElement("audio"));
    audio.preload = "auto";
    // A ManagedMediaSource never opens unless remote playback (AirPlay) is disabled.
    if (support.managed) audio.disableRemotePlayback = true;
    this.source = new support.Source();
    this.url = URL.createObjectURL(this.source);
    audio.src = this.url;
    this.sourceBuffer = null;
    this.source.addEventListener("sourceopen", () => this._open(), { once: true });
    for (const name of ["waiting", "playing", "pause", "ended", "seeked", "timeupdate"]) {
      audio.addEventListener(name, () => {
        if (name === "waiting") this.waiting = true;
        if (name === "playing" || name === "pause" || name === "ended") this.waiting = false;
        this.onChange();
      });
    }
  }

  _open() {
    const sb = (this.sourceBuffer = this.source.addSourceBuffer("audio/mpeg"));
    // MPEG audio carries no timestamps: "sequence" mode lays appends end to end. Browsers set
    // it themselves for audio/mpeg, and setting it may throw where it is fixed.
    try {
      sb.mode = "sequence";
    } catch {}
    sb.addEventListener("updateend", () => {
      this.update();
      this.onChange();
    });
    sb.addEventListener("error", () => {
      this.error = "the browser could not decode this MP3";
      this.onChange();
    });
    this.update();
  }

  /** Append what arrived (one append at a time: appendBuffer throws while `updating`). */
  update() {
    const sb = this.sourceBuffer;
    if (!sb || sb.updating || this.source.readyState !== "open" || this.error) return;
    const store = this.song.store;
    if (this.appended < store.length) {
      const end = Math.min(store.length, this.appended + APPEND_PIECE);
      try {
        sb.appendBuffer(store.bytes.slice(this.appended, end));
        this.appended = end;
      } catch (error) {
        if (error.name !== "QuotaExceededError") throw error;
        // The buffer is full: drop what was played long ago, then try again on updateend.
        const before = this.element.currentTime - 10;
        if (before > 0) sb.remove(0, before);
      }
      return;
    }
    if (this.song.complete && !this.closed) {
      this.closed = true;
      this.source.endOfStream(); // now `duration` is known and `ended` can fire
    }
  }

  play() {
    return this.element.play();
  }
  pause() {
    this.element.pause();
  }
  seek(t) {
    this.element.currentTime = Math.max(0, Math.min(t, this.received - 0.05));
  }
  get position() {
    return this.element.currentTime;
  }
  get playing() {
    return !this.element.paused && !this.element.ended;
  }
  get buffering() {
    return this.waiting && this.playing && !this.element.seeking;
  }
  get ended() {
    return this.element.ended;
  }
  get received() {
    const ranges = this.sourceBuffer && this.source.readyState !== "closed" ? this.sourceBuffer.buffered : null;
    return ranges && ranges.length ? ranges.end(ranges.length - 1) : 0;
  }
  destroy() {
    this.element.pause();
    this.element.removeAttribute("src");
    this.element.load();
    URL.revokeObjectURL(this.url);
    this.element.remove();
  }
}

const LEAD = 0.05; // s between asking a run to start and its first sample
const AHEAD = 2.0; // s of audio kept scheduled ahead (background tabs run timers once a second)

/** Decoded blocks scheduled back to back with AudioBufferSourceNodes (WAV; MP3 without MSE). */
export class WebAudioEngine {
  constructor(song, onChange) {
    this.kind = "webaudio";
    this.song = song;
    this.onChange = onChange;
    this.ctx = null;
    this.sources = new Set();
    this.want = false; // play was asked for
    this.waitingForData = false;
    this.done = false;
    this.pos = 0; // the position while not running
    this.anchorCtx = 0; // ctx time at which media time anchorMedia plays
    this.anchorMedia = 0;
    this.scheduledTo = 0; // media time up to which sources are scheduled
    this.timer = null;
  }

  async play() {
    // Created on the first play(): an AudioContext made in a click handler may start at once.
    this.ctx = this.ctx || new AudioContext();
    if (this.done || this.pos >= this.received - 0.05) {
      if (this.song.complete) this.pos = 0; // at the end: play from the start
    }
    this.done = false;
    // Without user activation Chromium keeps the context suspended and leaves resume() pending.
    await Promise.race([this.ctx.resume(), new Promise((r) => setTimeout(r, 1000))]);
    if (this.ctx.state !== "running") {
      throw new DOMException("the browser did not let audio start without a click", "NotAllowedError");
    }
    this.want = true;
    this._run(this.pos);
    clearInterval(this.timer);
    this.timer = setInterval(() => this.update(), 100);
    this.onChange();
  }

  pause() {
    this.pos = this.position;
    this.want = false;
    this.waitingForData = false;
    this._stopSources();
    clearInterval(this.timer);
    this.onChange();
  }

  seek(t) {
    this.pos = Math.max(0, Math.min(t, this.received));
    this.done = false;
    if (this.want) {
      this._stopSources();
      this._run(this.pos);
    }
    this.onChange();
  }

  get position() {
    if (!this.want || this.waitingForData || !this.ctx) return this.pos;
    const t = this.anchorMedia + Math.max(0, this.ctx.currentTime - this.anchorCtx);
    return Math.min(t, this.scheduledTo);
  }
  get playing() {
    return this.want;
  }
  get buffering() {
    return this.want && this.waitingForData;
  }
  get ended() {
    return this.done;
  }
  get received() {
    return this.song.decodedSeconds;
  }
  /** Sources started and not yet finished: the tests' evidence that sound is being made. */
  get scheduledSources() {
    return this.sources.size;
  }

  _run(t) {
    this.anchorCtx = this.ctx.currentTime + LEAD;
    this.anchorMedia = t;
    this.scheduledTo = t;
    this.waitingForData = false;
    this._schedule();
  }

  _schedule() {
    const horizon = this.position + AHEAD;
    while (this.scheduledTo < horizon) {
      const block = this.song.blockAt(this.scheduledTo);
      if (!block) break;
      const source = this.ctx.createBufferSource();
      source.buffer = block.buffer;
      source.connect(this.ctx.destination);
      const offset = this.scheduledTo - block.start;
      const when = this.anchorCtx + (this.scheduledTo - this.anchorMedia);
      source.start(Math.max(when, this.ctx.currentTime), block.skip + offset, block.end - this.scheduledTo);
      source.onended = () => this.sources.delete(source);
      this.sources.add(source);
      this.scheduledTo = block.end;
    }
  }

  /** Called every 100 ms while playing, and when data arrives. */
  update() {
    if (!this.want || !this.ctx) return;
    if (this.waitingForData) {
      if (this.song.blockAt(this.pos)) {
        this._run(this.pos); // data came: resume by itself where it stopped
        this.onChange();
      } else if (this.song.complete && this.song.decoderIdle) {
        this._finish();
      }
      return;
    }
    const runOut = this.anchorCtx + (this.scheduledTo - this.anchorMedia);
    if (this.ctx.currentTime >= runOut - 0.01) {
      this.pos = this.scheduledTo;
      if (this.song.blockAt(this.pos)) {
        this._run(this.pos); // audio came just too late to be scheduled on time: a new run
        return;
      }
      if (this.song.complete && this.song.decoderIdle) this._finish();
      else this.waitingForData = true; // an underrun: "buffering" until more audio arrives
      this.onChange();
      return;
    }
    this._schedule();
  }

  _finish() {
    this.want = false;
    this.waitingForData = false;
    this.done = true;
    clearInterval(this.timer);
    this.onChange();
  }

  _stopSources() {
    for (const source of this.sources) {
      try {
        source.stop();
      } catch {}
    }
    this.sources.clear();
  }

  destroy() {
    this._stopSources();
    clearInterval(this.timer);
    if (this.ctx) this.ctx.close();
  }
}
