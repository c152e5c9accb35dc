"""The embedded simulator's own process (``main``, run by ``_embedded``'s bootstrap).

Started by ``start_embedded()`` so that synthesis never competes with the user's kernel for its
GIL. The protocol with the parent is two pipes:

- stdout: one line, the port it listens on (``127.0.0.1``), once it serves; then stdout and
  stderr are pointed at the null device, so nothing it does can reach the user's console.
- stdin: never written. It reaches end-of-file when the parent closes it (a clean stop) or
  dies, however it dies (a killed kernel included): the child then exits. On POSIX the parent's
  pid is watched too, in case a forked grandchild of the kernel keeps the pipe open.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence

__all__ = ["main"]

_PARENT_POLL = 1.0
_GRACE = 5.0  # seconds to end open streams after the parent is gone, then exit regardless


def _silence_output() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _load_synthesis() -> None:
    from . import _encode  # noqa: F401 (numpy, lameenc and the music, imported for later)


def _exit_when_orphaned(stop: threading.Event) -> None:
    def on_eof() -> None:
        try:
            while sys.stdin.buffer.read(65536):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    def on_reparent(parent: int) -> None:
        while not stop.wait(_PARENT_POLL):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=on_eof, name="parent-pipe", daemon=True).start()
    if os.name == "posix":
        threading.Thread(target=on_reparent, args=(os.getppid(),), name="parent-pid",
                         daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="funmusic_jupyter.simulator._child")
    parser.add_argument("--speed", type=float, required=True)
    parser.add_argument("--first-chunk-delay", type=float, required=True)
    args = parser.parse_args(argv)

    import uvicorn

    from ._app import create_app
    from ._server import _Server, bind_socket, config_kwargs

    app = create_app(speed=args.speed, first_chunk_delay=args.first_chunk_delay)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    stop = threading.Event()

    def announce() -> None:
        sys.stdout.write(f"{port}\n")
        sys.stdout.flush()
        _silence_output()
        # Load the synthesis now, beside the first request rather than before listening.
        threading.Thread(target=_load_synthesis, name="warm-up", daemon=True).start()

    server = _Server(uvicorn.Config(app, **config_kwargs(embedded=True)), on_started=announce)

    def watch() -> None:
        stop.wait()
        app.state.simulator.closing = True
        server.should_exit = True
        time.sleep(_GRACE)
        os._exit(0)  # a stuck connection must not keep an orphan alive

    _exit_when_orphaned(stop)
    threading.Thread(target=watch, name="stopper", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
