"""``01_quickstart.ipynb`` under Run All: every cell queued at once, each run as the last ends.

nbclient executes a notebook exactly so. Its streaming demo (the jazz stroll, started in the
background) must still finish: the stop demo stops only the song started for it. A last cell,
added here, waits for every song of the kernel and reports how each ended.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "01_quickstart.ipynb"

REPORT = """
import json
from funmusic_jupyter._worker import current_worker

jobs = current_worker().jobs()
for job in jobs:
    job.wait(180)
print(json.dumps({
    "jobs": [
        {"id": j.id, "state": j.state, "text": j.request.text,
         "partial": j.partial_path is not None and j.partial_path.exists()}
        for j in jobs
    ],
    "stroll": type(globals().get("stroll")).__name__,
}))
"""


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.extend(str(v) for k, v in output.get("data", {}).items() if k == "text/plain")
    return "".join(parts)


@pytest.mark.kernel
def test_run_all_stops_only_the_song_started_to_be_stopped(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(new_code_cell(REPORT))
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # songs are saved under tmp_path
    )
    client.execute()

    report = json.loads(_text(nb.cells[-1]))
    jobs = {job["id"]: job for job in report["jobs"]}
    (stroll,) = [job for job in jobs.values() if "jazz stroll" in job["text"]]
    assert stroll["state"] == "done", stroll  # the streaming demo was not cancelled
    assert report["stroll"] == "Song"
    (ballad,) = [job for job in jobs.values() if "stop after a few seconds" in job["text"]]
    assert ballad["state"] == "cancelled" and ballad["partial"], ballad
    assert all(job["state"] == "done" for job in jobs.values() if job is not ballad)

    # The stop cell named the ballad, and only the ballad.
    (stop_cell,) = [c for c in nb.cells if c.source.startswith("%funmusic stop")]
    assert stop_cell.source == f"%funmusic stop {ballad['id']}"
    stopped = _text(stop_cell)
    assert re.match(
        rf"Song {ballad['id']}: Stopped at \d+ s: partial song saved to funmusic-output/", stopped
    ), stopped
    assert stopped.count("Stopped at") == 1
