"""The building blocks every output shares: inline styles, escaping, tables, notes, titles.

Inline styles because an output's HTML cannot rely on a stylesheet being there (nbviewer,
VS Code, a saved notebook opened elsewhere). Colours are JupyterLab theme variables with
translucent fallbacks, so the same markup works on white and on black. ``escape`` is applied to
every piece of text that came from the user or the service.
"""

from __future__ import annotations

import html
import os
import urllib.parse
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from ._i18n import _, clip, current_language
from ._validation import first_line

__all__ = [
    "BADGE",
    "BORDER",
    "BOX",
    "DASH",
    "ERROR_BOX",
    "HEADING",
    "MUTED",
    "NEUTRAL_BOX",
    "NOTE",
    "TABLE",
    "TD",
    "TH",
    "box_open",
    "escape",
    "format_money",
    "link_html",
    "link_path",
    "local_time",
    "notes_html",
    "notes_text",
    "path_text",
    "rows_html",
    "seconds_text",
    "shown_path",
    "title_of",
]

BORDER = "var(--jp-border-color2, rgba(128, 128, 128, 0.35))"
BOX = (
    "font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: 13px;"
    " line-height: 1.45; color: var(--jp-ui-font-color1, inherit);"
    f" border: 1px solid {BORDER}; border-radius: 6px; padding: 8px 12px; margin: 2px 0;"
    " max-width: 760px; box-sizing: border-box;"
)
ERROR_BOX = (
    BOX + " border-left: 4px solid rgba(217, 83, 79, 0.9);"
    " background: rgba(217, 83, 79, 0.08);"
)
# A stop the user asked for: marked, but in no alarming colour.
NEUTRAL_BOX = BOX + " border-left: 4px solid rgba(128, 128, 128, 0.6);"
MUTED = "opacity: 0.72;"
BADGE = (
    "display: inline-block; margin-left: 0.5em; padding: 0 0.45em; border-radius: 3px;"
    " font-size: 11px; font-weight: 600; letter-spacing: 0.02em; vertical-align: middle;"
    " background: rgba(255, 170, 0, 0.18); border: 1px solid rgba(255, 170, 0, 0.7);"
)
TABLE = "border-collapse: collapse; margin: 6px 0 2px; font-size: 12px;"
# JupyterLab right-aligns table cells in outputs: set alignment explicitly.
TH = (
    "text-align: left; font-weight: 600; padding: 2px 12px 2px 0; vertical-align: top;"
    f" white-space: nowrap; border-top: 1px solid {BORDER};"
)
TD = (
    f"text-align: left; padding: 2px 0; vertical-align: top; border-top: 1px solid {BORDER};"
    " word-break: break-all;"
)
NOTE = (
    "margin: 4px 0; padding: 2px 8px; font-size: 12px;"
    " border-left: 3px solid rgba(255, 170, 0, 0.8); background: rgba(255, 170, 0, 0.08);"
)
HEADING = "font-weight: 600; margin: 8px 0 2px; font-size: 12px; text-transform: capitalize;"

DASH = "—"


# Chinese output says so (lang): browsers then take Chinese glyphs for Han characters (not
# Japanese ones) from the front end's font stack, and a long run with no break opportunity
# (a path, a URL next to Chinese text) wraps instead of overflowing the box. English output
# keeps its exact bytes: notebooks checked by nbval store it.
_ZH_BOX = ' lang="zh-CN"'
_ZH_WRAP = " overflow-wrap: anywhere;"


def box_open(css_class: str, style: str) -> str:
    """The opening tag of an output's outer box, marked with the current language when it is
    not English."""
    if current_language() == "zh":
        return f'<div class="{css_class}" style="{style}{_ZH_WRAP}"{_ZH_BOX}>'
    return f'<div class="{css_class}" style="{style}">'


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def format_money(amount: float, currency: str) -> str:
    """``0.06 CNY``: at least two decimals, up to four, no float noise."""
    text = f"{amount:.4f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    frac = frac + "0" * (2 - len(frac)) if len(frac) < 2 else frac
    return f"{whole}.{frac} {currency}".strip()


def seconds_text(value: float | None, digits: int = 2) -> str:
    return DASH if value is None else _("{seconds} s").format(seconds=f"{value:.{digits}f}")


def local_time(moment: datetime | None) -> str:
    if moment is None:
        return DASH
    local = moment.astimezone()  # naive values are taken as local time already
    zone = local.strftime("%Z") or local.strftime("UTC%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {zone}"


def path_text(value: str | os.PathLike[str] | None) -> str:
    return DASH if value is None else os.fspath(value)


def rows_html(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(
        f'<tr><th scope="row" style="{TH}">{escape(k)}</th><td style="{TD}">{escape(v)}</td></tr>'
        for k, v in rows
    )
    return f'<table style="{TABLE}"><tbody>{body}</tbody></table>'


def notes_html(notes: Sequence[str]) -> str:
    return "".join(f'<div class="funmusic-note" style="{NOTE}">{escape(n)}</div>' for n in notes)


def notes_text(notes: Sequence[str]) -> str:
    return "".join(_("\nnote: {note}").format(note=n) for n in notes)


def title_of(text: str) -> str:
    """The first line of lyrics or a prompt, cut to 80 characters (never inside one)."""
    line = first_line(text)
    return line if len(line) <= 80 else clip(line, 79) + "…"


def link_path(path: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None) -> str:
    """``path`` as a URL relative to ``base_dir`` (default: the working directory), which is
    the notebook's folder in JupyterLab; a ``file:`` URI when there is none (another drive)."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    try:
        relative = os.path.relpath(Path(path).resolve(), base.resolve())
    except ValueError:
        return Path(path).resolve().as_uri()
    return urllib.parse.quote(Path(relative).as_posix())


def shown_path(path: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None) -> str:
    """``path`` as the user reads it: relative inside ``base_dir`` (default: the working
    directory), where it is short and stays true when the folder moves; else absolute."""
    absolute = Path(path).resolve()
    try:
        return absolute.relative_to(Path(base_dir or Path.cwd()).resolve()).as_posix()
    except ValueError:
        return os.fspath(absolute)


def link_html(
    path: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None, css_class: str
) -> str:
    """``<a href="relative/path">shown path</a>``: opens the file from JupyterLab."""
    return (
        f'<a href="{escape(link_path(path, base_dir))}" class="{css_class}">'
        f"{escape(shown_path(path, base_dir))}</a>"
    )
