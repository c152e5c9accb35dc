"""Shared test set-up: the anyio backend, and a clean environment for every test.

No test may reach the real service or read the developer's own key: every DashScope variable is
removed, and HOME points at an empty folder so ``~/.dashscope/api_key`` is never found.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

_ENV_VARS = (
    "DASHSCOPE_API_KEY",
    "DASHSCOPE_API_KEY_FILE_PATH",
    "DASHSCOPE_HTTP_BASE_URL",
    "DASHSCOPE_BASE_URL",
    "FUNMUSIC_ENDPOINT",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    for name in _ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    home: Path = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    yield
