"""``python -m funmusic_jupyter.simulator``: the simulator as a standalone (classroom) server.

The startup banner goes to stdout: it is the program's output (the base URL to use). Warnings
go to stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence

from .._config import mask_key
from ._faults import FAULT_HEADER
from ._server import (
    _Server,
    base_url_for,
    bind_socket,
    cpu_count,
    is_loopback,
    make_config,
)
from ._tokens import SECRET_VARIABLE

#: Where ``--api-key`` defaults from.
API_KEY_VARIABLE = "FUNMUSIC_SIMULATOR_API_KEY"

__all__ = ["main"]


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0; got {text!r}") from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0; got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _non_negative(text)
    if value == 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1; got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port 0-65535; got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0-65535; got {text!r}")
    return value


_PROG = "python -m funmusic_jupyter.simulator"


def build_parser(prog: str = _PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Offline Fun-Music SIMULATOR: speaks the DashScope Fun-Music protocol and "
        "makes real (synthesized) songs locally. Nothing is sent to Alibaba Cloud, nothing is "
        "billed.",
        epilog=f"Fault injection: send the header {FAULT_HEADER} (see "
        "`python -m pydoc funmusic_jupyter.simulator`).",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; 0.0.0.0 serves the network)")
    parser.add_argument("--port", type=_port, default=8765,
                        help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--speed", type=_non_negative, default=1.0,
                        help="real-time factor: audio seconds per wall second "
                        "(default 1; 0 or inf: as fast as possible)")
    parser.add_argument("--first-chunk-delay", type=_non_negative, default=0.0, metavar="S",
                        help="seconds before the first audio (default 0)")
    # The variable keeps a classroom's key out of the process list (`ps` shows arguments).
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_VARIABLE) or None,
                        metavar="KEY",
                        help="require this key as 'Authorization: Bearer KEY' (default: "
                        f"${API_KEY_VARIABLE} if set, which keeps it out of `ps`; else none)")
    parser.add_argument("--url-ttl", type=_positive, default=86400.0, metavar="S",
                        help="seconds a download URL stays valid (default 86400)")
    parser.add_argument("--rpm", type=_positive_int, default=180, metavar="N",
                        help="requests per minute before 429 Throttling.RateQuota, counted by "
                        "this instance as a whole, whatever --workers (default 180)")
    parser.add_argument("--secret", default=os.environ.get(SECRET_VARIABLE) or None,
                        metavar="TEXT",
                        help="signs download URLs: instances with the same secret serve each "
                        f"other's URLs (default: ${SECRET_VARIABLE} if set, which keeps it out "
                        "of `ps`; else a random one per run)")
    parser.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help="processes that synthesize and encode songs, beside the one that "
                        f"serves them (default: one per core, here {_cores()})")
    return parser


def _cores() -> int:
    return cpu_count()


def main(argv: Sequence[str] | None = None, *, prog: str = _PROG) -> int:
    """Run the server until Ctrl+C. ``prog`` names the command in usage and errors
    (``funmusic simulator`` runs this too)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    from ._app import create_app

    if args.api_key is not None and not args.api_key.strip():
        parser.error("--api-key must not be empty")
    if args.secret is not None and not args.secret.strip():
        parser.error(f"--secret (or ${SECRET_VARIABLE}) must not be empty")
    workers = args.workers or _cores()
    app = create_app(speed=args.speed, first_chunk_delay=args.first_chunk_delay,
                     api_key=args.api_key, url_ttl=args.url_ttl, rpm=args.rpm,
                     secret=args.secret.strip() if args.secret else None, workers=workers)
    pool = app.state.simulator.pool
    if not is_loopback(args.host):
        sys.stderr.write(
            f"WARNING: binding to {args.host}: anyone who can reach this machine can use the "
            "simulator" + ("" if args.api_key else " (add --api-key to require a key)") + ".\n"
        )
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        why = exc.strerror or exc
        sys.stderr.write(f"error: cannot listen on {args.host}:{args.port}: {why}\n")
        pool.shutdown()
        return 1
    port = sock.getsockname()[1]
    base_url = base_url_for(args.host, port)
    speed = "unpaced" if args.speed == 0 or math.isinf(args.speed) else f"{args.speed:g}x real time"
    key = f"required ({mask_key(args.api_key)})" if args.api_key else "not required"
    shared = ("the given secret (any instance with it serves them)" if args.secret
              else "a random secret (valid on this run only)")
    banner = (
        f"Fun-Music SIMULATOR listening on {base_url}\n"
        "  This is an offline simulator, not Alibaba Cloud: songs are synthesized locally and "
        "nothing is billed.\n"
        f"  Use it with: DASHSCOPE_HTTP_BASE_URL={base_url}\n"
        f"  speed {speed}, first-chunk delay {args.first_chunk_delay:g} s, API key {key}, "
        f"URLs valid {args.url_ttl:g} s, {args.rpm} requests/minute\n"
        f"  {workers} synthesis process{'es' if workers > 1 else ''}; download URLs signed with "
        f"{shared}\n"
        f"  Faults on request with the header {FAULT_HEADER}. Ctrl+C to stop.\n"
    )
    if args.host in ("0.0.0.0", "::"):
        banner += "  (from other machines, use this machine's address instead of the wildcard)\n"

    def announce() -> None:
        pool.warm()  # the first songs need not wait for the workers to import numpy
        sys.stdout.write(banner)
        sys.stdout.flush()

    server = _Server(make_config(app, embedded=False), on_started=announce)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
