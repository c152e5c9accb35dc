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

# --------------------------------------------------------------------------------------------
# The Chinese teaching notebooks (notebooks/zh/): the same lessons for readers of Chinese, with
# Chinese prompts and lyrics. Each sets the language in its first code cell: the tests pin the
# locale to C.UTF-8, and a notebook that relied on ``auto`` would speak English there.
ZH_LANGUAGE = '%config FunMusicMagics.language = "zh"'

# Short lyrics: sung without streaming (Chinese lyrics stream only with 300-350 characters).
ZH_SHORT_LYRICS = """
[verse]
路灯轻轻哼着一支歌
[chorus]
留下来陪我到天亮
""".strip("\n")

# Long enough to stream: 300-350 characters, the length the service recommends. No punctuation,
# so the package's count (non-space characters outside tag lines) is the number of Han
# characters, and a reader can check it with one regular expression.
ZH_STREAM_LYRICS = """
[intro]

[verse]
放学铃声响过操场的尽头
夕阳把影子拉得好长好长
书包里装着没写完的作业
还有同桌偷偷塞来的糖

[chorus]
沿着那条开满桂花的小路
我们一边走一边轻轻地唱
风吹过树梢也跟着和声
明天的故事还在前方

[verse]
街角的小店飘来烤红薯的香
老爷爷笑着说慢点别着凉
路灯一盏一盏悄悄地亮起
像星星落在回家的路上

[chorus]
沿着那条开满桂花的小路
我们一边走一边轻轻地唱
风吹过树梢也跟着和声
明天的故事还在前方

[verse]
周末约好去河边放风筝
纸做的燕子飞过了山岗
线在手里心在天上
笑声落满了整个村庄

[bridge]
也许有一天我们会走散
去到很远很远的地方
可是只要闻到桂花香
就会想起这段时光
那条小路也会记得我们

[chorus]
沿着那条开满桂花的小路
我们一边走一边轻轻地唱
风吹过树梢也跟着和声
明天的故事还在前方

[outro]
路的尽头是家的方向
明天的故事还在前方
我们还会一起轻轻地唱
""".strip("\n")

_HAN = re.compile(r"[\u4e00-\u9fff]")
assert 300 <= len(_HAN.findall(ZH_STREAM_LYRICS)) <= 350, len(_HAN.findall(ZH_STREAM_LYRICS))
assert 5 <= len(_HAN.findall(ZH_SHORT_LYRICS)) < 300

QUICKSTART_ZH = [
    md("""
# 快速上手：写出你的第一首歌

这个 Notebook 用阿里云百炼的 **Fun-Music** 模型写歌，全程就在 Jupyter 里完成。

**没有 API Key 也没关系。** 没有配置 Key 时，每首歌都由本包自带的离线**模拟器**生成：它和真实
服务使用同样的协议，在你自己的电脑上免费生成真正可以播放的歌（虽然简单了些）。它生成的一切都
标有 *SIMULATED*（模拟）字样。想用真正的 Fun-Music，请在启动 Jupyter 之前设置环境变量
`DASHSCOPE_API_KEY`；同样的单元格就会调用真实服务，按歌曲时长逐秒计费。

> 为了让文件保持小巧，这里保存的输出去掉了音频。运行单元格就能听到歌曲。
"""),
    md("""
## 加载扩展，切换到中文

第一行为 Notebook 加上 `%%funmusic` 单元格魔法命令（以及 `%funmusic` 行魔法命令）。第二行让它
的输出（进度、说明、歌曲卡片、错误提示）都用中文显示。不写第二行时，语言跟随系统的 locale
（`LC_ALL`、`LC_MESSAGES`、`LANG` 这几个环境变量）。服务返回的错误码、错误信息和 request id
始终保持原文，方便你搜索或提供给技术支持。
"""),
    code(f"""
%load_ext funmusic_jupyter
{ZH_LANGUAGE}
"""),
    md("""
## 用提示词写一首歌

在单元格里描述你想要的歌，Fun-Music 会自己写词并演唱。

`--wait` 让单元格等到歌曲完成后再一次性显示出来：播放器、歌词和一张详细信息表（时长、费用、
文件保存的位置）。`--out breakfast` 还会把这首歌存进名为 `breakfast` 的 Python 变量。
"""),
    code("""
%%funmusic --wait --out breakfast
轻快的尤克里里，周日早晨，慢悠悠的早餐，阳光和咖啡
"""),
    md("""
## 用自己的歌词写歌

单元格里有单独成行的结构标签（比如 `[verse]` 和 `[chorus]`）时，内容会被当作**歌词**来唱。
`--gender male` 选择男声（默认是女声 `female`）。

为什么要加 `--no-stream`？歌曲默认是流式生成的，边生成边传回来；但服务只对 **300 到 350 个字**
的中文歌词提供流式生成。像下面这样的短歌词会一次性生成。即使不写 `--no-stream`，魔法命令也会
发现这一点，自动改为非流式，并附一条说明；写上它只是提前说清楚。（下一个 Notebook
`02_写歌词` 会讲清楚所有的限制，并写一首够长、可以流式生成的歌。）
"""),
    code("""
%%funmusic --wait --no-stream --gender male --out morning
[verse]
清晨的阳光洒进窗台
咖啡的香气飘满房间

[chorus]
慢慢来不用着急
生活本该这样自在
"""),
    md("""
## 文件保存在哪里

每首歌在显示之前，都会先保存到 `./funmusic-output/`（就在这个 Notebook 旁边）。所以无论是清除
了输出、关掉了浏览器，还是下载链接过期了（服务只保留 24 小时），歌曲都不会丢。每个音频文件都有
一个同名的 JSON *附属文件*（sidecar），记录了服务返回的关于这首歌的全部信息。

文件名依次是日期和时间、歌曲的第一行、request id 的前几位，所以文件按日期排列，也不会互相
覆盖。第一行是中文时，文件名里也保留中文。
"""),
    code("""
from pathlib import Path

for song in (breakfast, morning):
    audio = song.saved_path.relative_to(Path.cwd())
    print(audio)
    print(audio.with_suffix(".json"))
"""),
    md("""
下面是 `morning` 的 sidecar。以后如果要就某首歌咨询阿里云技术支持，请提供其中的
`request_id`；`duration` 是计费时长，单位是秒。
"""),
    code("""
print(morning.saved_path.with_suffix(".json").read_text(encoding="utf-8"))
"""),
    md("""
`Song` 对象里也有这些信息，还自带一个播放器：`morning.duration`、`morning.lyrics`、
`morning.save("elsewhere.mp3")`，或者把 `morning` 单独放在单元格的最后一行。
"""),
    code("""
print(f"{morning.duration} 秒，{morning.format}，{morning.mime_type}")
print(morning.lyrics)
"""),
    md("""
## 歌曲在后台生成时，继续做别的事

不加 `--wait` 时，单元格会立即返回：歌曲在后台生成，输出区原地更新，从等待、流式传输，一直到
最后的播放器。这期间你可以运行别的单元格。（这个输出每次都不一样，所以 Notebook 测试不检查
它。）
"""),
    code("""
%%funmusic --out stroll
夜晚的城市里，一段悠闲的爵士漫步
""", IGNORE),
    md("""
`%funmusic status` 列出这个内核里的所有歌曲。这时爵士漫步多半还在流式传输（如果你动作慢一点，
也可能已经完成了）：上面那个输出会自己变化。
"""),
    code("%funmusic status", IGNORE),
    md("""
## 停止一首歌

`%funmusic stop 4` 停止 4 号歌曲，单独一个 `%funmusic stop` 则停止所有正在生成的歌曲。被停止的
歌曲不会被丢掉：已经收到的部分保存为 `….partial.mp3` 文件，并有自己的 sidecar。

为了不打断爵士漫步，我们再开始一首歌，专门用来停止。每首歌都有一个编号，显示在它的输出里，
`%funmusic status` 也会列出。在新内核里从头运行时，这个 Notebook 的歌曲依次是 1（早餐）、
2（清晨）、3（爵士漫步）和 4，也就是下面这首：
"""),
    code("""
%%funmusic
一首很长很慢的抒情歌，我们几秒钟后就把它停下
""", IGNORE),
    code("""
import time

time.sleep(4)  # 先让它传回几秒钟的音频
"""),
    code("%funmusic stop 4", IGNORE),
    md("""
与此同时，爵士漫步还在继续；完成之后，`stroll` 里就是这首歌，和 `breakfast`、`morning` 一样。
"""),
    md("""
## 下一步

- `02_写歌词.ipynb`：结构标签、字数限制、被拒绝的文本怎么改，以及一首可以流式生成的完整的歌。
- 上一级目录里还有两个英文 Notebook：`03_panel.ipynb`（用按钮写歌的面板
  `FunMusicPanel`，`FunMusicPanel(language="zh")` 显示中文界面）和 `04_python_api.ipynb`
  （在 Python 中调用 `generate` 和 `stream`，以及处理错误）。

`%%funmusic?` 列出魔法命令的全部选项。
"""),
]

WRITING_ZH = [
    md("""
# 写出 Fun-Music 能接受的歌词（和提示词）

一首歌从下面两种内容之一开始：

- **提示词**：一段描述（*“忧郁的钢琴曲，雨夜里的思念”*），由模型来写歌词。
- **歌词**：要唱的词，用结构标签组织起来。

每个请求在发送*之前*都会先检查：被拒绝的请求不花钱，提示信息会告诉你该改什么。这个 Notebook
演示这些规则，最后写一首够长、可以边生成边听的中文歌。没有配置 API Key 时，它在离线模拟器上
运行。

第一个单元格照例加载扩展，并把输出切换成中文。`%config` 这一行管的是魔法命令 `%%funmusic`
和歌曲卡片，也管这个 Notebook 里直接调用的 Python 函数（`fm.build_request`、`fm.generate`）的
报错和警告：加载了扩展之后，它们都跟随同一个设置。
"""),
    code(f"""
%load_ext funmusic_jupyter
{ZH_LANGUAGE}
import re

import funmusic_jupyter as fm
"""),
    md("""
## 结构标签

每个标签单独占一行。Fun-Music 认识五个：

| 标签 | 作用 |
|---|---|
| `[intro]` | 前奏，通常没有歌词 |
| `[verse]` | 主歌：讲故事，每一段的词都不一样 |
| `[chorus]` | 副歌：反复出现、让人记住的部分 |
| `[bridge]` | 桥段：最后一次副歌之前，换一种情绪 |
| `[outro]` | 尾声 |

标签不算在歌词的字数里。不认识的标签也能发送，但会有一条警告，比如这里的 `[hook]`。
`fm.build_request` 执行和真实调用完全相同的检查，但什么都不发送：
"""),
    code('''
request = fm.build_request(lyrics="""
[verse]
路灯轻轻哼着一支歌
[hook]
留下来陪我到天亮
""")
print(request.mode, request.language, request.count, request.unit)
for warning in request.warnings:
    print("警告：", warning)
'''),
    md("""
## 各种模式的长度限制

允许多长的文本，取决于模式、语言，以及是否流式生成。中文歌词按**字**数：空格和标签行不算，标点
算一个字。英文按**字符**数，流式的英文歌词则按**单词**数；流式的提示词把汉字和英文单词合在一起
数。下表直接来自本包执行的规则：
"""),
    code("""
from IPython.display import Markdown
from funmusic_jupyter import limit_for

UNITS = {  # 中文按“字”数，英文按“字符”或“单词”数
    ("zh", "characters"): "个字",
    ("en", "characters"): "个字符",
    ("en", "words"): "个单词",
    ("zh", "Chinese characters or English words"): "个汉字或英文单词",
}
rows = ["| 文本 | 语言 | 非流式 | 流式 |", "|---|---|---|---|"]
for mode, language, name, label in [
    ("lyrics", "zh", "歌词", "中文"),
    ("lyrics", "en", "歌词", "英文"),
    ("prompt", "zh", "提示词", "中文或英文"),
]:
    cells = []
    for stream in (False, True):
        limit = limit_for(mode, language, stream)
        cells.append(f"{limit.low:,}–{limit.high:,} {UNITS[language, limit.unit]}")
    rows.append(f"| {name} | {label} | {cells[0]} | {cells[1]} |")
Markdown("\\n".join(rows))
"""),
    md("""
只有中文和英文可以唱。含有日文假名、韩文或其他文字的文本会在发送前被拒绝。

## 自己数一数

本包的数法是：去掉标签行，再数所有不是空白的字符。歌词不加标点时，这个数就是汉字的个数，用
一个正则表达式就能自己核对。`len()` 数出来的要多一些，因为它把标签行和换行也算进去了：
"""),
    code('''
HAN = re.compile(r"[\\u4e00-\\u9fff]")  # 一个汉字
short = """
''' + ZH_SHORT_LYRICS + '''
"""
print(f"len()：{len(short)}")
print(f"汉字：{len(HAN.findall(short))}")
print(f"本包的计数：{fm.build_request(lyrics=short).count}")
'''),
    md("""
## 被拒绝的请求是什么样子

流式生成的中文歌词需要 300 到 350 个字。如果流式只是默认设置，魔法命令会把更短（或更长）的歌词
改为非流式生成，并附一条说明。`--stream` 表示坚持流式，这时这段短歌词就会被拒绝：单元格以一行
错误信息结束，什么都不发送，也不计费：
"""),
    code(f"""
%%funmusic --wait --stream
{ZH_SHORT_LYRICS}
""", RAISES),
    md("""
提示信息说明了要求是什么、实际收到了什么，以及怎么改。改法有两种：多写一些（至少 300 个字），或者
不用流式（去掉 `--stream`，或者写上 `--no-stream`）。非流式时，中文歌词可以有 5 到 350 个字：
"""),
    code(f"""
%%funmusic --wait --no-stream
{ZH_SHORT_LYRICS}
"""),
    md("""
在 Python 里，同样的问题表现为 `fm.ValidationError`，在发送任何内容之前就会抛出。下面三段文本
分别是：日文（不支持）、流式时太短的中文歌词、非流式时也太长的中文歌词：
"""),
    code("""
for text, stream in [
    ("[verse]\\nさくら さくら", False),
    ("[verse]\\n" + "月光洒在小河上" * 5, True),
    ("[verse]\\n" + "月光洒在小河上" * 60, False),
]:
    try:
        fm.build_request(text=text, stream=stream)
    except fm.ValidationError as error:
        print(error)
"""),
    md("""
## 写一首可以流式生成的歌：300 到 350 个字

流式生成时，第一段音频大约半秒后就能听到，剩下的边传边放。中文歌词要流式生成，需要 300 到 350
个字，这也是服务推荐的长度：差不多是一首完整的流行歌，主歌、副歌、桥段都有。下面这首
《放学路上》，先在 Python 里数一数：
"""),
    code('''
lyrics = """
''' + ZH_STREAM_LYRICS + '''
"""
request = fm.build_request(lyrics=lyrics, stream=True)
tags = re.findall(r"^\\[(\\w+)\\]$", lyrics, flags=re.MULTILINE)
print(f"汉字：{len(HAN.findall(lyrics))}")
print(f"本包的计数：{request.count}（流式要求 300–350）")
print(f"结构：{' '.join(tags)}")
'''),
    md("""
字数合适，`build_request` 也没有报错。把同样的歌词放进 `%%funmusic` 单元格，用 `--stream`
坚持流式生成。`--wait` 让单元格等歌曲完整生成后再显示（在模拟器上大约要半分钟）；去掉它，
就能在实时播放器里边生成边听。
"""),
    code(f"""
%%funmusic --wait --stream --out after_school
{ZH_STREAM_LYRICS}
"""),
    md("""
## 提示词还是歌词？

在 `%%funmusic` 单元格里（以及面板的“自动”模式下），文本只要有一行结构标签，就是**歌词**，否则
就是**提示词**。想要另一种时，用 `--lyrics` 或 `--prompt` 来指定：
"""),
    code("""
for text in [
    "一首明快的夏日舞曲，合成器音色明亮",
    "[verse]\\n阳光洒在水面上",
    "阳光洒在水面上，这里没有标签",
]:
    print(f"{fm.build_request(text=text).mode:<7} ← {text!r}")
print(fm.build_request(text="阳光洒在水面上", mode="lyrics").mode)
"""),
    md("""
**两者都给了？** 服务会唱歌词、忽略提示词，所以本包也这样做，并用一条 `FunMusicWarning`
说明：
"""),
    code("""
import warnings

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    song = fm.generate(
        prompt="一首关于下雨的伤感的歌",
        lyrics="[verse]\\n晴朗的日子又回来了\\n[chorus]\\n跟着我一起跳舞",
    )
for warning in caught:
    print(f"{warning.category.__name__}: {warning.message}")
song
"""),
    md("""
这首歌唱的是歌词，标题也取自歌词的第一行，而不是提示词。

## 内容规则

歌词必须是原创的，不能涉及政治、暴力、色情、低俗、恐怖或毒品。服务会在生成之前检查内容，不合规的
请求会以 `DataInspectionFailed` 被拒绝。本包无法替你判断内容，所以这一步只有服务能做；模拟器可以
按要求模拟这种拒绝（`--fault inspection`，只对模拟器有效）。注意错误码、服务返回的原文信息和
request id 都原样显示，不做翻译：
"""),
    code(f"""
%%funmusic --wait --no-stream --fault inspection
{ZH_SHORT_LYRICS}
"""),
]

BOOKS = {
    "01_quickstart": QUICKSTART,
    "02_writing_lyrics": WRITING,
    "03_panel": PANEL,
    "04_python_api": PYTHON_API,
    "zh/01_快速上手": QUICKSTART_ZH,
    "zh/02_写歌词": WRITING_ZH,
}

_AUDIO = re.compile(r"data:audio/([a-z0-9.+-]+);base64,[A-Za-z0-9+/=\s]+")
# The song card's waveform picture: small, but decoded MP3 may differ in the last bit between
# CPUs, so the stored notebooks keep a placeholder as for the audio.
_WAVEFORM = re.compile(
    r'(class="funmusic-waveform" [^>]*src="data:image/png;base64,)[A-Za-z0-9+/=]+'
)


def _scrub(text: str, folder: Path = NOTEBOOKS) -> str:
    """``text`` with audio and waveforms as placeholders, and paths relative to ``folder``
    (the notebook's own folder, where its kernel ran)."""
    text = _AUDIO.sub(r"data:audio/\1;base64,AUDIO", text)
    text = _WAVEFORM.sub(r"\1WAVEFORM", text)
    return text.replace(str(folder) + "/", "")


def scrub_outputs(nb: nbformat.NotebookNode, folder: Path = NOTEBOOKS) -> None:
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = _scrub(output["text"], folder)
            for mime, value in list(output.get("data", {}).items()):
                if isinstance(value, str):
                    output["data"][mime] = _scrub(value, folder)
                elif isinstance(value, list):
                    output["data"][mime] = [_scrub(v, folder) for v in value]
            if output.get("output_type") == "error":
                output["traceback"] = [_scrub(t, folder) for t in output["traceback"]]
    nb.metadata.pop("widgets", None)


def notebook_path(name: str) -> Path:
    """Where book ``name`` is written: ``name`` is its path under ``notebooks/``, no suffix."""
    return NOTEBOOKS / f"{name}.ipynb"


def build(name: str) -> None:
    nb = new_notebook(cells=BOOKS[name])
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3", "language": "python", "name": "python3"
    }
    nb.metadata["language_info"] = {"name": "python"}
    path = notebook_path(name)
    folder = path.parent  # the kernel runs here, as nbval runs it: ./funmusic-output is beside
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
        record_timing=False,
        store_widget_state=False,
    )
    client.execute()
    scrub_outputs(nb, folder)
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    nbformat.write(nb, path)
    shown = path.relative_to(NOTEBOOKS)
    print(f"{shown}: {time.monotonic() - start:.1f} s, {path.stat().st_size:,} bytes")


MANIFEST = NOTEBOOKS / "teaching-notebooks.txt"


def write_manifest() -> None:
    names = "".join(f"{name}.ipynb\n" for name in BOOKS)
    MANIFEST.write_text(
        "# Written by build_notebooks.py: the notebooks python -m pytest runs under nbval,\n"
        "# by their path under notebooks/. Any other notebook saved here is not collected.\n"
        + names,
        encoding="utf-8",
    )


def set_aside_output(folder: Path) -> None:
    """Stored outputs are first takes: a song already in ``folder/funmusic-output`` would be
    reused, so that folder becomes ``funmusic-output.previous``."""
    previous = folder / "funmusic-output.previous"
    if (folder / "funmusic-output").is_dir():
        shutil.rmtree(previous, ignore_errors=True)
        (folder / "funmusic-output").rename(previous)


if __name__ == "__main__":
    write_manifest()
    # The kernels inherit this environment: never let a real key (and its bill) into them.
    for variable in [v for v in os.environ if v.startswith("DASHSCOPE_")]:
        del os.environ[variable]
    os.environ["HOME"] = tempfile.mkdtemp(prefix="funmusic-notebooks-home-")  # no ~/.dashscope
    # The language as the tests pin it (the root conftest.py): the English notebooks speak
    # English whatever the builder's locale, and the Chinese ones ask for Chinese themselves.
    os.environ.pop("FUNMUSIC_LANGUAGE", None)
    os.environ.pop("LC_MESSAGES", None)
    os.environ["LC_ALL"] = os.environ["LANG"] = "C.UTF-8"
    names = sys.argv[1:] or list(BOOKS)
    unknown = [name for name in names if name not in BOOKS]
    if unknown:
        sys.exit(f"unknown notebooks {unknown}; known: {list(BOOKS)}")
    for folder in sorted({notebook_path(name).parent for name in names}):
        set_aside_output(folder)
    for name in names:
        build(name)
