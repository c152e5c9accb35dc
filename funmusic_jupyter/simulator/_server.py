"""uvicorn in a background daemon thread on a loopback port: for tests, notebooks and the CLI.

We bind the listening socket ourselves and hand it to uvicorn (``serve(sockets=[sock])``), so
the port is known before the thread starts and no other process can take it in between
("port 0, then ask" races). uvicorn only installs signal handlers on the main thread
(``Server.capture_signals`` in 0.29+ checks ``threading.main_thread()``), so a server thread
never steals the kernel's Ctrl+C; the CLI runs the same server on the main thread and does get
uvicorn's Ctrl+C handling.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from ._app import API_PREFIX, SimulatorState, create_app

__all__ = ["SimulatorServer", "base_url_for", "bind_socket", "config_kwargs", "cpu_count",
           "is_loopback", "make_config"]

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


def cpu_count() -> int:
    """The cores this process may run on (its affinity where the OS says), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def base_url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}{API_PREFIX}"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free port, read it from the socket)."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a restarted simulator can rebind a port still in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.set_inheritable(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, saying when it is listening (an event for threads, a callback)."""

    def __init__(self, config: uvicorn.Config, *,
                 on_started: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()
        self.ready.set()


def config_kwargs(*, embedded: bool = True) -> dict[str, Any]:
    """uvicorn's settings but the app: warnings only, no access log; ``embedded`` for a server
    inside a host process (a kernel, pytest), whose logging uvicorn must not reconfigure
    (warnings still reach the root logger)."""
    return {
        # Plain asyncio: older uvicorn versions install uvloop's policy process-wide for "auto",
        # which a host process (a kernel) must not get from a background server.
        "loop": "asyncio" if embedded else "auto",
        "log_config": None if embedded else uvicorn.config.LOGGING_CONFIG,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "off",
        "timeout_graceful_shutdown": 5,
    }


def make_config(app: Starlette, *, embedded: bool = True) -> uvicorn.Config:
    """uvicorn's settings for ``app`` (see ``config_kwargs``)."""
    return uvicorn.Config(app, **config_kwargs(embedded=embedded))


class SimulatorServer:
    """The simulator on ``http://HOST:PORT/api/v1`` in a daemon thread; a context manager.

    ``port=0`` picks a free port. Extra keyword arguments go to ``create_app`` (``speed``,
    ``first_chunk_delay``, ``api_key``, ``url_ttl``, ``rpm``, ``secret``, ``workers``).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **create_app_kwargs: Any) -> None:
        self.host = host
        self.port = port
        self.app = create_app(**create_app_kwargs)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.base_url = ""

    @property
    def state(self) -> SimulatorState:
        state: SimulatorState = self.app.state.simulator
        return state

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._server is not None \
            and self._server.started and not self._server.should_exit

    def start(self) -> SimulatorServer:
        with self._lock:
            if self._thread is not None:
                if self.is_running:
                    return self
                raise RuntimeError("this SimulatorServer was stopped; create a new one")
            sock = bind_socket(self.host, self.port)
            self.port = sock.getsockname()[1]
            server = _Server(make_config(self.app))
            failure: list[BaseException] = []

            def run() -> None:
                try:
                    server.run(sockets=[sock])
                except BaseException as exc:  # SystemExit on a startup failure, too
                    failure.append(exc)
                finally:
                    sock.close()
                    server.ready.set()  # never leave start() waiting on a dead thread

            thread = threading.Thread(target=run, name=f"funmusic-simulator-{self.port}",
                                      daemon=True)
            self._server, self._thread = server, thread
            thread.start()
            if not server.ready.wait(_START_TIMEOUT) or not server.started:
                server.should_exit = True
                thread.join(_STOP_TIMEOUT)
                why = f": {failure[0]!r}" if failure else ""
                raise RuntimeError(f"the Fun-Music simulator did not start{why}")
            self.base_url = base_url_for(self.host, self.port)
            return self

    def stop(self) -> None:
        """Stop serving: open streams are cut, the thread is joined. Idempotent."""
        with self._lock:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            self.state.closing = True
            server.should_exit = True
            if thread is not threading.current_thread():
                thread.join(_STOP_TIMEOUT)
                if thread.is_alive():  # a stuck connection: stop waiting for it
                    server.force_exit = True
                    thread.join(_STOP_TIMEOUT)
            if self.state.pool is not None:
                self.state.pool.shutdown()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url or f"{self.host}:{self.port} (not started)"
        return f"<SimulatorServer {where} {'running' if self.is_running else 'stopped'}>"
