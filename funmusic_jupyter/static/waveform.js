// The waveform: peaks computed in the browser from decoded blocks, drawn on a <canvas>.

export const BINS_PER_SECOND = 20;
const MIN_SPAN = 30; // seconds the waveform spans before the song's length is known

/** Peak amplitudes (0..1) per 1/BINS_PER_SECOND s, growing as blocks arrive. */
export class Peaks {
  constructor() {
    this.values = new Float32Array(BINS_PER_SECOND * 60);
    this.seconds = 0; // how far the timeline is covered
  }

  add(block) {
    const buffer = block.buffer;
    const rate = buffer.sampleRate;
    const first = Math.round(block.skip * rate);
    const last = Math.min(buffer.length, first + Math.round((block.end - block.start) * rate));
    const lastBin = Math.ceil(block.end * BINS_PER_SECOND);
    if (lastBin > this.values.length) {
      const grown = new Float32Array(Math.max(lastBin, this.values.length * 2));
      grown.set(this.values);
      this.values = grown;
    }
    for (let c = 0; c < buffer.numberOfChannels; c++) {
      const data = buffer.getChannelData(c);
      for (let i = first; i < last; i++) {
        const bin = Math.floor((block.start + (i - first) / rate) * BINS_PER_SECOND);
        const value = Math.abs(data[i]);
        if (value > this.values[bin]) this.values[bin] = value;
      }
    }
    this.seconds = Math.max(this.seconds, block.end);
  }
}

/** The span (seconds) the canvas's width stands for. */
export function waveformSpan(received, total) {
  return total || Math.max(MIN_SPAN, received);
}

/**
 * Draw the peaks: what was played in the accent colour, the rest of what arrived muted, a
 * playhead. Colours come from the element's CSS (JupyterLab theme variables, light or dark).
 */
export function drawWaveform(canvas, peaks, { position, received, total }) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const style = getComputedStyle(canvas);
  const color = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  const played = color("--funmusic-live-played", "#1976d2");
  const rest = color("--funmusic-live-received", "#9e9e9e");
  const head = color("--funmusic-live-playhead", "#d32f2f");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  const span = waveformSpan(received, total);
  const perPixel = (span * BINS_PER_SECOND) / width;
  const middle = height / 2;
  const available = Math.min(peaks.values.length, Math.ceil(peaks.seconds * BINS_PER_SECOND));
  for (let x = 0; x < width; x++) {
    const from = Math.floor(x * perPixel);
    if (from >= available) break;
    const to = Math.min(available, Math.max(from + 1, Math.floor((x + 1) * perPixel)));
    let peak = 0;
    for (let bin = from; bin < to; bin++) peak = Math.max(peak, peaks.values[bin]);
    const half = Math.max(ratio / 2, peak * (middle - ratio));
    ctx.fillStyle = from / BINS_PER_SECOND < position ? played : rest;
    ctx.fillRect(x, middle - half, 1, half * 2);
  }
  const x = Math.round((position / span) * width);
  ctx.fillStyle = head;
  ctx.fillRect(Math.min(width - ratio, x), 0, ratio, height);
}

/** How many non-silent columns the peaks fill: the tests watch the waveform grow with it. */
export function drawnBins(peaks) {
  let count = 0;
  const available = Math.min(peaks.values.length, Math.ceil(peaks.seconds * BINS_PER_SECOND));
  for (let bin = 0; bin < available; bin++) if (peaks.values[bin] > 0.001) count++;
  return count;
}
