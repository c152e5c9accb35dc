"""One request policy (``_policy.plan_request``) for ``%%funmusic`` and ``FunMusicPanel``.

One table of texts and stream preferences. Each case is checked three ways: the policy itself,
the magic in a real IPython shell, and the panel driven as a user would. Both front ends
submit to the real background worker against the real simulator over loopback; what they
submitted (the worker's newest job) is what they decided. Both must accept and refuse the same
texts, with the same messages and the same notes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from funmusic_jupyter import FunMusicPanel, ValidationError
from funmusic_jupyter._policy import plan_request, refused_stream, stream_preference
from funmusic_jupyter._worker import Job, current_worker, get_worker
from funmusic_jupyter.simulator import SimulatorServer

SHORT_LYRICS = """[verse]
Morning sunlight slips through the curtain,
Coffee aroma fills up the room.

[chorus]
Take it slow, there's no hurry,
Life should be this carefree.
"""  # 23 words: too few to stream, fine without streaming


def english_lyrics(words: int) -> str:
    pool = "sun rain moon road light home song heart".split()
    body = [pool[i % len(pool)] for i in range(words)]
    lines = [" ".join(body[i : i + 8]) for i in range(0, words, 8)]
    half = len(lines) // 2
    return "[verse]\n" + "\n".join(lines[:half]) + "\n[chorus]\n" + "\n".join(lines[half:])


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    stream: bool | str  # the preference: True, False or "auto"
    # "streamed", "not streamed", "fallback" (not streamed, with the note) or "refused"
    outcome: str
    needle: str = ""  # in the refusal message or the note
    warnings: int = 0  # notes that come before the policy's (the request's own warnings)


CASES = [
    Case("short-lyrics-auto", SHORT_LYRICS, "auto", "fallback",
         "not streamed: English lyrics for streaming must be 200–250 words and this has 23,"),
    Case("short-lyrics-on", SHORT_LYRICS, True, "refused",
         "English lyrics for streaming must be 200–250 words; got 23 words"),
    Case("short-lyrics-off", SHORT_LYRICS, False, "not streamed"),
    Case("streamable-lyrics-auto", english_lyrics(220), "auto", "streamed"),
    Case("streamable-lyrics-on", english_lyrics(220), True, "streamed"),
    Case("streamable-lyrics-off", english_lyrics(220), False, "not streamed"),
    Case("long-lyrics-auto", english_lyrics(300), "auto", "fallback", "and this has 300,"),
    Case("too-long-lyrics-auto", english_lyrics(600), "auto", "refused",
         "English lyrics for non-streaming must be 5–2,000 characters"),
    Case("short-prompt-auto", "Sad piano", "auto", "fallback",
         "not streamed: a prompt for streaming must be 5–1,000"),
    Case("short-prompt-on", "Sad piano", True, "refused", "a prompt for streaming must be"),
    Case("prompt-auto", "A cheerful ukulele song about a lazy breakfast", "auto", "streamed"),
    Case("chinese-lyrics-auto", "[verse]\n" + "月光洒在小河上" * 5, "auto", "fallback",
         "not streamed: Chinese lyrics for streaming must be 300–350 characters and this has 35,"),
    Case("chinese-lyrics-on", "[verse]\n" + "月光洒在小河上" * 5, True, "refused",
         "Chinese lyrics for streaming must be 300–350 characters"),
    Case("chinese-streamable-auto", "[verse]\n" + "月光洒在小河上" * 45, "auto", "streamed"),
    Case("kana-auto", "[verse]\nさくらが咲いた", "auto", "refused", "Japanese kana"),
    Case("unknown-tag-auto", SHORT_LYRICS + "[hook]\nOne more line\n", "auto", "fallback",
         "not streamed:", warnings=1),
]
IDS = [case.id for case in CASES]
LIMIT_IN_MESSAGE = re.compile(r"for (non-streaming|streaming) must be ([\d,]+–[\d,]+)")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:
        yield server


@pytest.fixture
def shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: SimulatorServer
) -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    monkeypatch.chdir(tmp_path)
    ip.run_line_magic("load_ext", "funmusic_jupyter")
    # As the service: no "using the simulator" note mixed into the notes compared.
    ip.run_line_magic("config", "FunMusicMagics.backend = 'api'")
    ip.run_line_magic("config", f"FunMusicMagics.base_url = {sim.base_url!r}")
    yield ip
    stop_all()
    ip.run_line_magic("unload_ext", "funmusic_jupyter")
    ip.config.pop("FunMusicMagics", None)


def stop_all() -> None:
    worker = current_worker()
    for job in worker.cancel_all() if worker else []:
        job.wait(10)


def newest_job(before: int) -> Job | None:
    """The job a front end just submitted, or None if it submitted nothing."""
    jobs = get_worker().jobs()
    assert len(jobs) <= before + 1
    return jobs[-1] if len(jobs) > before else None


@dataclass(frozen=True)
class Outcome:
    stream: bool | None  # None: refused
    notes: tuple[str, ...]
    refusal: str


def via_magic(shell: InteractiveShell, case: Case) -> Outcome:
    line = {True: "--stream", False: "--no-stream", "auto": ""}[case.stream]
    before = len(get_worker().jobs())
    try:
        with capture_output() as captured:
            shell.run_cell_magic("funmusic", line, case.text)
    except ValidationError as exc:
        assert newest_job(before) is None  # refused before anything was sent
        return Outcome(None, (), str(exc))
    job = newest_job(before)
    assert job is not None
    job.cancel()
    # The cell's first display, shown before the song starts: its text lists the notes.
    shown = captured.outputs[0].data["text/plain"].splitlines()
    notes = tuple(line.removeprefix("note: ") for line in shown if line.startswith("note: "))
    return Outcome(job.request.stream, notes, "")


def via_panel(sim: SimulatorServer, tmp_path: Path, case: Case) -> Outcome:
    panel = FunMusicPanel(base_url=sim.base_url, output_dir=tmp_path / "panel")
    try:
        panel.stream.value = case.stream
        panel.text.value = case.text
        before = len(get_worker().jobs())
        panel.generate_button.click()
        job = newest_job(before)
        # The counter measures against the limit the policy applied (or the refusal quotes).
        counted = re.search(r"· (not streaming|streaming)(?: \(auto\))?: ", panel.counter.value)
        assert counted is not None, panel.counter.value
        if job is None:
            assert panel.generate_button.disabled and panel.notes == ()
            assert html.escape(panel.reason, quote=True) in panel.message.value
            limit = LIMIT_IN_MESSAGE.search(panel.reason)
            if limit is not None:
                assert f"(allowed {limit.group(2)})" in panel.counter.value
                assert (limit.group(1) == "streaming") == (counted.group(1) == "streaming")
            return Outcome(None, (), panel.reason)
        assert (counted.group(1) == "streaming") == job.request.stream
        job.cancel()
        # What the panel shows is what it will attach to the song.
        shown = re.findall(r"<div[^>]*>⚠ (.*?)</div>", panel.message.value)
        assert tuple(html.unescape(n) for n in shown) == panel.notes
        return Outcome(job.request.stream, panel.notes, "")
    finally:
        panel.close()


def expected_check(case: Case, outcome: Outcome) -> None:
    if case.outcome == "refused":
        assert outcome.stream is None and case.needle in outcome.refusal, outcome
        return
    assert outcome.stream is (case.outcome == "streamed"), outcome
    policy_notes = outcome.notes[case.warnings :]
    if case.outcome == "fallback":
        assert len(policy_notes) == 1 and case.needle in policy_notes[0], outcome
    else:
        assert policy_notes == (), outcome


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_policy(case: Case) -> None:
    try:
        request, notes = plan_request(text=case.text, stream=case.stream)
    except ValidationError as exc:
        expected_check(case, Outcome(None, (), str(exc)))
    else:
        expected_check(case, Outcome(request.stream, notes, ""))
        assert notes[: case.warnings] == request.warnings


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_magic_and_panel_decide_alike(
    case: Case, shell: InteractiveShell, sim: SimulatorServer, tmp_path: Path
) -> None:
    magic = via_magic(shell, case)
    panel = via_panel(sim, tmp_path, case)
    expected_check(case, magic)
    assert panel == magic


def test_stream_preferences() -> None:
    assert [stream_preference(v) for v in (True, False, None, "auto", " AUTO ")] == [
        True, False, None, None, None
    ]
    for bad in ("yes", 1, "on"):
        with pytest.raises(ValidationError, match=r"stream must be True, False or 'auto'; got "):
            stream_preference(bad)
    # Auto falls back, so its refusals (and the panel's counter then) are non-streaming limits.
    assert [refused_stream(v) for v in (True, False, "auto", None)] == [True, False, False, False]


def test_panel_defaults_to_auto_and_makes_short_lyrics_with_the_note(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    # The defect: with streaming on by default, 19 words left Generate disabled.
    panel = FunMusicPanel(base_url=sim.base_url, output_dir=tmp_path, text=SHORT_LYRICS)
    try:
        assert panel.stream.value == "auto"
        assert not panel.generate_button.disabled and panel.reason == ""
        assert "not streaming (auto)" in panel.counter.value
        assert "(allowed 5–2,000)" in panel.counter.value
        panel.generate_button.click()
        song = panel.wait(60)
        assert song is not None and song.request.stream is False
        assert "not streamed: English lyrics for streaming must be 200–250 words" in (
            html.unescape(panel.result.value)
        )
    finally:
        panel.close()
    with pytest.raises(ValidationError, match="stream must be True, False or 'auto'"):
        FunMusicPanel(base_url=sim.base_url, stream="sometimes")
