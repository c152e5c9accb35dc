"""The vendor's own streaming sample (the English user guide's Python ``requests`` code),
run unchanged against the simulator, writes a playable ``output.mp3``.

The sample is copied verbatim from the user guide; the test replaces only its URL and runs it in
a temporary working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_simulator_audio import check_mp3

from funmusic_jupyter.simulator import SimulatorServer

VENDOR_URL = "https://dashscope.aliyuncs.com/api/v1/services/audio/tts/SpeechSynthesizer"
SEED = Path("/work/shared/seeds/fun-music-user-guide.en.txt")
KEY = "sk-vendor-sample-0000"

# Verbatim from the user guide, "Streaming" > "Python".
VENDOR_STREAMING_SAMPLE = r'''
import requests
import os
import json
import base64

api_key = os.getenv("DASHSCOPE_API_KEY")
url = "https://dashscope.aliyuncs.com/api/v1/services/audio/tts/SpeechSynthesizer"

response = requests.post(url,
    headers={
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "X-DashScope-SSE": "enable"
    },
    json={
        "model": "fun-music-v1",
        "input": {
            "prompt": "High-energy electronic dance music, synthesizer effects, full of energy, suitable for fitness and workout scenarios",
            "gender": "male"
        }
    },
    stream=True
)

output_file = "output.mp3"
with open(output_file, "wb") as f:
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
                print(f"Music generation complete! Saved to {output_file}")

'''


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0, api_key=KEY) as server:
        yield server


def test_the_vendor_streaming_sample_writes_a_playable_mp3(sim: SimulatorServer,
                                                           tmp_path: Path) -> None:
    assert VENDOR_STREAMING_SAMPLE.count(VENDOR_URL) == 1
    local_url = sim.base_url + VENDOR_URL.split("/api/v1")[1]
    script = VENDOR_STREAMING_SAMPLE.replace(VENDOR_URL, local_url)
    (tmp_path / "sample.py").write_text(script, encoding="utf-8")
    env = {**os.environ, "DASHSCOPE_API_KEY": KEY}
    done = subprocess.run([sys.executable, "sample.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Music generation complete! Saved to output.mp3\n"
    written = (tmp_path / "output.mp3").read_bytes()

    # The same request without streaming: same song (synthesis is deterministic), and its
    # billed duration is what the file must last.
    body = {"model": "fun-music-v1", "input": {
        "prompt": "High-energy electronic dance music, synthesizer effects, full of energy, "
                  "suitable for fitness and workout scenarios",
        "gender": "male"}}
    r = httpx.post(sim.base_url + VENDOR_URL.split("/api/v1")[1], json=body, timeout=120,
                   headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200
    check_mp3(written, duration=r.json()["usage"]["duration"])
    assert written == httpx.get(r.json()["output"]["audio"]["url"], timeout=60).content


def test_the_sample_is_the_vendor_text() -> None:
    if not SEED.exists():
        pytest.skip(f"the vendor seed {SEED} is not in this checkout")
    assert VENDOR_STREAMING_SAMPLE.strip("\n") in SEED.read_text(encoding="utf-8")
