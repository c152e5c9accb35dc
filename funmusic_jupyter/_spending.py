"""Spending: what this kernel session has cost, what the library cost, and the budget.

- The session's running total counts the billed seconds of every song this process made (not
  songs reused from disk, which cost nothing, and not the simulator's, which is free). Every
  front end reports a finished song with ``record``: the worker (magic, panel) and the Python
  API do.
- ``check_budget`` is the one budget check, called before anything is sent. The budget is
  ``FunMusicMagics.budget`` when the extension is loaded (``%config FunMusicMagics.budget = 1``),
  else none, unless the caller passes one. It refuses a request to the real service once the
  session has spent the budget; the simulator is free and never refused.
- ``cost_report`` adds up a library's songs per day, the real service apart from the simulator.
  A partial song's billed length is unknown (the service never said), so it is not counted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from ._errors import BudgetExceededError
from ._html import BOX, TABLE, TD, TH, box_open, format_money
from ._html import escape as _e
from ._i18n import _, display_width, displaying, ngettext, pad, use_language

if TYPE_CHECKING:
    from ._library import LibraryEntry
    from ._models import Song

__all__ = [
    "CostReport",
    "check_budget",
    "configured",
    "cost_report",
    "record",
    "session_seconds",
    "session_total_text",
]

_lock = threading.Lock()
_billed_seconds = 0.0  # this process's songs from the real service
_songs = 0


def record(song: Song) -> None:
    """Count a song just made (not one reused from disk) in the session's spending."""
    global _billed_seconds, _songs
    if song.simulated or song.made_at is not None:
        return
    with _lock:
        _billed_seconds += float(song.duration)
        _songs += 1


def session_seconds() -> float:
    """Seconds billed by the real service in this session (this kernel process)."""
    with _lock:
        return _billed_seconds


def _reset_session() -> None:
    """Forget the session's spending (tests)."""
    global _billed_seconds, _songs
    with _lock:
        _billed_seconds, _songs = 0.0, 0


def configured(name: str, default: Any) -> Any:
    """``FunMusicMagics.<name>`` when the extension is loaded in this IPython, else ``default``:
    so ``%config`` reaches the panel and the Python API too."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return default
    shell = get_ipython()
    magics = shell.magics_manager.registry.get("FunMusicMagics") if shell is not None else None
    return getattr(magics, name, default) if magics is not None else default


def session_total_text(price_per_second: float, currency: str) -> str:
    """The metadata table's "Session total" row."""
    seconds = session_seconds()
    money = format_money(seconds * price_per_second, currency)
    budget = configured("budget", None)
    if isinstance(budget, (int, float)):
        return _("{money} ({seconds:g} s billed) of a {budget} budget").format(
            money=money, seconds=seconds, budget=format_money(float(budget), currency)
        )
    return _("{money} ({seconds:g} s billed)").format(money=money, seconds=seconds)


def check_budget(
    *,
    backend: str,
    budget: float | None = None,
    price_per_second: float | None = None,
    currency: str | None = None,
) -> None:
    """Raise ``BudgetExceededError`` (nothing is sent) when this session's spending has reached
    the budget. ``backend`` is the resolved one: the simulator is free and always allowed.
    ``None`` arguments take ``FunMusicMagics``'s configured values (no budget if not loaded)."""
    if backend == "simulator":
        return
    if budget is None:
        budget = configured("budget", None)
    if budget is None:
        return
    price = (
        price_per_second if price_per_second is not None else configured("price_per_second", 0.002)
    )
    money = currency if currency is not None else configured("currency", "CNY")
    seconds = session_seconds()
    spent = seconds * float(price)
    if spent >= float(budget):
        raise BudgetExceededError(
            _(
                "budget reached: this session has spent {spent} ({seconds:g} s billed) of its "
                "{budget} budget, so nothing was sent; raise it with "
                "%config FunMusicMagics.budget = <amount> (or budget=None to turn it off)"
            ).format(
                spent=format_money(spent, money),
                seconds=seconds,
                budget=format_money(float(budget), money),
            )
        )


# -- what the library cost ------------------------------------------------------------------------
@dataclass
class _Day:
    billed_seconds: float = 0.0
    cost: float = 0.0
    songs: int = 0
    simulated_seconds: float = 0.0
    simulated_songs: int = 0


@dataclass
class CostReport:
    """Billed seconds and cost per day (local time) and in total, real service apart from the
    simulator (free). ``days`` maps each day to its figures, newest first."""

    currency: str
    price_per_second: float
    days: dict[date, _Day] = field(default_factory=dict)
    partial_songs: int = 0
    # False outside a kernel (``funmusic cost``), where "this session" would always say 0 s.
    session: bool = True

    @property
    def billed_seconds(self) -> float:
        return round(sum(d.billed_seconds for d in self.days.values()), 6)

    @property
    def cost(self) -> float:
        return round(sum(d.cost for d in self.days.values()), 6)

    @property
    def simulated_seconds(self) -> float:
        return round(sum(d.simulated_seconds for d in self.days.values()), 6)

    def _rows(self) -> list[tuple[str, str, str, str]]:
        rows = []
        for day, d in self.days.items():
            rows.append(
                (
                    day.isoformat(),
                    _songs_seconds(d.songs, d.billed_seconds),
                    format_money(d.cost, self.currency),
                    _songs_seconds(d.simulated_songs, d.simulated_seconds),
                )
            )
        songs = sum(d.songs for d in self.days.values())
        sim = sum(d.simulated_songs for d in self.days.values())
        rows.append(
            (
                _("total"),
                _songs_seconds(songs, self.billed_seconds),
                format_money(self.cost, self.currency),
                _songs_seconds(sim, self.simulated_seconds),
            )
        )
        return rows

    def _footer(self) -> str:
        partial = (
            _(
                "; {count} partial song(s) not counted (their billed length is unknown)"
            ).format(count=self.partial_songs)
            if self.partial_songs
            else ""
        )
        if not self.session:
            return _("the simulator is free{partial}").format(partial=partial)
        session = session_total_text(self.price_per_second, self.currency)
        return _("this kernel session: {session}; the simulator is free{partial}").format(
            session=session, partial=partial
        )

    def _head(self) -> tuple[str, str, str, str]:
        return (_("day"), _("Fun-Music (billed)"), _("cost"), _("simulator (free)"))

    def __repr__(self) -> str:
        # The text/plain nbval compares: English whatever the language (see _i18n).
        with use_language("en"):
            return self.text()

    def text(self) -> str:
        """The table as text, in the current language (``repr`` is this, in English)."""
        rows = [self._head(), *self._rows()]
        footer = self._footer()
        # Display widths, not len(): a Chinese heading takes two columns a character.
        widths = [max(display_width(r[i]) for r in rows) for i in range(4)]
        lines = [
            "  ".join(pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        return "\n".join([*lines, footer])

    def _repr_html_(self) -> str:
        with displaying():
            return self._html()

    def _html(self) -> str:
        head = "".join(f'<th style="{TH} border-top: none;">{_e(c)}</th>' for c in self._head())
        body = "".join(
            "<tr>" + "".join(f'<td style="{TD}">{_e(c)}</td>' for c in r) + "</tr>"
            for r in self._rows()
        )
        return (
            f'{box_open("funmusic-cost", BOX)}<table style="{TABLE}"><thead><tr>{head}'
            f"</tr></thead><tbody>{body}</tbody></table><div>{_e(self._footer())}</div></div>"
        )


def _songs_seconds(songs: int, seconds: float) -> str:
    """``2 songs, 61.5 s``."""
    return ngettext("{count} song, {seconds:g} s", "{count} songs, {seconds:g} s", songs).format(
        count=songs, seconds=seconds
    )


def cost_report(
    entries: Iterable[LibraryEntry], *, price_per_second: float, currency: str,
    session: bool = True,
) -> CostReport:
    report = CostReport(currency=currency, price_per_second=price_per_second, session=session)
    for entry in sorted(entries, key=lambda e: e.when, reverse=True):
        if entry.partial or entry.duration is None:
            report.partial_songs += 1
            continue
        day = report.days.setdefault(entry.when.astimezone().date(), _Day())
        if entry.simulated:
            day.simulated_seconds += entry.duration
            day.simulated_songs += 1
        else:
            day.billed_seconds += entry.duration
            day.cost += entry.duration * price_per_second
            day.songs += 1
    return report
