"""Write the teaching notebooks, execute them with nbclient, and store their real outputs.

The notebooks' source lives here, so that a change to the renderer or the simulator is one
command away from notebooks whose stored outputs (compared by nbval) are real again:

    python notebooks/build_notebooks.py [NAME ...]     # default: every notebook

Stored outputs are the executed ones, with two changes that keep the files small and free of
machine-specific paths: embedded base64 audio becomes a placeholder (the same one the nbval
sanitize file maps audio to), and the notebooks folder's absolute path becomes relative.
The kernels run without any DashScope key, on the simulator, whatever the shell has set.

It also writes ``teaching-notebooks.txt``, the list of notebooks that ``python -m pytest``
collects (the root ``conftest.py`` reads it): any other notebook in this folder is a user's own.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parent
IGNORE = ["nbval-ignore-output"]
RAISES = ["raises-exception"]


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# --------------------------------------------------------------------------------------------
QUICKSTART = [
    md("""
# Quickstart: your first songs

This notebook makes songs with Alibaba Cloud Model Studio's **Fun-Music** model, right here in
Jupyter.

**No API key? No problem.** With no key configured, every song is made by the package's offline
**simulator**: it speaks the same protocol as the real service and writes real, listenable
(if simple) songs, on your own machine, for free. Everything it makes is marked *SIMULATED*.
To use Fun-Music itself, set the environment variable `DASHSCOPE_API_KEY` before starting
Jupyter; the same cells then call the service, which bills each song by the second.

> The outputs stored in this file have their audio removed to keep it small. Run the cells to
> hear the songs.
"""),
    md("""
## Load the extension

This adds the `%%funmusic` cell magic (and the `%funmusic` line magic) to the notebook.
"""),
    code("%load_ext funmusic_jupyter"),
    md("""
## A song from a prompt

Describe the song you want in the cell. Fun-Music writes the lyrics and sings them.

`--wait` makes the cell wait until the song is ready, then show it once: a player, the lyrics
and a table of details (length, cost, where the file went). `--out breakfast` also keeps the
song in a Python variable called `breakfast`.
"""),
    code("""
%%funmusic --wait --out breakfast
A cheerful ukulele song about a lazy Sunday breakfast
"""),
    md("""
## A song from your own lyrics

When the cell has structure tags such as `[verse]` and `[chorus]` on lines of their own, it is
sung as **lyrics**. `--gender male` picks a male voice (the default is `female`).

Why `--no-stream`? Songs stream by default, so you hear about them as they arrive, but the
service only streams English lyrics of **200 to 250 words**. Short lyrics like these are made in
one go instead. The magic would notice and do that on its own, with a note saying so;
`--no-stream` asks for it up front. (The next notebook, `02_writing_lyrics`, has every limit.)
"""),
    code("""
%%funmusic --wait --no-stream --gender male --out morning
[verse]
Morning sunlight slips through the curtain,
Coffee aroma fills up the room.

[chorus]
Take it slow, there's no hurry,
Life should be this carefree.
"""),
    md("""
## Where the files went

Every song is saved to `./funmusic-output/` (next to this notebook) **before** it is shown, so
nothing is lost when you clear an output, close the browser, or the download link expires (the
service keeps its copy for 24 hours only). Each audio file has a JSON *sidecar* with the same
name, holding everything the service said about the song.

The file names start with the date and time, then the song's first line, then the start of the
request id, so they sort by date and never overwrite each other.
"""),
    code("""
from pathlib import Path

for song in (breakfast, morning):
    audio = song.saved_path.relative_to(Path.cwd())
    print(audio)
    print(audio.with_suffix(".json"))
"""),
    md("""
Here is `morning`'s sidecar. The `request_id` is what to quote if you ever ask Alibaba Cloud's
support about a song; `duration` is the billed length in seconds.
"""),
    code("""
print(morning.saved_path.with_suffix(".json").read_text(encoding="utf-8"))
"""),
    md("""
The `Song` objects have all of it too, and a player of their own: `morning.duration`,
`morning.lyrics`, `morning.save("elsewhere.mp3")`, or just `morning` at the end of a cell.
"""),
    code("""
print(morning.duration, "seconds,", morning.format, morning.mime_type)
print(morning.lyrics)
"""),
    md("""
## Keep working while a song streams in

Without `--wait`, the cell returns at once: the song is made in the background and its output
updates in place, from *waiting* to *streaming* to the finished player. Run other cells in the
meantime. (This output is different every time, so it is not checked by the notebook tests.)
"""),
    code("""
%%funmusic --out stroll
A relaxed jazz stroll through the city at night
""", IGNORE),
    md("""
`%funmusic status` lists this kernel's songs. The jazz stroll is most likely still *streaming*
here (or already *done*, if you took your time): its output above changes on its own.
"""),
    code("%funmusic status", IGNORE),
    md("""
## Stopping a song

`%funmusic stop 4` stops song number 4, and `%funmusic stop` on its own stops every song that is
running. A stopped song is not thrown away: what had arrived is saved as a `….partial.mp3` file
with its own sidecar.

So as not to stop the jazz stroll, start one more song, just to stop it. Every song has a number,
shown in its output (*job 4*) and by `%funmusic status`. Run from the top in a fresh kernel, this
notebook's songs are 1 (breakfast), 2 (morning), 3 (the stroll) and 4, this one:
"""),
    code("""
%%funmusic
A long, slow ballad that we stop after a few seconds
""", IGNORE),
    code("""
import time

time.sleep(4)  # let a few seconds of it arrive first
"""),
    code("%funmusic stop 4", IGNORE),
    md("""
The jazz stroll carries on meanwhile; once it is done, `stroll` holds it, like `breakfast` and
`morning`.
"""),
    md("""
## Next

- `02_writing_lyrics.ipynb`: structure tags, the length limits, and how to fix a refused text.
- `03_panel.ipynb`: the same songs with buttons.
- `04_python_api.ipynb`: `generate` and `stream` from Python, and handling errors.

`%%funmusic?` shows every option of the magic.
"""),
]

# --------------------------------------------------------------------------------------------
WRITING = [
    md("""
# Writing lyrics (and prompts) that Fun-Music accepts

A song starts from one of two things:

- a **prompt**: a description (*"Melancholic piano, rainy night yearning"*). The model writes
  the lyrics.
- **lyrics**: the words to sing, organised with structure tags.

Every request is checked *before* it is sent: a refused request costs nothing, and the message
says what to change. This notebook shows the rules. It runs on the offline simulator when no
API key is set.
"""),
    code("""
%load_ext funmusic_jupyter
import funmusic_jupyter as fm
"""),
    md("""
## Structure tags

Put each tag on a line of its own. Fun-Music knows five:

| tag | what it is |
|---|---|
| `[intro]` | the opening, often without words |
| `[verse]` | the story: different words each time |
| `[chorus]` | the hook that comes back |
| `[bridge]` | a change of mood before the last chorus |
| `[outro]` | the ending |

Tags are not counted as lyrics. A tag it does not know still goes through, with a warning, as
`[hook]` does here. `fm.build_request` runs the same checks as a real call, without sending
anything:
"""),
    code("""
request = fm.build_request(lyrics=\"\"\"
[verse]
Streetlights hum a quiet tune
[hook]
Stay until the morning
\"\"\")
print(request.mode, request.language, request.count, request.unit)
for warning in request.warnings:
    print("warning:", warning)
"""),
    md("""
## The limits, for each mode

How much text is allowed depends on the mode, the language, and whether the song is streamed.
Most limits count **characters** (spaces and tag lines do not count); streamed English lyrics
count **words**, and a streamed prompt counts Chinese characters and English words together.
This table comes straight from the rules the package enforces:
"""),
    code("""
from IPython.display import Markdown
from funmusic_jupyter import limit_for

rows = ["| text | language | not streaming | streaming |", "|---|---|---|---|"]
for mode, language, label in [
    ("lyrics", "zh", "Chinese"),
    ("lyrics", "en", "English"),
    ("prompt", "en", "Chinese or English"),
]:
    cells = []
    for stream in (False, True):
        limit = limit_for(mode, language, stream)
        cells.append(f"{limit.low:,}–{limit.high:,} {limit.unit}")
    rows.append(f"| {mode} | {label} | {cells[0]} | {cells[1]} |")
Markdown("\\n".join(rows))
"""),
    md("""
Only Chinese and English are sung. Text with Japanese kana, Korean hangul or another script is
refused before sending.

## What a refused request looks like

Streamed English lyrics need 200 to 250 words. When streaming is only the default, the magic
makes shorter (or longer) lyrics without streaming and adds a note. `--stream` insists on
streaming, and then these short lyrics are refused: the cell stops with a one-line error, and
nothing is sent or billed:
"""),
    code("""
%%funmusic --wait --stream
[verse]
Streetlights hum a quiet tune
[chorus]
Stay until the morning
""", RAISES),
    md("""
The message says what was expected, what arrived, and how to fix it. Two fixes: write more
(200 words or more), or don't stream (leave `--stream` out, or say `--no-stream`). Without
streaming, English lyrics may have 5 to 2,000 characters:
"""),
    code("""
%%funmusic --wait --no-stream
[verse]
Streetlights hum a quiet tune
[chorus]
Stay until the morning
"""),
    md("""
In Python the same problem is a `fm.ValidationError`, raised before anything is sent:
"""),
    code("""
for text in ["[verse]\\nさくら さくら", "[verse]\\n" + "月光洒在小河上" * 5]:
    try:
        fm.build_request(text=text, stream=True)
    except fm.ValidationError as error:
        print(error)
"""),
    md("""
## Prompt or lyrics?

In a `%%funmusic` cell (and in the panel's *Auto* mode) the text is **lyrics** when it has at
least one structure-tag line, and a **prompt** otherwise. `--lyrics` or `--prompt` decides for
you when you want the other one:
"""),
    code("""
for text in [
    "Upbeat summer dance with bright synths",
    "[verse]\\nSunlight on the water",
    "Sunlight on the water, no tags here",
]:
    print(f"{fm.build_request(text=text).mode:<7} ← {text!r}")
print(fm.build_request(text="Sunlight on the water", mode="lyrics").mode)
"""),
    md("""
**Both given?** The service sings the lyrics and ignores the prompt, so the package does the
same, and says so with a `FunMusicWarning`:
"""),
    code("""
import warnings

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    song = fm.generate(
        prompt="A sad song about rain",
        lyrics="[verse]\\nSunny days are here again\\n[chorus]\\nDance along with me",
    )
for warning in caught:
    print(f"{warning.category.__name__}: {warning.message}")
song
"""),
    md("""
The song sings the lyrics, and its title is their first line, not the prompt.
"""),
]

# --------------------------------------------------------------------------------------------
PANEL = [
    md("""
# The panel: songs with buttons

`FunMusicPanel` does what `%%funmusic` does, with a text box and buttons. Type a prompt or
lyrics, pick the voice and the format, and press **Generate**. The song is made in the
background, so you can keep using the notebook; each finished song appears under the panel and
joins the list of this session's songs, where **Show** brings any of them back.

With no API key set, the panel says it is using the offline simulator, and so it does.
"""),
    code("""
from funmusic_jupyter import FunMusicPanel

panel = FunMusicPanel()
panel
"""),
    md("""
A few things to try in the panel above:

- The line under the text box counts what you typed against the limit for the current mode,
  language and streaming setting. Go over (or under) the limit and **Generate** is disabled,
  with the reason written below.
- **Cancel** stops a song. What had arrived is kept, as a `….partial.mp3` file.
- Every song is saved in `./funmusic-output/`; the panel shows where.

## Driving the panel from code

Every control is a widget you can read and set from Python, which is handy for lessons and
tests. **Streaming** is *Auto* by default: a song is streamed when its text allows it, and made
in one go otherwise, with a note. Short English lyrics like these cannot be streamed (streaming
needs 200 to 250 words), so the panel will make them without streaming and says so:
"""),
    code("""
panel.text.value = \"\"\"[verse]
Paper boats on a puddle sea
[chorus]
Sail away, sail away with me\"\"\"
print("Streaming:", panel.stream.value)
print("Generate disabled:", panel.generate_button.disabled)
for note in panel.notes:
    print(note)
"""),
    md("""
*On* insists on streaming, so these lyrics are refused, and *Off* never streams. `%%funmusic`
follows the very same rules: `--stream` is *On*, `--no-stream` is *Off*.
"""),
    code("""
panel.stream.value = True
print("Generate disabled:", panel.generate_button.disabled)
print(panel.reason)
"""),
    code("""
panel.stream.value = "auto"
"""),
    md("""
`generate_button.click()` presses the button. It returns at once; `panel.wait()` blocks until the
song is done and returns it (the panel above updates as it goes):
"""),
    code("""
panel.generate_button.click()
song = panel.wait()
song
"""),
    code("""
panel.history
"""),
    md("""
## When something goes wrong

Errors appear inside the panel, never as a traceback, and the panel stays ready for the next
song. The simulator can fail on request: the `X-FunMusic-Fault` header asks it for a fault, here
a `503 ServiceUnavailable`. (Fault injection only works with the simulator, so this panel asks
for it explicitly with `backend="simulator"`.)
"""),
    code("""
broken = FunMusicPanel(
    backend="simulator",
    headers={"X-FunMusic-Fault": "status=503"},
    text="[verse]\\nThis one will not make it\\n[chorus]\\nBut the panel carries on",
    stream=False,
)
broken
"""),
    code("""
broken.generate_button.click()
print(broken.wait())
print("Generate disabled:", broken.generate_button.disabled)
"""),
    md("""
The panel shows what the service answered: the error code, its message and the request id. The
same card, outside the panel:
"""),
    code("""
from IPython.display import HTML

HTML(broken.result.value)
"""),
]

# --------------------------------------------------------------------------------------------
PYTHON_API = [
    md("""
# The Python API

Everything the magic and the panel do is available as plain Python:

- `fm.generate(...)` makes a song and returns it (a `Song`); `await fm.agenerate(...)` is the
  async twin.
- `fm.stream(...)` gives you the audio chunk by chunk as it arrives; `fm.astream(...)` is the
  async twin.

They use the offline simulator when no API key is set, as here.
"""),
    code("""
import funmusic_jupyter as fm
"""),
    md("""
## `generate`: one call, one song

Give it `lyrics=` or `prompt=` (or neutral `text=`, decided as in the magic), plus `gender=` and
`format=` if you like. It blocks until the song is ready. A `Song` displays as a player with its
lyrics and details:
"""),
    code("""
song = fm.generate(
    lyrics=\"\"\"[verse]
Rain taps softly on the window
[chorus]
Stay inside and sing with me\"\"\",
    gender="female",
    format="mp3",
)
song
"""),
    code("""
print(song.duration, "s,", song.format, song.mime_type, song.sample_rate, "Hz")
print("simulated:", song.simulated)
print("first line:", song.first_line())
"""),
    md("""
## `stream`: watch it arrive

`fm.stream(...)` is used in a `with` block and iterated: each `fm.AudioChunk` says how much audio
has arrived so far, and the last event is `fm.StreamFinished`, after which `stream.song` is the
whole song. This loop prints a progress line about every five seconds of audio.

(Streaming has its own limits: here a prompt, which needs at least 5 words. The timings differ
on every run, so this output is not checked by the notebook tests.)
"""),
    code("""
with fm.stream(prompt="A happy song about learning Python") as stream:
    for event in stream:
        if isinstance(event, fm.AudioChunk) and event.index % 5 == 0:
            print(f"{event.seconds_so_far:5.1f} s of audio after {event.elapsed:4.1f} s")
streamed = stream.song
print("done:", streamed.duration, "s")
""", IGNORE),
    code("""
streamed
"""),
    md("""
## Saving, and reading the metadata back

`song.save(path)` writes the audio and a JSON sidecar beside it (the magic and the panel do this
for you, in `./funmusic-output/`). The sidecar has everything but the audio:
"""),
    code("""
import json
from pathlib import Path

path = song.save("funmusic-output/rain-on-the-window.mp3")
print(path.relative_to(Path.cwd()))
meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
for key in ("complete", "simulated", "model", "mode", "gender", "format", "duration"):
    print(f"{key:>10}: {meta[key]}")
"""),
    md("""
## Handling errors

Every error has the same root, `fm.FunMusicError`. A request the service would refuse is a
`fm.ValidationError`, raised *before* anything is sent. Errors from the service are `fm.APIError`
subclasses carrying `status_code`, `code` (DashScope's), `message` and `request_id`.

To see them without breaking anything, the simulator fails on request: the `X-FunMusic-Fault`
header picks a fault. These calls say `backend="simulator"` because only the simulator knows
that header.

### Throttled, then fine

A `429 Throttling` answer means *too many requests, try again later*, with a `Retry-After`
delay. Nothing was generated, so nothing was billed: the client waits and retries on its own (a
few times, for a bounded time). Here the simulator throttles the first attempt only, so the
retry succeeds:
"""),
    code("""
LYRICS = "[verse]\\nOne more time\\n[chorus]\\nKnock and try again"
song = fm.generate(lyrics=LYRICS, backend="simulator", headers={"X-FunMusic-Fault": "throttle=1x1"})
print(song)
"""),
    md("""
### Throttled, and giving up

When every attempt is throttled, the client stops after its retries and raises
`fm.RateLimitError`. It is safe to try again later:
"""),
    code("""
try:
    fm.generate(lyrics=LYRICS, backend="simulator", headers={"X-FunMusic-Fault": "throttle=1"})
except fm.RateLimitError as error:
    print(type(error).__name__, error.status_code, error.code)
    print(error.message)
    print("retry after", error.retry_after, "s")
"""),
    md("""
The client never retries on its own once a song may have started (an error 500, a timeout, a
broken stream): the service bills by the second, and a second attempt could be billed twice.

### A broken stream

If the connection breaks in the middle of a song, you get `fm.StreamInterruptedError`, and
nothing that arrived is lost: the error's `partial_audio` (and the stream's) holds every byte,
ready to be saved or played. Here the simulator cuts the stream after 3 chunks:
"""),
    code("""
chunks = []
try:
    with fm.stream(
        prompt="A happy song about learning Python",
        backend="simulator",
        headers={"X-FunMusic-Fault": "drop-after=3"},
    ) as stream:
        for event in stream:
            chunks.append(event.data)
except fm.StreamInterruptedError as error:
    print(type(error).__name__, "after", len(chunks), "chunks")
    print("partial_audio holds every byte:", error.partial_audio == b"".join(chunks))
    print("and so does the stream:", stream.partial_audio == error.partial_audio)
    partial = Path("funmusic-output/broken-stream.partial.mp3")
    partial.write_bytes(error.partial_audio)
    print("saved", partial)
"""),
    md("""
Those first seconds are a playable MP3:
"""),
    code("""
from IPython.display import Audio

Audio(filename=str(partial))
""", IGNORE),
    md("""
### Async

In async code use `fm.agenerate`, `fm.astream`, or one `fm.AsyncFunMusicClient` for many songs
(it keeps its connections open between them). Notebooks allow `await` at the top level:
"""),
    code("""
async with fm.AsyncFunMusicClient() as client:
    song = await client.generate(lyrics=LYRICS)
print(song)
"""),
]

BOOKS = {
    "01_quickstart": QUICKSTART,
    "02_writing_lyrics": WRITING,
    "03_panel": PANEL,
    "04_python_api": PYTHON_API,
}

_AUDIO = re.compile(r"data:audio/([a-z0-9.+-]+);base64,[A-Za-z0-9+/=\s]+")
# The song card's waveform picture: small, but decoded MP3 may differ in the last bit between
# CPUs, so the stored notebooks keep a placeholder as for the audio.
_WAVEFORM = re.compile(
    r'(class="funmusic-waveform" [^>]*src="data:image/png;base64,)[A-Za-z0-9+/=]+'
)


def _scrub(text: str) -> str:
    text = _AUDIO.sub(r"data:audio/\1;base64,AUDIO", text)
    text = _WAVEFORM.sub(r"\1WAVEFORM", text)
    return text.replace(str(NOTEBOOKS) + "/", "")


def scrub_outputs(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = _scrub(output["text"])
            for mime, value in list(output.get("data", {}).items()):
                if isinstance(value, str):
                    output["data"][mime] = _scrub(value)
                elif isinstance(value, list):
                    output["data"][mime] = [_scrub(v) for v in value]
            if output.get("output_type") == "error":
                output["traceback"] = [_scrub(t) for t in output["traceback"]]
    nb.metadata.pop("widgets", None)


def build(name: str) -> None:
    nb = new_notebook(cells=BOOKS[name])
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3", "language": "python", "name": "python3"
    }
    nb.metadata["language_info"] = {"name": "python"}
    start = time.monotonic()
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        record_timing=False,
        store_widget_state=False,
    )
    client.execute()
    scrub_outputs(nb)
    nb.metadata["language_info"] = {"name": "python"}
    path = NOTEBOOKS / f"{name}.ipynb"
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"{path.name}: {time.monotonic() - start:.1f} s, {path.stat().st_size:,} bytes")


MANIFEST = NOTEBOOKS / "teaching-notebooks.txt"


def write_manifest() -> None:
    names = "".join(f"{name}.ipynb\n" for name in BOOKS)
    MANIFEST.write_text(
        "# Written by build_notebooks.py: the notebooks python -m pytest runs under nbval.\n"
        "# Any other notebook saved in this folder is not collected.\n" + names,
        encoding="utf-8",
    )


if __name__ == "__main__":
    write_manifest()
    # The kernels inherit this environment: never let a real key (and its bill) into them.
    for variable in [v for v in os.environ if v.startswith("DASHSCOPE_")]:
        del os.environ[variable]
    os.environ["HOME"] = tempfile.mkdtemp(prefix="funmusic-notebooks-home-")  # no ~/.dashscope
    # Stored outputs are first takes: a song already in ./funmusic-output would be reused.
    previous = NOTEBOOKS / "funmusic-output.previous"
    if (NOTEBOOKS / "funmusic-output").is_dir():
        shutil.rmtree(previous, ignore_errors=True)
        (NOTEBOOKS / "funmusic-output").rename(previous)
    for name in sys.argv[1:] or list(BOOKS):
        build(name)
