"""Each surface in Chinese under ``zh`` and in English under ``en``: the magic (an IPython shell
and a real Jupyter kernel), the panel, the live player's labels, and the command line.

Songs come from the real simulator over loopback HTTP. Chinese is recognised by words the
catalogue gives (a missing translation would show the English instead and fail).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from funmusic_jupyter import ConfigurationError, FunMusicPanel, ValidationError
from funmusic_jupyter._i18n import use_language
from funmusic_jupyter._live import LivePlayer
from funmusic_jupyter._worker import current_worker
from funmusic_jupyter.simulator import SimulatorServer

REPO = Path(__file__).resolve().parents[1]
PROMPT = "A cheerful ukulele song about breakfast and sunshine"
# 412 Chinese characters of lyrics: too long for streaming (300–350) and for any Chinese lyrics.
LONG_CHINESE = "[verse]\n" + "雨夜的钢琴声轻轻响起\n" * 41 + "雨夜"
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:
        yield server


# -- the magic in an IPython shell -----------------------------------------------------------


@pytest.fixture
def ip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: SimulatorServer
) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    monkeypatch.chdir(tmp_path)
    shell.run_line_magic("load_ext", "funmusic_jupyter")
    shell.run_line_magic("config", "FunMusicMagics.backend = 'api'")
    shell.run_line_magic("config", f"FunMusicMagics.base_url = {sim.base_url!r}")
    yield shell
    worker = current_worker()
    for job in worker.cancel_all() if worker else []:
        job.wait(10)
    shell.run_line_magic("unload_ext", "funmusic_jupyter")
    shell.config.pop("FunMusicMagics", None)


def _html(captured: CapturedIO) -> str:
    return "\n".join(str(out.data.get("text/html", "")) for out in captured.outputs)


def _plain(captured: CapturedIO) -> str:
    return "\n".join(str(out.data.get("text/plain", "")) for out in captured.outputs)


def test_the_magic_speaks_its_language_setting(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", "FunMusicMagics.language = 'zh'")
    with pytest.raises(ValidationError) as chinese:
        ip.run_cell_magic("funmusic", "--stream", LONG_CHINESE)
    assert "流式生成的中文歌词须为 300–350 个字；当前 412 个字" in str(chinese.value)
    with pytest.raises(UsageError) as usage:
        ip.run_cell_magic("funmusic", "--gender robot", PROMPT)
    assert "选项见 %%funmusic?" in str(usage.value) and "无效的选择" in str(usage.value)

    ip.run_line_magic("config", "FunMusicMagics.language = 'en'")
    with pytest.raises(ValidationError) as english:
        ip.run_cell_magic("funmusic", "--stream", LONG_CHINESE)
    assert str(english.value).startswith("Chinese lyrics for streaming must be 300–350 characters")
    with pytest.raises(UsageError) as usage:
        ip.run_cell_magic("funmusic", "--gender robot", PROMPT)
    assert "invalid choice" in str(usage.value) and "see %%funmusic?" in str(usage.value)


def test_a_song_card_in_chinese_and_the_same_song_in_english(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", "FunMusicMagics.language = 'zh'")
    with capture_output() as zh:
        ip.run_cell_magic("funmusic", "--wait --no-stream", PROMPT)
    html = _html(zh)
    for words in ("详细信息", "模型", "采样率", "本会话合计", "提示词"):
        assert words in html
    assert "Sample rate" not in html
    # Marked Chinese (fonts choose Chinese glyphs), and long runs wrap inside the box.
    assert 'lang="zh-CN"' in html and "overflow-wrap: anywhere" in html
    # The song's repr stays English: it is what nbval compares.
    assert _plain(zh).startswith("<Song mp3")

    ip.run_line_magic("config", "FunMusicMagics.language = 'en'")
    with capture_output() as en:
        ip.run_cell_magic("funmusic", "--wait --no-stream", PROMPT)
    html = _html(en)
    assert "Details" in html and "Sample rate" in html and "reused from" in html
    assert "详细信息" not in html and "lang=" not in html


def test_a_song_shown_on_its_own_follows_the_magics_setting(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", "FunMusicMagics.language = 'zh'")
    with capture_output():
        ip.run_cell_magic("funmusic", "--wait --no-stream --out s", PROMPT)
    song = ip.user_ns.pop("s")
    # Outside any cell of the magic: the object shows itself in the configured language.
    assert "详细信息" in song._repr_mimebundle_()["text/html"]
    ip.run_line_magic("config", "FunMusicMagics.language = 'en'")
    assert "Details" in song._repr_mimebundle_()["text/html"]
    assert repr(song).startswith("<Song ")


def test_python_api_errors_follow_the_magics_setting(ip: InteractiveShell) -> None:
    # One setting for the notebook: fm.build_request's refusal speaks the magic's language.
    import funmusic_jupyter as fm

    ip.run_line_magic("config", "FunMusicMagics.language = 'zh'")
    with pytest.raises(fm.ValidationError) as chinese:
        fm.build_request(lyrics="")
    ip.run_line_magic("config", "FunMusicMagics.language = 'en'")
    with pytest.raises(fm.ValidationError) as english:
        fm.build_request(lyrics="")
    assert any("\u4e00" <= c <= "\u9fff" for c in str(chinese.value))
    assert str(english.value).isascii() and str(english.value) != str(chinese.value)


def test_progress_from_the_worker_thread_keeps_the_cells_language(ip: InteractiveShell) -> None:
    # A song in the background: its updates are rendered on the worker thread, which must
    # speak the language of the cell that started it, not the thread's default (English).
    ip.run_line_magic("config", "FunMusicMagics.language = 'zh'")
    with capture_output() as captured:
        ip.run_cell_magic("funmusic", "--fresh", PROMPT)
    worker = current_worker()
    assert worker is not None
    for job in worker.jobs():
        assert job.wait(TIMEOUT)
    assert all(job.language == "zh" for job in worker.jobs())
    assert "在后台生成" in _plain(captured)  # the first, queued display
    # The final card was built on the worker thread (outside a kernel it waits in a queue for
    # the main thread): Chinese, although this thread speaks English now.
    magics = ip.magics_manager.registry["FunMusicMagics"]
    _handle, bundle = magics._finished.get(timeout=TIMEOUT)
    assert "详细信息" in bundle["text/html"] and "Details" not in bundle["text/html"]


def test_a_job_speaks_the_language_it_was_submitted_in(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    from funmusic_jupyter._i18n import current_language
    from funmusic_jupyter._validation import build_request
    from funmusic_jupyter._worker import client_options, get_worker

    heard: list[str] = []
    options, _settings = client_options(base_url=sim.base_url, backend="api")
    request = build_request(prompt=PROMPT)
    with use_language("zh"):
        zh = get_worker().submit(
            request, client_options=options, output_dir=tmp_path,
            listener=lambda job, event: heard.append(
                f"zh:{current_language()}"
            ),
        )
    en = get_worker().submit(
        request, client_options=options, output_dir=tmp_path, language="en",
        listener=lambda job, event: heard.append(f"en:{current_language()}"),
    )
    assert zh.wait(TIMEOUT) and en.wait(TIMEOUT)
    assert "zh:zh" in heard and "en:en" in heard
    assert not any(h in heard for h in ("zh:en", "en:zh"))


def test_status_and_help_follow_the_language(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", "FunMusicMagics.language = 'zh'")
    with capture_output() as captured:
        ip.run_line_magic("funmusic", "status")
    assert "本内核中还没有歌曲" in _plain(captured) or "任务" in _html(captured)
    with capture_output() as captured:
        ip.run_cell("%%funmusic?")
    assert "用单元格生成一首歌" in captured.stdout
    assert "人声（默认：female 女声）" in captured.stdout and "--gender" in captured.stdout
    ip.run_line_magic("config", "FunMusicMagics.language = 'en'")
    with capture_output() as captured:
        ip.run_cell("%%funmusic?")
    assert "Make a song from the cell" in captured.stdout
    assert "用单元格" not in captured.stdout


def test_the_language_trait_refuses_unknown_values(
    ip: InteractiveShell, caplog: pytest.LogCaptureFixture
) -> None:
    ip.run_line_magic("config", "FunMusicMagics.language = 'fr'")
    magics = ip.magics_manager.registry["FunMusicMagics"]
    assert magics.language == "auto"  # refused: the value is unchanged
    assert "fr" in caplog.text


def test_a_bad_environment_variable_is_one_clear_line(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNMUSIC_LANGUAGE", "klingon")
    with pytest.raises(ConfigurationError) as info:
        ip.run_cell_magic("funmusic", "", PROMPT)
    assert str(info.value) == "FUNMUSIC_LANGUAGE must be one of auto, en, zh; got 'klingon'"
    monkeypatch.setenv("FUNMUSIC_LANGUAGE", "zh")
    with pytest.raises(ValidationError) as chinese:
        ip.run_cell_magic("funmusic", "--stream", LONG_CHINESE)
    assert "个字" in str(chinese.value)


# -- the panel -------------------------------------------------------------------------------


def _wait(predicate: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_the_panel_in_chinese(sim: SimulatorServer, tmp_path: Path) -> None:
    panel = FunMusicPanel(base_url=sim.base_url, output_dir=tmp_path, language="zh")
    try:
        assert panel.generate_button.description == "生成"
        assert panel.cancel_button.description == "取消"
        assert [label for label, _ in panel.mode.options] == ["自动", "提示词", "歌词"]
        assert [label for label, _ in panel.gender.options] == ["女声", "男声"]
        assert panel.gender.description == "人声" and panel.instrumental.description == (
            "纯音乐（无人声）"
        )
        assert panel.stream.description == "流式"
        assert "描述一首歌" in panel.text.placeholder
        assert "还没有输入内容" in panel.counter.value
        panel.text.value = LONG_CHINESE
        panel.stream.value = True
        assert panel.counter.value.count("歌词") == 1  # "歌词 · 中文 · 流式：<b>412</b> 个字…"
        assert "<b>412</b> 个字（允许 300–350）" in panel.counter.value
        assert "超出上限 62" in panel.counter.value
        assert panel.generate_button.disabled
        assert panel.reason.startswith("流式生成的中文歌词须为 300–350 个字")
        assert panel.generate_button.tooltip == panel.reason
        panel.text.value = PROMPT
        panel.stream.value = False
        panel.generate_button.click()
        song = panel.wait(TIMEOUT)
        assert song is not None
        _wait(lambda: not panel.busy)
        assert "详细信息" in panel.result.value and "采样率" in panel.result.value
        assert panel.status.value.startswith("完成")
        # The widget's repr is what nbval compares: English, whatever the language.
        assert repr(panel).startswith("FunMusicPanel(backend=")
    finally:
        panel.close()


def test_two_panels_in_two_languages_side_by_side(sim: SimulatorServer, tmp_path: Path) -> None:
    zh = FunMusicPanel(base_url=sim.base_url, output_dir=tmp_path, language="zh")
    en = FunMusicPanel(base_url=sim.base_url, output_dir=tmp_path, language="en")
    try:
        for panel in (zh, en):
            panel.text.value = PROMPT
            panel.stream.value = False
        zh.generate_button.click()
        en.generate_button.click()
        assert zh.wait(TIMEOUT) is not None and en.wait(TIMEOUT) is not None
        _wait(lambda: not zh.busy and not en.busy)
        assert "详细信息" in zh.result.value and "Details" not in zh.result.value
        assert "Details" in en.result.value and "详细信息" not in en.result.value
        assert en.generate_button.description == "Generate"
    finally:
        zh.close()
        en.close()


def test_the_panel_refuses_an_unknown_language(sim: SimulatorServer) -> None:
    with pytest.raises(ConfigurationError) as info:
        FunMusicPanel(base_url=sim.base_url, language="jp")
    assert str(info.value) == "language must be one of auto, en, zh; got 'jp'"


def test_the_panel_follows_the_environment_when_not_told(
    sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FUNMUSIC_LANGUAGE", "zh")
    panel = FunMusicPanel(base_url=sim.base_url, output_dir=tmp_path)
    try:
        assert panel.generate_button.description == "生成"
    finally:
        panel.close()


def test_the_live_player_gets_its_labels_in_the_language() -> None:
    with use_language("zh"):
        zh = LivePlayer(format="mp3", title="雨夜")
    en = LivePlayer(format="mp3", title="rain")
    try:
        assert zh.labels["play"] == "播放" and zh.labels["buffering"] == "缓冲中…"
        assert en.labels["play"] == "Play" and en.labels["buffering"] == "Buffering…"
        assert set(zh.labels) == set(en.labels)
        # The front end keeps an English copy of every label (for a key Python did not send).
        source = (REPO / "funmusic_jupyter" / "static" / "player_view.js").read_text("utf-8")
        for key, text in en.labels.items():
            assert f"{key}: {json.dumps(text, ensure_ascii=False)}," in source
        assert repr(zh) == "FunMusic live player (mp3)"
    finally:
        zh.close()
        en.close()


# -- the command line ------------------------------------------------------------------------


def _cli(*args: str, language: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FUNMUSIC_LANGUAGE"}
    if language is not None:
        env["FUNMUSIC_LANGUAGE"] = language
    return subprocess.run(
        [sys.executable, "-m", "funmusic_jupyter", *args],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )


def test_cli_help_in_both_languages() -> None:
    zh = _cli("--help", language="zh")
    assert zh.returncode == 0
    assert zh.stdout.startswith("用法：funmusic")
    assert "示例" in zh.stdout and "显示此帮助信息并退出" in zh.stdout
    en = _cli("--help", language="en")
    assert en.stdout.startswith("usage: funmusic") and "show this help message" in en.stdout
    assert _cli("--language", "zh", "--help").stdout == zh.stdout


def test_simulator_help_and_errors_in_both_languages() -> None:
    zh = _cli("simulator", "--help", language="zh")
    assert zh.returncode == 0 and zh.stdout.startswith("用法：funmusic simulator")
    assert "离线 Fun-Music 模拟器" in zh.stdout and "端口（默认 8765" in zh.stdout
    en = _cli("--language", "en", "simulator", "--help")
    assert en.stdout.startswith("usage: funmusic simulator") and "Offline Fun-Music" in en.stdout
    bad = _cli("simulator", "--port", "x", language="zh")
    assert bad.returncode == 2 and "须为 0–65535 之间的端口；当前为 'x'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_cli_make_help_in_both_languages() -> None:
    zh = _cli("make", "--help", language="zh")
    assert zh.returncode == 0
    assert zh.stdout.startswith("用法：funmusic make") and "选项" in zh.stdout
    en = _cli("make", "--help", language="en")
    assert en.stdout.startswith("usage: funmusic make") and "options:" in en.stdout


def test_cli_errors_in_both_languages() -> None:
    zh = _cli("make", language="zh")
    assert zh.returncode == 2
    assert "错误" in zh.stderr and "缺少以下必需参数" in zh.stderr
    en = _cli("make", language="en")
    assert en.returncode == 2
    assert "error:" in en.stderr and "the following arguments are required" in en.stderr
    bad = _cli("--language", "fr", "--help")
    assert bad.returncode == 2
    assert "language must be one of auto, en, zh; got 'fr'" in bad.stderr


def test_cli_make_refuses_a_text_in_chinese(tmp_path: Path) -> None:
    # Refused before anything is sent: 412 characters fit neither limit for Chinese lyrics.
    out = str(tmp_path / "x.mp3")
    zh = _cli("make", "--lyrics", LONG_CHINESE, "-o", out, language="zh")
    assert zh.returncode == 2
    assert "funmusic make：错误：非流式生成的中文歌词须为 5–350 个字；当前 412 个字" in zh.stderr
    en = _cli("make", "--lyrics", LONG_CHINESE, "-o", out, language="en")
    assert "funmusic make: error: Chinese lyrics for non-streaming must be 5–350" in en.stderr


# -- a real kernel ---------------------------------------------------------------------------


@pytest.mark.kernel
def test_a_kernel_with_a_chinese_locale_speaks_chinese(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    # auto follows the kernel's locale: LANG=zh_CN.UTF-8, nothing else set.
    spec_dir = tmp_path / "kernels" / "funmusic-i18n"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "funmusic i18n", "language": "python",
    }))
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("DASHSCOPE_", "FUNMUSIC_", "LC_")) and k != "LANG"
    }
    env.update(LANG="zh_CN.UTF-8", HOME=str(tmp_path), PYTHONPATH=str(REPO))
    km = KernelManager(
        kernel_name="funmusic-i18n",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]),
    )
    km.start_kernel(env=env, cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)

        def run(code: str) -> tuple[str, list[dict[str, Any]]]:
            outputs: list[dict[str, Any]] = []
            reply = kc.execute_interactive(
                code, timeout=TIMEOUT, output_hook=outputs.append, allow_stdin=False
            )
            return str(reply["content"]["status"]), outputs

        def text(outputs: list[dict[str, Any]]) -> str:
            parts = []
            for msg in outputs:
                content = msg["content"]
                parts.append(str(content.get("data", {}).get("text/html", "")))
                parts.append(str(content.get("evalue", "")))
                parts.append(str(content.get("text", "")))
            return "\n".join(parts)

        status, _ = run(
            "%load_ext funmusic_jupyter\n"
            "%config FunMusicMagics.backend = 'api'\n"
            f"%config FunMusicMagics.base_url = {sim.base_url!r}"
        )
        assert status == "ok"
        status, outputs = run(f"%%funmusic --stream\n{LONG_CHINESE}")
        assert status == "error"
        assert "流式生成的中文歌词须为 300–350 个字" in text(outputs)
        status, outputs = run(f"%%funmusic --wait --no-stream\n{PROMPT}")
        assert status == "ok" and "详细信息" in text(outputs)
        status, _ = run("%config FunMusicMagics.language = 'en'")
        status, outputs = run(f"%%funmusic --stream\n{LONG_CHINESE}")
        assert "Chinese lyrics for streaming must be 300–350 characters" in text(outputs)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)



def test_the_simulator_answers_in_english_like_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its refusals are "the API's own messages", shown verbatim: never translated, even by a
    # simulator started in a Chinese environment (it inherits FUNMUSIC_LANGUAGE).
    import httpx

    monkeypatch.setenv("FUNMUSIC_LANGUAGE", "zh")
    with SimulatorServer(speed=0) as server:
        answer = httpx.post(
            server.base_url + "/services/audio/music/generation",
            json={"model": "fun-music-v1", "input": {"lyrics": LONG_CHINESE}},
            timeout=30,
        )
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert message.startswith("Chinese lyrics for non-streaming must be 5–350 characters")
