"""Streaming throughput and memory of the Fun-Music client, against the vendor's own loop.

    python bench/stream_throughput.py [--repeat 5] [--seconds 200]

One process. A raw asyncio HTTP/1.1 server on a loopback port (in a thread; not the simulator,
so no synthesis is measured) streams a 200-second 48 kHz stereo 16-bit WAV (~38 MB, a tone made
once with numpy) as DashScope-framed SSE events of one second of audio each, base64 in JSON,
chunked transfer encoding, at full speed, then the final "stop" event.

Measured, interleaved, several times (best and median shown):
- ``FunMusicClient.stream`` (sync) and ``AsyncFunMusicClient.stream`` (async)
- the ``requests`` streaming loop from the vendor's user guide, writing to a BytesIO
Then, in a fresh measurement, the tracemalloc peak during one sync client run divided by the
audio size. Targets are printed beside the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import statistics
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import anyio
import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from funmusic_jupyter._client import AsyncFunMusicClient, FunMusicClient  # noqa: E402

RATE, CHANNELS, SAMPLE_BYTES = 48_000, 2, 2
ENDPOINT = "/api/v1/services/audio/music/generation"
PROMPT = "Warm acoustic guitar ballad for a rainy evening"
KEY = "sk-bench-not-a-real-key"


def make_wav(seconds: int) -> bytes:
    t = np.arange(seconds * RATE) / RATE
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype("<i2")
    pcm = np.repeat(tone[:, None], CHANNELS, axis=1).tobytes()
    byte_rate = RATE * CHANNELS * SAMPLE_BYTES
    header = b"".join(
        [
            b"RIFF",
            (36 + len(pcm)).to_bytes(4, "little"),
            b"WAVE",
            b"fmt ",
            (16).to_bytes(4, "little"),
            (1).to_bytes(2, "little"),
            CHANNELS.to_bytes(2, "little"),
            RATE.to_bytes(4, "little"),
            byte_rate.to_bytes(4, "little"),
            (CHANNELS * SAMPLE_BYTES).to_bytes(2, "little"),
            (8 * SAMPLE_BYTES).to_bytes(2, "little"),
            b"data",
            len(pcm).to_bytes(4, "little"),
        ]
    )
    return header + pcm


def make_events(audio: bytes, seconds: int) -> list[bytes]:
    """Each event as a ready HTTP chunk (size line, DashScope SSE framing, CRLF)."""
    step = RATE * CHANNELS * SAMPLE_BYTES  # one second of audio per event
    events = []
    rid = "bench-0000"
    for n, at in enumerate(range(0, len(audio), step)):
        data = {
            "output": {
                "audio": {
                    "data": base64.b64encode(audio[at : at + step]).decode("ascii"),
                    "expires_at": 1774937185,
                    "id": "audio_bench",
                },
                "finish_reason": "null",
            },
            "request_id": rid,
        }
        events.append(
            f"id:{n + 1}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(data)}\n\n".encode()
        )
    final = {
        "output": {
            "audio": {
                "data": "",
                "expires_at": 1774937185,
                "id": "audio_bench",
                "url": "http://127.0.0.1/unused.wav",
            },
            "extra_info": {"channels": CHANNELS, "sample_rate": str(RATE), "lyrics": "[verse]\nla"},
            "finish_reason": "stop",
        },
        "usage": {"duration": seconds},
        "request_id": rid,
    }
    last = len(events) + 1
    events.append(
        f"id:{last}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(final)}\n\n".encode()
    )
    return [b"%x\r\n" % len(e) + e + b"\r\n" for e in events] + [b"0\r\n\r\n"]


class LoopbackSSEServer:
    """A minimal keep-alive HTTP/1.1 server: any POST gets the prepared event stream."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> LoopbackSSEServer:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        server.close()
        handlers = asyncio.all_tasks(loop)
        for task in handlers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*handlers, return_exceptions=True))
        loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\nx-request-id: bench-0000\r\n\r\n"
                )
                for chunk in self.chunks:
                    writer.write(chunk)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            # The client went away, or the benchmark is over.
            pass
        finally:
            writer.close()


def run_sync_client(client: FunMusicClient) -> bytes:
    with client.stream(prompt=PROMPT, format="wav") as stream:
        for _ in stream:
            pass
    assert stream.song is not None
    return stream.song.audio


async def run_async_client(client: AsyncFunMusicClient) -> bytes:
    async with client.stream(prompt=PROMPT, format="wav") as stream:
        async for _ in stream:
            pass
    assert stream.song is not None
    return stream.song.audio


def run_reference(session: requests.Session, url: str) -> bytes:
    """The streaming loop of the vendor's user guide, writing to memory instead of a file."""
    api_key = KEY
    response = session.post(
        url,
        headers={
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "X-DashScope-SSE": "enable",
        },
        json={"model": "fun-music-v1", "input": {"prompt": PROMPT, "gender": "male"}},
        stream=True,
    )
    f = io.BytesIO()
    for line in response.iter_lines():
        if not line:
            continue
        decoded = line.decode("utf-8")
        if decoded.startswith("data:"):
            data = json.loads(decoded[5:])
            finish_reason = data.get("output", {}).get("finish_reason")
            if finish_reason == "null":
                audio_data = data["output"]["audio"].get("data", "")
                if audio_data:
                    f.write(base64.b64decode(audio_data))
            elif finish_reason == "stop":
                pass  # the guide prints "Music generation complete!" here
    return f.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=200)
    args = parser.parse_args()

    audio = make_wav(args.seconds)
    chunks = make_events(audio, args.seconds)
    mb = len(audio) / 1e6
    print(
        f"audio: {args.seconds} s WAV 48 kHz stereo 16-bit, {mb:.1f} MB, "
        f"{len(chunks) - 1} SSE events, {sum(map(len, chunks)) / 1e6:.1f} MB on the wire"
    )

    with LoopbackSSEServer(chunks) as server:
        base = f"http://127.0.0.1:{server.port}/api/v1"
        url = base + "/services/audio/music/generation"
        times: dict[str, list[float]] = {"sync client": [], "async client": [], "reference": []}
        sync_client = FunMusicClient(api_key=KEY, base_url=base)
        session = requests.Session()

        async def async_runs(n: int) -> list[float]:
            out = []
            async with AsyncFunMusicClient(api_key=KEY, base_url=base) as client:
                await run_async_client(client)  # warm-up: connection, imports
                for _ in range(n):
                    t0 = time.perf_counter()
                    got = await run_async_client(client)
                    out.append(time.perf_counter() - t0)
                    assert got == audio
            return out

        run_sync_client(sync_client)  # warm-up
        run_reference(session, url)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            got = run_sync_client(sync_client)
            times["sync client"].append(time.perf_counter() - t0)
            assert got == audio, "sync client: audio differs"
            t0 = time.perf_counter()
            got = run_reference(session, url)
            times["reference"].append(time.perf_counter() - t0)
            assert got == audio, "reference loop: audio differs"
        times["async client"] = anyio.run(async_runs, args.repeat)

        # Memory, in a fresh measurement (tracemalloc slows everything: never timed).
        tracemalloc.start()
        tracemalloc.reset_peak()
        base_mem, _ = tracemalloc.get_traced_memory()
        got = run_sync_client(sync_client)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert got == audio
        del got
        sync_client.close()
        session.close()

    header = f"\n{'':14}{'best MB/s':>10}{'median MB/s':>13}"
    print(f"{header}   (audio MB / wall time, {args.repeat} runs)")
    rates = {}
    for name, ts in times.items():
        best, median = mb / min(ts), mb / statistics.median(ts)
        rates[name] = (best, median)
        print(f"{name:14}{best:10.1f}{median:13.1f}")
    ref_best, ref_median = rates["reference"]
    for name in ("sync client", "async client"):
        best, median = rates[name]
        ok = "met" if median >= ref_median else "MISSED"
        print(
            f"{name} / reference: {best / ref_best:.2f}x best, {median / ref_median:.2f}x median"
            f"   target >= 1.0x: {ok}"
        )
    ratio = (peak - base_mem) / len(audio)
    print(
        f"sync client peak memory: {(peak - base_mem) / 1e6:.1f} MB = {ratio:.2f}x the audio"
        f"   target <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
