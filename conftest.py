"""Session-wide safety for every test, notebooks included.

nbval runs the notebooks in kernels that inherit this process's environment, out of reach of
tests/conftest.py's per-test fixtures. A developer with a real key configured must never have
the test suite bill them: the DashScope variables are removed and HOME points at an empty
folder (so ``~/.dashscope/api_key`` is not found) before any kernel starts. Everything then
runs on the simulator.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from funmusic_jupyter._config import ENVIRONMENT_VARIABLES


def pytest_configure(config: pytest.Config) -> None:
    for name in ENVIRONMENT_VARIABLES:
        os.environ.pop(name, None)
    home = tempfile.mkdtemp(prefix="funmusic-test-home-")
    os.environ["HOME"] = home
