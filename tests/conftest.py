"""Shared test set-up: the anyio backend, and a clean environment for every test.

No test may reach the real service or read the developer's own key: every DashScope variable is
removed, and HOME points at an empty folder so ``~/.dashscope/api_key`` is never found.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from funmusic_jupyter._config import ENVIRONMENT_VARIABLES


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home: Path = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    yield
