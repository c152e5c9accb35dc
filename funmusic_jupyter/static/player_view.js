// One view of the live player: the controls, the waveform, and this view's engine.
import { drawWaveform, drawnBins, waveformSpan } from "./waveform.js";

const SEEK_STEP = 5; // seconds per arrow key
const SEEK_PAGE = 15; // seconds per PageUp/PageDown

const clock = (seconds) => {
  const s = Math.max(0, Math.floor(seconds || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};

const MIME = { mp3: "audio/mpeg", wav: "audio/wav" };

/** A file name from the song's title: its words, nothing a file system refuses. */
export function fileName(title, format, partial) {
  const stem = (title || "")
    .replace(/[\\/:*?"<>|\u0000-\u001f]+/g, " ")
    .trim()
    .replace(/\s+/g, "-")
    .slice(0, 80);
  return `${stem || "funmusic-song"}${partial ? "-partial" : ""}.${format}`;
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
    this.play.setAttribute("aria-label", "Play");
    this.play.addEventListener("click", () => this.toggle(false));
    this.titleText = element("span", { className: "funmusic-live-title" });
    this.time = element("span", { className: "funmusic-live-time" });
    this.status = element("span", { className: "funmusic-live-status" });
    this.status.setAttribute("role", "status");
    this.download = element("button", { type: "button", className: "funmusic-live-download", disabled: true }, "Download");
    this.download.addEventListener("click", () => this.save());
    this.canvas = element("canvas", { className: "funmusic-live-wave", tabIndex: 0 });
    // The waveform is the seek bar: a slider for keyboards and screen readers.
    this.canvas.setAttribute("role", "slider");
    this.canvas.setAttribute("aria-label", "Seek within the received audio");
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
    if (state === "unsupported") {
      return "Live playback is not available in this browser; the player appears when the song is done.";
    }
    if (state === "handed-over") return "Continues in the song's player.";
    if (this.engine.error) return `Live playback failed: ${this.engine.error}.`;
    if (this.song.decodeError && this.song.engine === "webaudio") return `Cannot play live: ${this.song.decodeError}.`;
    if (state === "buffering") return "Buffering…";
    if (status === "stopped" || status === "failed") {
      if (message) return message;
      if (state === "waiting") return status === "stopped" ? "Stopped before any audio arrived." : "Failed before any audio arrived.";
    }
    if (this.note && (state === "ready" || state === "paused")) return this.note;
    if (state === "waiting") return "Waiting for the first audio…";
    if (state === "ready") return status === "complete" ? "Ready" : "Streaming: press Play";
    if (state === "playing") return status === "complete" ? "Playing" : "Playing while it streams";
    if (state === "ended") return "Played to the end";
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
    this.play.setAttribute("aria-label", playing ? "Pause" : "Play");
    this.play.textContent = playing ? "❚❚" : "▶";
    this.time.textContent = total ? `${clock(position)} / ${clock(total)}` : `${clock(position)} / ${clock(received)} received`;
    this.status.textContent = this.status.title = this.statusText(state); // title: when cut off
    this.download.disabled = song.store.length === 0;
    drawWaveform(this.canvas, song.peaks, { position, received: Math.max(received, song.peaks.seconds), total });
    this.canvas.dataset.bins = String(drawnBins(song.peaks));
    this.canvas.setAttribute("aria-valuemax", String(Math.round(received)));
    this.canvas.setAttribute("aria-valuenow", String(Math.round(position)));
    this.canvas.setAttribute("aria-valuetext", `${clock(position)} of ${clock(received)} received`);
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
        this.note = auto ? "The browser blocked autoplay: press Play." : "The browser refused to play: press Play again.";
      } else if (error.name !== "AbortError") {
        this.note = `Could not play: ${error.message}`;
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
