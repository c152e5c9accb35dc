"""``--workers N``: the standalone simulator as N uvicorn worker processes on one socket.

Each worker is a whole simulator (its event loop frames and paces, its threads synthesize), so
N workers use N cores and a client that leaves stops its own synthesis within a chunk, as with
one process. Workers share nothing but the listening socket and the URL-signing secret: a
download URL made by one is made again by any other (``_tokens``), so no shared store is needed.
The request-per-minute window is counted by each worker on its own.

uvicorn's supervisor starts the workers with ``spawn``, so each one builds its app from an
import string; the settings travel in an environment variable (which also keeps the API key
and the secret out of ``ps``).
"""

from __future__ import annotations

import inspect
import json
import os
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from ._app import create_app

__all__ = ["SETTINGS_VARIABLE", "app_from_environment", "run_workers"]

SETTINGS_VARIABLE = "FUNMUSIC_SIMULATOR_WORKER_SETTINGS"
_FACTORY = f"{__name__}:app_from_environment"


def app_from_environment() -> Starlette:
    """The app of one worker, from the settings ``run_workers`` put in the environment."""
    raw = os.environ.get(SETTINGS_VARIABLE)
    if not raw:
        raise RuntimeError(f"{SETTINGS_VARIABLE} is not set: start workers with --workers")
    settings: dict[str, Any] = json.loads(raw)
    return create_app(**settings)


def run_workers(config_kwargs: dict[str, Any], app_settings: dict[str, Any], *,
                workers: int, sock: socket.socket) -> None:
    """Serve ``sock`` with ``workers`` processes until Ctrl+C / SIGTERM (uvicorn's supervisor:
    it restarts a worker that dies)."""
    if not app_settings.get("secret"):
        raise ValueError("workers must share a URL-signing secret")
    os.environ[SETTINGS_VARIABLE] = json.dumps(app_settings)
    config = uvicorn.Config(_FACTORY, factory=True, workers=workers, **config_kwargs)
    # uvicorn 0.30–0.3x took the worker's target; newer versions build the server themselves.
    if "target" in inspect.signature(Multiprocess).parameters:
        server = uvicorn.Server(config)
        Multiprocess(config, target=server.run, sockets=[sock]).run()  # type: ignore[call-arg,unused-ignore]
    else:
        Multiprocess(config, sockets=[sock]).run()
