// One view of the live player: the controls, the waveform, and this view's engine.
import { drawWaveform, drawnBins, waveformSpan } from "./waveform.js";

const SEEK_STEP = 5; // seconds per arrow key
const SEEK_PAGE = 15; // seconds per PageUp/PageDown

const clock = (seconds) => {
  const s = Math.max(0, Math.floor(seconds || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};

const MIME = { mp3: "audio/mpeg", wav: "audio/wav" };

// Every text the player shows. Python sends them in the user's language (the `labels` trait,
// see _live.player_labels); these English ones stand in for a key it did not send.
const ENGLISH = {
  play: "Play",
  pause: "Pause",
  download: "Download",
  seek: "Seek within the received audio",
  time: "{position} / {total}",
  timeReceived: "{position} / {received} received",
  valueText: "{position} of {received} received",
  unsupported: "Live playback is not available in this browser; the player appears when the song is done.",
  handedOver: "Continues in the song's player.",
  liveFailed: "Live playback failed: {error}.",
  cannotPlay: "Cannot play live: {error}.",
  buffering: "Buffering…",
  stoppedEarly: "Stopped before any audio arrived.",
  failedEarly: "Failed before any audio arrived.",
  waiting: "Waiting for the first audio…",
  ready: "Ready",
  pressPlay: "Streaming: press Play",
  playing: "Playing",
  playingStreaming: "Playing while it streams",
  ended: "Played to the end",
  autoplayBlocked: "The browser blocked autoplay: press Play.",
  playRefused: "The browser refused to play: press Play again.",
  couldNotPlay: "Could not play: {error}",
};

/** The label `key` in the model's language, its `{placeholders}` filled from `values`. */
export function label(model, key, values = {}) {
  const labels = (model && model.get("labels")) || {};
  const text = typeof labels[key] === "string" ? labels[key] : ENGLISH[key];
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** The first `max` characters of `text`, never cutting a character apart: whole grapheme
 * clusters where the browser can segment (an emoji with its skin tone, a letter with its
 * accent), else whole code points (never half a surrogate pair). */
export function clip(text, max) {
  if (typeof Intl !== "undefined" && Intl.Segmenter) {
    let out = "";
    for (const { segment } of new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text)) {
      if (out.length + segment.length > max) break;
      out += segment;
    }
    return out;
  }
  let out = "";
  for (const ch of text) {
    if (out.length + ch.length > max) break;
    out += ch;
  }
  return out;
}

/** A file name from the song's title: its words, nothing a file system refuses. */
export function fileName(title, format, partial) {
  const stem = (title || "")
    .replace(/[\\/:*?"<>|\u0000-\u001f]+/g, " ")
    .trim()
    .replace(/\s+/g, "-");
  return `${clip(stem, 80) || "funmusic-song"}${partial ? "-partial" : ""}.${format}`;
}

/** MSE <audio> elements live outside the views, so removing a view does not pause them. */
function audioHolder() {
  let holder = document.getElementById("funmusic-live-audio");
  if (!holder) {
    holder = Object.assign(document.createElement("div"), { id: "funmusic-live-audio", hidden: true });
    document.body.appendChild(holder);
  }
  return holder;
}

/**
 * Route the player's keys from `window`, in the capture phase. JupyterLab and Notebook 7 handle
 * keys at document level before they reach an output (Notebook 7 swallows the arrow keys there,
 * and Enter means "edit the cell"); a window capture listener runs before those. Installed once
 * per page, whichever player module instance comes first.
 */
function routeKeys() {
  if (window.__funmusicKeyRouter) return;
  window.__funmusicKeyRouter = true;
  window.addEventListener(
    "keydown",
    (e) => {
      const root = e.target instanceof Element ? e.target.closest(".funmusic-live") : null;
      const view = root && root.__funmusicPlayer;
      if (view && view.handleKey(e)) {
        e.preventDefault();
        e.stopImmediatePropagation();
      }
    },
    true,
  );
}

function event(target, name, timeoutMs) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), timeoutMs);
    target.addEventListener(name, () => (clearTimeout(timer), resolve(performance.now())), { once: true });
  });
}

function element(tag, props, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

export class PlayerView {
  constructor(song, model, el, makeEngine) {
    this.song = song;
    this.model = model;
    this.engine = makeEngine(() => this.schedule());
    this.note = ""; // a passing message (autoplay refused …)
    this.autoplayTried = false;
    this.handedOver = false;
    this.transferring = false;
    this.removed = false;
    this.frame = 0;
    this.build(el);
    if (this.engine && this.engine.element) audioHolder().appendChild(this.engine.element);
    this.off = song.on(() => {
      if (this.engine) this.engine.update();
      this.schedule();
    });
    this.timer = setInterval(() => this.refresh(), 250);
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(this.canvas);
    song.views.add(this);
    this.refresh();
  }

  build(el) {
    this.play = element("button", { type: "button", className: "funmusic-live-play", disabled: true });
    this.play.setAttribute("aria-label", label(this.model, "play"));
    this.play.addEventListener("click", () => this.toggle(false));
    this.titleText = element("span", { className: "funmusic-live-title" });
    this.time = element("span", { className: "funmusic-live-time" });
    this.status = element("span", { className: "funmusic-live-status" });
    this.status.setAttribute("role", "status");
    this.download = element("button", { type: "button", className: "funmusic-live-download", disabled: true }, label(this.model, "download"));
    this.download.addEventListener("click", () => this.save());
    this.canvas = element("canvas", { className: "funmusic-live-wave", tabIndex: 0 });
    // The waveform is the seek bar: a slider for keyboards and screen readers.
    this.canvas.setAttribute("role", "slider");
    this.canvas.setAttribute("aria-label", label(this.model, "seek"));
    this.canvas.setAttribute("aria-valuemin", "0");
    this.canvas.addEventListener("click", (e) => this.seekClick(e));
    const row = element("div", { className: "funmusic-live-row" }, this.play, this.titleText, this.time, this.status, this.download);
    this.root = element("div", { className: "funmusic-live" }, row, this.canvas);
    // Keys pressed in the player are the player's, not the notebook's command-mode shortcuts.
    this.root.setAttribute("data-lm-suppress-shortcuts", "true");
    routeKeys();
    this.root.__funmusicPlayer = this; // for the browser tests: engine, song and stats
    el.appendChild(this.root);
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => ((this.frame = 0), this.refresh()));
  }

  get state() {
    const e = this.engine;
    if (this.handedOver) return "handed-over";
    if (!e) return "unsupported";
    if (this.song.store.length === 0) return "waiting";
    if (e.buffering) return "buffering";
    if (e.playing) return "playing";
    if (e.ended) return "ended";
    return e.position > 0 ? "paused" : "ready";
  }

  /** Higher for the view the listener hears: the hand-over moves that one. */
  score() {
    if (!this.engine || this.handedOver) return 0;
    return (this.engine.playing ? 1e6 : 0) + this.engine.position;
  }

  statusText(state) {
    const status = this.model.get("status");
    const message = this.model.get("message");
    const t = (key, values) => label(this.model, key, values);
    if (state === "unsupported") return t("unsupported");
    if (state === "handed-over") return t("handedOver");
    if (this.engine.error) return t("liveFailed", { error: this.engine.error });
    if (this.song.decodeError && this.song.engine === "webaudio") return t("cannotPlay", { error: this.song.decodeError });
    if (state === "buffering") return t("buffering");
    if (status === "stopped" || status === "failed") {
      if (message) return message;
      if (state === "waiting") return t(status === "stopped" ? "stoppedEarly" : "failedEarly");
    }
    if (this.note && (state === "ready" || state === "paused")) return this.note;
    if (state === "waiting") return t("waiting");
    if (state === "ready") return t(status === "complete" ? "ready" : "pressPlay");
    if (state === "playing") return t(status === "complete" ? "playing" : "playingStreaming");
    if (state === "ended") return t("ended");
    return "";
  }

  refresh() {
    const e = this.engine;
    const song = this.song;
    const state = this.state;
    const received = e ? e.received : 0;
    const position = e ? Math.min(e.position, received || e.position) : 0;
    const total = song.complete && song.decoderIdle ? Math.max(received, song.decodedSeconds) : null;
    this.root.dataset.state = state;
    this.root.dataset.engine = song.engine || "none";
    this.titleText.textContent = this.model.get("title");
    const playing = e && e.playing;
    this.play.disabled = !e || song.store.length === 0 || this.handedOver;
    if (!this.play.disabled && !song.stats.playEnabledAt) song.stats.playEnabledAt = performance.now();
    this.play.setAttribute("aria-label", label(this.model, playing ? "pause" : "play"));
    this.play.textContent = playing ? "❚❚" : "▶";
    const times = { position: clock(position), received: clock(received), total: clock(total) };
    this.time.textContent = label(this.model, total ? "time" : "timeReceived", times);
    this.status.textContent = this.status.title = this.statusText(state); // title: when cut off
    this.download.disabled = song.store.length === 0;
    drawWaveform(this.canvas, song.peaks, { position, received: Math.max(received, song.peaks.seconds), total });
    this.canvas.dataset.bins = String(drawnBins(song.peaks));
    this.canvas.setAttribute("aria-valuemax", String(Math.round(received)));
    this.canvas.setAttribute("aria-valuenow", String(Math.round(position)));
    this.canvas.setAttribute("aria-valuetext", label(this.model, "valueText", times));
    // Autoplay once the first audio is here. Shift+Enter gave the page user activation.
    if (e && this.model.get("autoplay") && !this.autoplayTried && song.store.length > 0 && !this.handedOver) {
      this.autoplayTried = true;
      this.toggle(true);
    }
  }

  toggle(auto) {
    const e = this.engine;
    if (!e || this.handedOver) return;
    if (e.playing) {
      e.pause();
      return this.schedule();
    }
    this.note = "";
    this.song.stats.playAskedAt = performance.now();
    e.play().catch((error) => {
      // NotAllowedError: no user activation yet (autoplay refused). AbortError: paused or
      // seeked before playback started, nothing to say.
      if (error.name === "NotAllowedError") {
        this.note = label(this.model, auto ? "autoplayBlocked" : "playRefused");
      } else if (error.name !== "AbortError") {
        this.note = label(this.model, "couldNotPlay", { error: error.message });
      }
      this.schedule();
    });
    this.schedule();
  }

  seekTo(t) {
    if (!this.engine || this.handedOver) return;
    this.engine.seek(Math.max(0, Math.min(t, this.engine.received)));
    this.schedule();
  }

  seekClick(e) {
    const rect = this.canvas.getBoundingClientRect();
    const span = waveformSpan(this.engine ? this.engine.received : 0, this.song.complete ? this.song.decodedSeconds : null);
    this.seekTo(((e.clientX - rect.left) / rect.width) * span);
  }

  /** A key pressed in the player (see routeKeys): true if it was the player's to handle. */
  handleKey(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return false;
    if (e.target === this.canvas) return this.seekKey(e);
    if (e.target instanceof HTMLButtonElement && (e.key === "Enter" || e.key === " ")) {
      if (!e.target.disabled) e.target.click();
      return true;
    }
    return false;
  }

  seekKey(e) {
    if (!this.engine) return false;
    const now = this.engine.position;
    const steps = {
      ArrowRight: now + SEEK_STEP, ArrowUp: now + SEEK_STEP, ArrowLeft: now - SEEK_STEP,
      ArrowDown: now - SEEK_STEP, PageUp: now + SEEK_PAGE, PageDown: now - SEEK_PAGE,
      Home: 0, End: this.engine.received - 1,
    };
    if (!(e.key in steps)) return false;
    this.seekTo(steps[e.key]);
    return true;
  }

  /** Download what arrived so far: the whole file once the song is complete. */
  save() {
    const song = this.song;
    const blob = new Blob([song.store.bytes.slice(0, song.store.length)], { type: MIME[song.format] });
    const link = element("a", {
      href: URL.createObjectURL(blob),
      download: fileName(this.model.get("title"), song.format, !song.complete),
    });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  }

  /**
   * Move playback to the card's <audio>: same position; if playing, start the card first and
   * stop the live audio only once the card plays (a few ms of overlap, no gap, no restart).
   * Playing the card needs no new click: the click on Play gave the page sticky activation.
   */
  async handOverTo(card, reason) {
    const e = this.engine;
    this.transferring = true;
    const record = {
      id: this.model.get("handoff_id"),
      reason, // "end" (the song completed) or "view removed" (before `end`)
      engine: this.song.engine,
      playing: e.playing,
      livePosition: e.position,
      cardPosition: null,
      gapMs: null,
      overlapMs: null,
      jumpMs: null,
      error: null,
    };
    try {
      card.currentTime = e.position;
      if (e.playing) {
        if (card.readyState < 3) await event(card, "canplay", 5000);
        // Loading took a moment and the live audio went on: catch up before starting.
        if (Math.abs(card.currentTime - e.position) > 0.03) {
          card.currentTime = e.position;
          await event(card, "seeked", 2000);
        }
        const started = event(card, "playing", 3000);
        await card.play();
        const cardAt = (await started) || performance.now();
        record.livePosition = e.position;
        record.cardPosition = card.currentTime;
        e.pause();
        const liveStoppedAt = performance.now();
        record.overlapMs = liveStoppedAt - cardAt;
        record.gapMs = Math.max(0, cardAt - liveStoppedAt);
        record.jumpMs = (record.cardPosition - record.livePosition) * 1000;
      } else {
        record.cardPosition = card.currentTime;
      }
    } catch (error) {
      record.error = String(error); // the live audio keeps playing
    }
    (window.__funmusicHandoffs = window.__funmusicHandoffs || []).push(record);
    const report = { position: record.livePosition, playing: record.playing };
    if (record.error) report.error = record.error;
    return report;
  }

  afterHandoff(fromView, handedOver) {
    this.handedOver = handedOver;
    this.transferring = false;
    if (handedOver && this !== fromView && this.engine && this.engine.playing) this.engine.pause();
    if (this.removed) this.destroy();
    else this.schedule();
  }

  /** The view is going away (its output cleared or replaced). */
  cleanup() {
    this.removed = true;
    if (this.engine && this.engine.playing && !this.song.handedOver) {
      // The listener hears this view, and its audio outlives the view's DOM: keep it going
      // until the card (if it is there) takes over; afterHandoff() then destroys this view.
      this.song.startHandoff(this);
      return;
    }
    if (!this.transferring) this.destroy();
  }

  destroy() {
    clearInterval(this.timer);
    cancelAnimationFrame(this.frame);
    this.resize.disconnect();
    this.off();
    this.song.views.delete(this);
    if (this.engine) this.engine.destroy();
    this.engine = null;
  }
}
