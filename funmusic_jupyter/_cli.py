"""``funmusic``: the command line (also ``python -m funmusic_jupyter``).

    funmusic lab notebooks/01_quickstart.ipynb   # JupyterLab, as root too
    funmusic make "Rainy night piano" -o rain.mp3  # one song; prints its path (_commands)
    funmusic batch songs.txt --out songs/         # one song a line, within the rate limit
    funmusic list 10 / funmusic cost              # the song library and its spending
    funmusic simulator --port 8765 --speed 4     # = python -m funmusic_jupyter.simulator

One ``argparse`` parser with a sub-parser per command; each command is a function that takes
the parsed namespace and the arguments it passes on, and returns the exit code. Exit codes:
0 done, 1 failed, 2 bad usage (argparse's own convention).

Language: ``--language auto|en|zh`` (before the command) or ``FUNMUSIC_LANGUAGE``, else the
locale. It is read from the arguments before the parser is built, because the parser's help
texts are written in it; everything else then runs inside ``use_language`` (``_i18n``), which
argparse's own words ("usage:", "invalid choice") follow too.

Why ``lab``: ``jupyter lab`` refuses to start as root (a container, a classroom VM) unless it is
given ``--allow-root``. ``funmusic lab`` adds that flag when, and only when, the effective user
is root; for everyone else it is ``jupyter lab`` with exactly the arguments given.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ._commands import add_commands
from ._errors import ConfigurationError
from ._i18n import LANGUAGES, N_, _, localise_argparse, resolve_language, use_language
from ._library_commands import add_library_commands
from ._version import __version__

__all__ = ["build_parser", "lab_argv", "main"]

_EXAMPLES = N_("""\
examples:
  funmusic make "Melancholic piano, rainy night yearning" -o rain.mp3
      make one song and print its path; `funmusic make --help` shows its options
  funmusic batch songs.txt --out songs/ --rpm 60
      one song per line of songs.txt, at most 60 requests a minute, then a summary table
  funmusic list 10
      the ten newest songs saved in ./funmusic-output (nothing is sent)
  funmusic cost
      billed seconds and cost per day and in total; the simulator's songs are free
  funmusic lab notebooks/01_quickstart.ipynb
      open the quickstart notebook in JupyterLab (no key set: songs come from the simulator)
  funmusic lab --port 8899 --no-browser
      any option of jupyter lab is passed on; `funmusic lab --help` shows them
  funmusic simulator --host 0.0.0.0 --port 8765 --speed 4
      a simulator for a classroom; `funmusic simulator --help` shows its options
""")

_LAB_HELP = N_(
    "run JupyterLab with these arguments (adds --allow-root only when run as root)"
)
_NO_LAB = N_(
    "funmusic lab: JupyterLab is not installed for {python}; "
    "install it with: {python} -m pip install 'funmusic-jupyter[lab]'\n"
)
# Flags that already settle the question: the user's own choice wins.
_ROOT_FLAGS = ("--allow-root", "--no-allow-root", "--ServerApp.allow_root")

Command = Callable[[argparse.Namespace, list[str]], int]


def is_root() -> bool:
    """Whether the effective user is root (never on Windows, which has no euid)."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def lab_argv(args: Sequence[str], *, root: bool, python: str = sys.executable) -> list[str]:
    """The command ``funmusic lab ARGS`` runs: this interpreter's JupyterLab with ``args``,
    plus ``--allow-root`` for root unless ``args`` already decide it. Nothing added otherwise."""
    argv = [python, "-m", "jupyterlab"]
    decided = any(a.split("=", 1)[0] in _ROOT_FLAGS for a in args)
    if root and not decided:
        # First, not last: anything after a "--" in args would be taken as a file name.
        argv.append("--allow-root")
    return argv + list(args)


def _exec(argv: list[str]) -> int:
    """Become ``argv`` (POSIX), so Ctrl+C reaches JupyterLab's own shutdown prompt directly and
    its exit code is ours; elsewhere, run it and wait."""
    if os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)  # returns only by raising OSError
    return subprocess.call(argv)


def _lab(args: argparse.Namespace, rest: list[str]) -> int:
    if importlib.util.find_spec("jupyterlab") is None:
        sys.stderr.write(_(_NO_LAB).format(python=sys.executable))
        return 1
    try:
        code = _exec(lab_argv(rest, root=is_root()))
    except OSError as exc:
        sys.stderr.write(
            _("funmusic lab: cannot start JupyterLab: {reason}\n").format(
                reason=exc.strerror or exc
            )
        )
        return 1
    return 0 if code == 0 else 1


def _simulator(args: argparse.Namespace, rest: list[str]) -> int:
    from .simulator.__main__ import main as simulator_main

    return simulator_main(rest, prog="funmusic simulator")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse's usage line, then one line saying what was wrong; exit code 2.
        self.print_usage(sys.stderr)
        self.exit(
            2,
            _("{prog}: error: {message} (see {command} --help)\n").format(
                prog=self.prog, message=message, command=self.prog.split()[0]
            ),
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="funmusic",
        description=_(
            "Fun-Music in Jupyter: make songs, start JupyterLab or the offline simulator."
        ),
        epilog=_(_EXAMPLES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"funmusic {__version__}",
        help=_("show program's version number and exit"),
    )
    # Read before the parser exists (_language_option); declared so argparse accepts it.
    parser.add_argument(
        "--language",
        choices=LANGUAGES,
        help=_("en, zh, or auto: FUNMUSIC_LANGUAGE, else the locale"),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Pass-through commands take no options of their own: everything after the command name,
    # --help included, belongs to the program they run.
    for name, run, help_text in (
        ("lab", _lab, _(_LAB_HELP)),
        ("simulator", _simulator, _("run the offline Fun-Music simulator as a server")),
    ):
        sub = commands.add_parser(name, help=help_text, add_help=False)
        sub.set_defaults(run=run, passthrough=True)
    add_commands(commands)
    add_library_commands(commands)
    return parser


def _language_option(argv: Sequence[str]) -> str | None:
    """``--language X`` / ``--language=X`` given before the command, else None."""
    for i, arg in enumerate(argv):
        if arg == "--language":
            return argv[i + 1] if i + 1 < len(argv) else ""
        if arg.startswith("--language="):
            return arg.split("=", 1)[1]
        if not arg.startswith("-"):
            return None  # the command: what follows is its own (lab passes everything on)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """The ``funmusic`` console script. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        language = resolve_language(_language_option(argv))
    except ConfigurationError as exc:
        sys.stderr.write(_("funmusic: error: {message}\n").format(message=exc))
        return 2
    localise_argparse()
    with use_language(language):
        return _main(argv)


def _main(argv: list[str]) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    # A pass-through command takes everything after its name; anything else unknown (an option
    # before the command name) is a mistake, not something to hand on.
    passed = argv[argv.index(args.command) + 1 :] if getattr(args, "passthrough", False) else []
    stray = rest[: len(rest) - len(passed)]
    if stray or rest[len(stray) :] != passed:
        parser.error(
            _("unrecognized arguments: %s") % " ".join(stray or rest)  # argparse's own words
        )
    run: Command = args.run
    return run(args, passed)
