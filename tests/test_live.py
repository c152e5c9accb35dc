"""``LivePlayer``'s Python side: the message protocol, threads, and the shipped front end.

The widget's ``send`` is the comm; here it is recorded (no kernel needed) and the browser's
messages are fed to the handler ipywidgets calls. The browser side is tests/test_live_player.py.
"""

from __future__ import annotations

import re
import subprocess
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import traitlets

from funmusic_jupyter._live import RESEND_PIECE, LivePlayer, live_player_esm

Sent = tuple[dict[str, Any], list[bytes]]


class Recorder:
    def __init__(self, player: LivePlayer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[Sent] = []
        self.player = player

        def send(content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
            self.sent.append((content, [bytes(b) for b in buffers or []]))

        monkeypatch.setattr(player, "send", send)

    def from_browser(self, content: dict[str, Any]) -> None:
        # What ipywidgets does with a {"method": "custom"} comm message.
        self.player._handle_custom_msg(content, [])

    def chunks(self) -> list[tuple[int, bytes]]:
        return [(c["offset"], b[0]) for c, b in self.sent if c["type"] == "chunk"]


@pytest.fixture
def player(monkeypatch: pytest.MonkeyPatch) -> tuple[LivePlayer, Recorder]:
    widget = LivePlayer(format="mp3", title="Song", handoff_id="h1")
    return widget, Recorder(widget, monkeypatch)


def test_repr_is_deterministic_for_nbval() -> None:
    assert repr(LivePlayer(format="wav")) == "FunMusic live player (wav)"
    bundle = LivePlayer()._repr_mimebundle_()
    assert bundle is not None and bundle[0]["text/plain"] == "FunMusic live player (mp3)"


def test_traits_and_bad_values() -> None:
    widget = LivePlayer()
    assert (widget.format, widget.autoplay, widget.status, widget.engine) == (
        "mp3", False, "waiting", "auto",
    )
    assert re.fullmatch(r"[0-9a-f]{32}", widget.handoff_id)  # one is made when none is given
    with pytest.raises(ValueError, match="format must be one of .* got 'ogg'"):
        LivePlayer(format="ogg")
    with pytest.raises(ValueError, match="finish\\(\\) status must be one of"):
        widget.finish("streaming")
    # No trait grows with the audio: the bytes go only through send().
    synced = widget.traits(sync=True)
    assert not [n for n, t in synced.items() if isinstance(t, (traitlets.Bytes, traitlets.List))]


def test_feed_sends_chunks_with_their_offsets_then_end(
    player: tuple[LivePlayer, Recorder],
) -> None:
    widget, rec = player
    widget.feed(b"abc")
    assert widget.status == "streaming"
    widget.feed(b"")  # nothing to send
    widget.feed(b"defg")
    widget.finish("complete")
    assert rec.chunks() == [(0, b"abc"), (3, b"defg")]
    assert rec.sent[-1] == ({"type": "end", "size": 7}, [])
    assert widget.status == "complete" and widget.received == 7
    with pytest.raises(RuntimeError, match="after finish"):
        widget.feed(b"h")


def test_need_resends_from_the_offset_in_pieces_and_end_once_finished(
    player: tuple[LivePlayer, Recorder],
) -> None:
    widget, rec = player
    data = bytes(range(256)) * (RESEND_PIECE // 256 * 2 + 10)  # two pieces and a bit
    widget.feed(data)
    rec.sent.clear()
    rec.from_browser({"type": "need", "offset": 100})
    chunks = rec.chunks()
    assert [offset for offset, _ in chunks] == [100, 100 + RESEND_PIECE, 100 + 2 * RESEND_PIECE]
    assert b"".join(piece for _, piece in chunks) == data[100:]
    assert all(c["type"] == "chunk" for c, _ in rec.sent)  # not finished: no end yet

    widget.finish("stopped", "Stopped at 3 s")
    rec.sent.clear()
    rec.from_browser({"type": "need", "offset": len(data)})  # has it all, lost the end
    assert rec.sent == [({"type": "end", "size": len(data)}, [])]
    assert (widget.status, widget.message) == ("stopped", "Stopped at 3 s")
    rec.sent.clear()
    for junk in ({"type": "need", "offset": -1}, {"type": "need"}, {"type": "other"}):
        rec.from_browser(junk)
    assert rec.sent == []


def test_handed_over_is_reported_once_to_waiters_and_callbacks(
    player: tuple[LivePlayer, Recorder],
) -> None:
    widget, rec = player
    seen: list[dict[str, Any]] = []
    widget.on_handed_over(seen.append)
    assert widget.wait_handed_over(0.01) is False
    waiter = threading.Thread(target=lambda: seen.append({"waited": widget.wait_handed_over(5)}))
    waiter.start()
    rec.from_browser({"type": "handed-over", "position": 12.5, "playing": True})
    rec.from_browser({"type": "handed-over", "position": None, "playing": False})  # a 2nd tab
    waiter.join(5)
    assert seen[0] == {"position": 12.5, "playing": True}
    assert {"waited": True} in seen
    assert widget.handover == {"position": 12.5, "playing": True}
    late: list[dict[str, Any]] = []
    widget.on_handed_over(late.append)  # after the fact: called at once
    assert late == [{"position": 12.5, "playing": True}]


def test_nothing_to_hand_over_reports_no_position(player: tuple[LivePlayer, Recorder]) -> None:
    widget, rec = player
    rec.from_browser({"type": "handed-over", "position": None})
    assert widget.wait_handed_over(0) is True
    assert widget.handover == {"position": None, "playing": False}


def test_feeds_from_threads_keep_offsets_contiguous(player: tuple[LivePlayer, Recorder]) -> None:
    widget, rec = player

    def feed(tag: bytes) -> None:
        for _ in range(200):
            widget.feed(tag * 7)

    threads = [threading.Thread(target=feed, args=(bytes([65 + i]),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    offset = 0
    for start, piece in rec.chunks():
        assert start == offset
        offset += len(piece)
    assert offset == widget.received == 4 * 200 * 7


def test_front_end_ships_in_the_package_and_joins_into_one_module() -> None:
    static = resources.files("funmusic_jupyter").joinpath("static")
    names = {p.name for p in static.iterdir()}
    assert {"live_player.js", "live_player.css", "engines.js", "player_view.js"} <= names
    esm = live_player_esm()
    assert LivePlayer._esm == esm
    # One module: no relative imports left (a blob: URL cannot resolve them), one default.
    assert not re.search(r"^import ", esm, re.MULTILINE)
    assert len(re.findall(r"^export default", esm, re.MULTILINE)) == 1
    assert "https://" not in esm and "http://" not in esm  # nothing from a CDN
    for name in names:
        assert sum(1 for _ in static.joinpath(name).read_text().splitlines()) < 500, name


def test_joined_module_and_each_file_parse_as_es_modules(tmp_path: Path) -> None:
    node = subprocess.run(["which", "node"], capture_output=True, text=True).stdout.strip()
    if not node:
        pytest.skip("node is not installed: the browser tests load the module anyway")
    files = {"joined.mjs": live_player_esm()}
    static = resources.files("funmusic_jupyter").joinpath("static")
    for p in static.iterdir():
        if p.name.endswith(".js"):
            files[p.name.replace(".js", ".mjs")] = p.read_text()
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        proc = subprocess.run([node, "--check", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
