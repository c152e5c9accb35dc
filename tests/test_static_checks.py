"""Lint and type checks are part of the test suite, so a regression fails CI like any other.

Both tools run exactly as a developer would from the repository root, with the configuration
in pyproject.toml (ruff's rules and per-file ignores; mypy strict over the package). Their caches
go to a temporary folder: a stale cache must never hide a finding, and the tree stays clean.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def test_ruff_is_clean() -> None:
    proc = _run(
        [
            "ruff", "check", "--no-cache",
            "funmusic_jupyter", "tests", "bench", "notebooks/build_notebooks.py", "conftest.py",
        ]
    )
    assert proc.returncode == 0, _report(proc)


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    proc = _run(["mypy", "--cache-dir", str(tmp_path / "mypy_cache")])
    assert proc.returncode == 0, _report(proc)
