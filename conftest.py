"""Session-wide safety for every test, notebooks included.

nbval runs the notebooks in kernels that inherit this process's environment, out of reach of
tests/conftest.py's per-test fixtures. A developer with a real key configured must never have
the test suite bill them: the DashScope variables are removed and HOME points at an empty
folder (so ``~/.dashscope/api_key`` is not found) before any kernel starts. Everything then
runs on the simulator.

The language is pinned too: ``FUNMUSIC_LANGUAGE`` is removed and the locale set to ``C.UTF-8``,
so a developer whose locale is Chinese still gets the English outputs the notebooks store
(``language="auto"`` follows the locale). Tests of the Chinese side ask for it explicitly.

It also decides which notebooks are tests: only the shipped teaching notebooks, listed in
``notebooks/teaching-notebooks.txt`` (written by ``notebooks/build_notebooks.py``). A notebook a
user saves in ``notebooks/`` is their own, not a test that fails because nbval re-ran it.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from funmusic_jupyter._config import ENVIRONMENT_VARIABLES
from funmusic_jupyter._i18n import ENV_VARIABLE as LANGUAGE_VARIABLE

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
MANIFEST = NOTEBOOKS / "teaching-notebooks.txt"


def teaching_notebooks(manifest: Path = MANIFEST) -> frozenset[str]:
    """The notebooks the manifest lists (one a line; ``#`` starts a comment), each by its path
    under ``notebooks/`` with ``/`` between folders: ``01_quickstart.ipynb``,
    ``zh/01_快速上手.ipynb``."""
    lines = manifest.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.suffix != ".ipynb" or NOTEBOOKS not in collection_path.parents:
        return None  # not ours to decide
    # Listed by its exact path: a user's notebook in notebooks/ or a subfolder (notebooks/zh/,
    # notebooks/drafts/) is not a test, even under a shipped notebook's name.
    shipped = collection_path.relative_to(NOTEBOOKS).as_posix() in teaching_notebooks()
    return None if shipped else True


def pytest_configure(config: pytest.Config) -> None:
    for name in ENVIRONMENT_VARIABLES:
        os.environ.pop(name, None)
    os.environ.pop(LANGUAGE_VARIABLE, None)
    os.environ.pop("LC_MESSAGES", None)
    os.environ["LC_ALL"] = os.environ["LANG"] = "C.UTF-8"
    home = tempfile.mkdtemp(prefix="funmusic-test-home-")
    os.environ["HOME"] = home


def fresh_output_dir(folder: Path = NOTEBOOKS) -> None:
    """Start the teaching notebooks in ``folder`` from an empty ``funmusic-output``.

    A song already in the folder is reused instead of made again (``_library``), so a second
    run of a notebook would differ from its stored first run (no streaming, other job ids).
    Nothing is deleted: songs already there (a user's own run of the quickstart, say) are moved
    to ``funmusic-output.previous-<time>``.
    """
    out = folder / "funmusic-output"
    if out.is_dir() and any(out.iterdir()):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        previous = folder / f"funmusic-output.previous-{stamp}"
        n = 1
        while previous.exists():
            n += 1
            previous = folder / f"funmusic-output.previous-{stamp}-{n}"
        out.rename(previous)


def pytest_collection_finish(session: pytest.Session) -> None:
    # Each notebook's kernel runs in the notebook's folder (notebooks/, notebooks/zh/), so each
    # such folder has its own funmusic-output.
    folders = {Path(str(item.path)).parent for item in session.items}
    for folder in sorted(f for f in folders if f == NOTEBOOKS or NOTEBOOKS in f.parents):
        fresh_output_dir(folder)
