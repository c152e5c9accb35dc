"""Checks on the teaching notebooks as files (nbval executes them; this reads them).

What nbval cannot see: that a checked ``%%funmusic`` cell blocks (``--wait``) so its one output is
the final one, that nbval markers are tags and not comments (a comment above a magic line stops
it being a cell magic), that the stored outputs are executed, small, key-free and free of
machine paths, and that no widget state (which could hold anything) is saved.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# Each by its path under notebooks/, without the suffix (the build script's names).
EXPECTED = (
    "01_quickstart",
    "02_writing_lyrics",
    "03_panel",
    "04_python_api",
    "zh/01_快速上手",
    "zh/02_写歌词",
)
MANIFEST = NOTEBOOKS / "teaching-notebooks.txt"
# The shipped notebooks only: a user's own notebook saved next to them is none of our business.
PATHS = [
    NOTEBOOKS / line.strip()
    for line in MANIFEST.read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
]
KNOWN_TAGS = {"nbval-ignore-output", "nbval-check-output", "nbval-skip", "raises-exception"}
UNCHECKED = {"nbval-ignore-output", "nbval-skip"}
MAX_BYTES = 100_000
KEY_LIKE = re.compile(r"sk-[A-Za-z0-9]{8,}")
ABSOLUTE_OUTPUT_PATH = re.compile(r"(?:^|[\s\"'(])(?:[A-Za-z]:)?[/\\][^\s\"'<>]*funmusic-output")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict[str, Any]) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _tags(cell: dict[str, Any]) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _code_cells(path: Path) -> list[dict[str, Any]]:
    return [c for c in _load(path)["cells"] if c["cell_type"] == "code"]


def _output_texts(cell: dict[str, Any]) -> list[str]:
    texts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            texts.append("".join(output["text"]))
        for value in output.get("data", {}).values():
            texts.append(value if isinstance(value, str) else json.dumps(value))
        texts.extend(output.get("traceback", []))
        if "evalue" in output:
            texts.append(output["evalue"])
    return texts


def _name(path: Path) -> str:
    return path.relative_to(NOTEBOOKS).with_suffix("").as_posix()


def test_the_teaching_notebooks_are_all_there() -> None:
    assert [_name(p) for p in PATHS] == list(EXPECTED)
    assert all(p.is_file() for p in PATHS)


def test_the_manifest_is_the_build_scripts_list() -> None:
    script = NOTEBOOKS / "build_notebooks.py"
    spec = importlib.util.spec_from_file_location("build_notebooks", script)
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert [_name(p) for p in PATHS] == list(build.BOOKS)


def _notebook(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(nb, path)


@pytest.mark.parametrize("conftest", [True, False], ids=["with-hook", "without-hook"])
def test_only_the_shipped_notebooks_are_collected(tmp_path: Path, conftest: bool) -> None:
    # A copy of the project's layout: the real root conftest.py, a manifest naming one notebook,
    # and notebooks a user saved beside them and in subfolders (one with a shipped name), also
    # in the folder of the Chinese notebooks.
    shutil.copy(NOTEBOOKS.parent / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["notebooks"]\n'
        'addopts = ["--nbval", "-p", "no:cacheprovider"]\n',
        encoding="utf-8",
    )
    notebooks = tmp_path / "notebooks"
    _notebook(notebooks / "01_quickstart.ipynb")
    _notebook(notebooks / "my_song.ipynb")
    _notebook(notebooks / "drafts" / "01_quickstart.ipynb")
    _notebook(notebooks / "zh" / "01_快速上手.ipynb")
    _notebook(notebooks / "zh" / "我的歌.ipynb")
    _notebook(notebooks / "zh" / "drafts" / "01_快速上手.ipynb")
    (notebooks / "teaching-notebooks.txt").write_text(
        "# shipped\n01_quickstart.ipynb\nzh/01_快速上手.ipynb\n", encoding="utf-8"
    )
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q"]
    result = subprocess.run(
        argv + ([] if conftest else ["--noconftest"]),
        cwd=tmp_path, capture_output=True, text=True, encoding="utf-8", timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    collected = {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}
    everything = {
        "notebooks/01_quickstart.ipynb",
        "notebooks/my_song.ipynb",
        "notebooks/drafts/01_quickstart.ipynb",
        "notebooks/zh/01_快速上手.ipynb",
        "notebooks/zh/我的歌.ipynb",
        "notebooks/zh/drafts/01_快速上手.ipynb",
    }
    shipped = {"notebooks/01_quickstart.ipynb", "notebooks/zh/01_快速上手.ipynb"}
    # Without the hook every notebook is a test: the set-up shows what the hook prevents.
    assert collected == (shipped if conftest else everything)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_is_executed_small_and_has_prose(path: Path) -> None:
    nb = _load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb["metadata"], "widget state must not be saved"
    assert path.stat().st_size < MAX_BYTES, "stored audio? outputs should keep a placeholder"
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and _source(cells[0]).startswith("# ")
    assert sum(c["cell_type"] == "markdown" for c in cells) >= 4
    for cell in _code_cells(path):
        # Executed top to bottom and saved: what nbval compares is a real run's output.
        assert cell["execution_count"] is not None, _source(cell)[:60]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_checked_magic_cells_wait_and_markers_are_tags(path: Path) -> None:
    for cell in _code_cells(path):
        source = _source(cell)
        tags = _tags(cell)
        assert tags <= KNOWN_TAGS, f"unknown tags {tags - KNOWN_TAGS}"
        assert not re.search(r"^\s*#\s*NBVAL_", source, re.MULTILINE | re.IGNORECASE), (
            "nbval markers go in cell tags, not comments"
        )
        if "raises-exception" in tags:
            # The tag allows an error but neither nbclient nor nbval requires one: check it.
            kinds = [o["output_type"] for o in cell.get("outputs", [])]
            assert kinds == ["error"], f"expected only an error output, got {kinds}"
        if "%%funmusic" in source:
            first = source.splitlines()[0]
            # A comment (or anything) above %%funmusic would make the cell plain Python.
            assert first.startswith("%%funmusic"), f"%%funmusic must be the first line: {first!r}"
            if not tags & UNCHECKED and "raises-exception" not in tags:
                assert "--wait" in first.split(), f"a checked %%funmusic needs --wait: {first!r}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_no_key_and_no_machine_paths_anywhere(path: Path) -> None:
    raw = path.read_text(encoding="utf-8")
    assert not KEY_LIKE.search(raw)
    for cell in _code_cells(path):
        source = _source(cell)
        assert "api_key=" not in source
        assert not re.search(r"DASHSCOPE_API_KEY\s*[=\]]", source), "no key set in a notebook"
        for text in _output_texts(cell):
            assert not ABSOLUTE_OUTPUT_PATH.search(text), text[:200]
            # Audio and waveforms are stored as the sanitizer's placeholders only.
            assert not re.search(r"base64,(?!AUDIO|WAVEFORM)[A-Za-z0-9+/]{100}", text)
