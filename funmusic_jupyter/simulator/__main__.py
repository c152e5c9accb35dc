"""``python -m funmusic_jupyter.simulator``: the simulator as a standalone (classroom) server.

The startup banner goes to stdout: it is the program's output (the base URL to use). Warnings
go to stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence

from .._config import mask_key
from .._i18n import _, current_language, localise_argparse, ngettext, use_language
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
        raise argparse.ArgumentTypeError(
            _("expected a number >= 0; got {text!r}").format(text=text)
        ) from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(
            _("expected a number >= 0; got {text!r}").format(text=text)
        )
    return value


def _positive(text: str) -> float:
    value = _non_negative(text)
    if value == 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(
            _("expected a finite number > 0; got {text!r}").format(text=text)
        )
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("expected a whole number >= 1; got {text!r}").format(text=text)
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            _("expected a whole number >= 1; got {text!r}").format(text=text)
        )
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("expected a port 0-65535; got {text!r}").format(text=text)
        ) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            _("expected a port 0-65535; got {text!r}").format(text=text)
        )
    return value


_PROG = "python -m funmusic_jupyter.simulator"


def build_parser(prog: str = _PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=_(
            "Offline Fun-Music SIMULATOR: speaks the DashScope Fun-Music protocol and makes real "
            "(synthesized) songs locally. Nothing is sent to Alibaba Cloud, nothing is billed."
        ),
        epilog=_(
            "Fault injection: send the header {header} (see "
            "`python -m pydoc funmusic_jupyter.simulator`)."
        ).format(header=FAULT_HEADER),
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help=_("address to bind (default 127.0.0.1; 0.0.0.0 serves the network)"))
    parser.add_argument("--port", type=_port, default=8765,
                        help=_("port (default 8765; 0 picks a free one)"))
    parser.add_argument("--speed", type=_non_negative, default=1.0,
                        help=_("real-time factor: audio seconds per wall second "
                               "(default 1; 0 or inf: as fast as possible)"))
    parser.add_argument("--first-chunk-delay", type=_non_negative, default=0.0, metavar="S",
                        help=_("seconds before the first audio (default 0)"))
    # The variable keeps a classroom's key out of the process list (`ps` shows arguments).
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_VARIABLE) or None,
                        metavar="KEY",
                        help=_("require this key as 'Authorization: Bearer KEY' (default: "
                               "${variable} if set, which keeps it out of `ps`; else none)"
                               ).format(variable=API_KEY_VARIABLE))
    parser.add_argument("--url-ttl", type=_positive, default=86400.0, metavar="S",
                        help=_("seconds a download URL stays valid (default 86400)"))
    parser.add_argument("--rpm", type=_positive_int, default=180, metavar="N",
                        help=_("requests per minute before 429 Throttling.RateQuota, counted "
                               "by this instance as a whole, whatever --workers (default 180)"))
    parser.add_argument("--secret", default=os.environ.get(SECRET_VARIABLE) or None,
                        metavar="TEXT",
                        help=_("signs download URLs: instances with the same secret serve "
                               "each other's URLs (default: ${variable} if set, which keeps it "
                               "out of `ps`; else a random one per run)"
                               ).format(variable=SECRET_VARIABLE))
    parser.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help=_("processes that synthesize and encode songs, beside the one "
                               "that serves them (default: one per core, here {cores})"
                               ).format(cores=_cores()))
    return parser


def _as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cores() -> int:
    return cpu_count()


def _banner(args: argparse.Namespace, base_url: str, workers: int) -> str:
    """What the server prints once it listens: where it is, and that it is not Alibaba Cloud."""
    speed = (_("unpaced") if args.speed == 0 or math.isinf(args.speed)
             else _("{speed:g}x real time").format(speed=args.speed))
    key = (_("required ({masked})").format(masked=mask_key(args.api_key)) if args.api_key
           else _("not required"))
    shared = (_("the given secret (any instance with it serves them)") if args.secret
              else _("a random secret (valid on this run only)"))
    lines = [
        _("Fun-Music SIMULATOR listening on {url}").format(url=base_url),
        "  " + _("This is an offline simulator, not Alibaba Cloud: songs are synthesized "
                 "locally and nothing is billed."),
        "  " + _("Use it with: DASHSCOPE_HTTP_BASE_URL={url}").format(url=base_url),
        "  " + _("speed {speed}, first-chunk delay {delay:g} s, API key {key}, URLs valid "
                 "{ttl:g} s, {rpm} requests/minute").format(
            speed=speed, delay=args.first_chunk_delay, key=key, ttl=args.url_ttl, rpm=args.rpm),
        "  " + ngettext("{n} synthesis process; download URLs signed with {shared}",
                        "{n} synthesis processes; download URLs signed with {shared}",
                        workers).format(n=workers, shared=shared),
        "  " + _("Faults on request with the header {header}. Ctrl+C to stop.").format(
            header=FAULT_HEADER),
    ]
    if args.host in ("0.0.0.0", "::"):
        lines.append("  " + _("(from other machines, use this machine's address instead of the "
                              "wildcard)"))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, *, prog: str = _PROG) -> int:
    """Run the server until Ctrl+C. ``prog`` names the command in usage and errors
    (``funmusic simulator`` runs this too). People read its help, errors and banner in the
    language setting (``funmusic --language``, else ``FUNMUSIC_LANGUAGE``, else the locale);
    what it answers over HTTP stays English, like the service's own messages."""
    localise_argparse()
    with use_language(current_language()):
        return _main(argv, prog)


def _main(argv: Sequence[str] | None, prog: str) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    from ._app import create_app

    if args.api_key is not None and not args.api_key.strip():
        parser.error(_("--api-key must not be empty"))
    if args.secret is not None and not args.secret.strip():
        parser.error(_("--secret (or ${variable}) must not be empty").format(
            variable=SECRET_VARIABLE))
    workers = args.workers or _cores()
    app = create_app(speed=args.speed, first_chunk_delay=args.first_chunk_delay,
                     api_key=args.api_key, url_ttl=args.url_ttl, rpm=args.rpm,
                     secret=args.secret.strip() if args.secret else None, workers=workers)
    pool = app.state.simulator.pool
    if not is_loopback(args.host):
        warning = (
            _("WARNING: binding to {host}: anyone who can reach this machine can use the "
              "simulator.")
            if args.api_key
            else _("WARNING: binding to {host}: anyone who can reach this machine can use the "
                   "simulator (add --api-key to require a key).")
        )
        sys.stderr.write(warning.format(host=args.host) + "\n")
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        why = exc.strerror or exc
        sys.stderr.write(_("error: cannot listen on {host}:{port}: {why}").format(
            host=args.host, port=args.port, why=why) + "\n")
        pool.shutdown()
        return 1
    port = sock.getsockname()[1]
    base_url = base_url_for(args.host, port)
    banner = _banner(args, base_url, workers)

    def announce() -> None:
        pool.warm()  # the first songs need not wait for the workers to import numpy
        sys.stdout.write(banner)
        sys.stdout.flush()

    server = _Server(make_config(app, embedded=False), on_started=announce)
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on SIGTERM (systemd, docker stop), then raises the
        # signal again; with the default handler that ends the process before the pool is shut
        # down, leaving its workers' semaphores behind. End like Ctrl+C instead.
        signal.signal(signal.SIGTERM, _as_interrupt)
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
