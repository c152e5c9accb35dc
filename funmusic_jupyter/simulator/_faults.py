"""Fault injection for the simulator: the ``X-FunMusic-Fault`` header, parsed.

A fault is chosen per request, only by that explicit header, so a normal client never meets one
by accident. A value the simulator does not understand is refused (400) rather than ignored: a
typo must not silently give a normal song and a test that passes for the wrong reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FAULT_HEADER", "FAULT_SYNTAX", "SIMULATED_HEADER", "Fault", "FaultSyntaxError", "parse_fault",
]

FAULT_HEADER = "X-FunMusic-Fault"
SIMULATED_HEADER = "X-FunMusic-Simulated"

#: The accepted values, as the 400 message and the docs list them.
FAULT_SYNTAX = (
    "drop-after=N",
    "stall-after=N",
    "status=500",
    "status=503",
    "throttle=SECONDS",
    "throttle=SECONDSxTIMES",
    "error-event-after=N",
    "malformed-after=N",
    "inspection",
)

FaultKind = Literal[
    "drop-after", "stall-after", "status", "throttle", "error-event-after", "malformed-after",
    "inspection",
]
_AFTER_KINDS = ("drop-after", "stall-after", "error-event-after", "malformed-after")
_STATUSES = (500, 503)
# Bounds keep a fault from pinning a server thread for hours (a throttle of 1e9 s) by mistake.
_MAX_THROTTLE_SECONDS = 3600.0
_MAX_COUNT = 1_000_000
_THROTTLE = re.compile(r"^(?P<seconds>\d+(?:\.\d+)?|\.\d+)(?:x(?P<times>\d+))?$")


class FaultSyntaxError(ValueError):
    """The header's value is not one of ``FAULT_SYNTAX``; the message says what arrived."""


@dataclass(frozen=True)
class Fault:
    """One injected fault.

    ``after`` is the number of audio events sent before a stream fault strikes; ``status`` the
    HTTP status of ``status=``; ``seconds``/``times`` the Retry-After and the number of
    throttled attempts of ``throttle=`` (``None``: every attempt).
    """

    kind: FaultKind
    after: int = 0
    status: int = 0
    seconds: float = 0.0
    times: int | None = None

    @property
    def is_stream_fault(self) -> bool:
        """True for the faults that strike while the answer is being sent."""
        return self.kind in _AFTER_KINDS

    def header_value(self) -> str:
        """The header value that produces this fault (``parse_fault`` round-trips it)."""
        if self.kind == "inspection":
            return "inspection"
        if self.kind == "status":
            return f"status={self.status}"
        if self.kind == "throttle":
            text = f"throttle={self.seconds:g}"
            return text if self.times is None else f"{text}x{self.times}"
        return f"{self.kind}={self.after}"


def _refuse(value: str, why: str) -> FaultSyntaxError:
    return FaultSyntaxError(
        f"{FAULT_HEADER} must be one of {', '.join(FAULT_SYNTAX)}; got {value!r} ({why})"
    )


def parse_fault(value: str | None) -> Fault | None:
    """The fault a header value asks for, ``None`` for no header; raise ``FaultSyntaxError``."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise _refuse(value, "empty value")
    name, sep, arg = text.partition("=")
    name = name.strip().lower()
    arg = arg.strip()
    if name == "inspection":
        if sep:
            raise _refuse(value, "inspection takes no value")
        return Fault("inspection")
    if not sep:
        known = {s.split("=")[0] for s in FAULT_SYNTAX}
        why = "missing '=' and a value" if name in known else "unknown fault"
        raise _refuse(value, why)
    if name in _AFTER_KINDS:
        if not arg.isdigit() or not arg.isascii() or int(arg) > _MAX_COUNT:
            raise _refuse(value, f"N must be a whole number of audio events, 0–{_MAX_COUNT:,}")
        return Fault(name, after=int(arg))  # type: ignore[arg-type]
    if name == "status":
        if not arg.isdigit() or int(arg) not in _STATUSES:
            raise _refuse(value, f"status must be {' or '.join(map(str, _STATUSES))}")
        return Fault("status", status=int(arg))
    if name == "throttle":
        match = _THROTTLE.match(arg.lower())
        if match is None:
            raise _refuse(value, "throttle wants SECONDS or SECONDSxTIMES, e.g. 2 or 0.5x1")
        seconds = float(match.group("seconds"))
        times = int(match.group("times")) if match.group("times") else None
        if not math.isfinite(seconds) or seconds > _MAX_THROTTLE_SECONDS:
            raise _refuse(value, f"SECONDS must be at most {_MAX_THROTTLE_SECONDS:g}")
        if times is not None and not 1 <= times <= _MAX_COUNT:
            raise _refuse(value, f"TIMES must be 1–{_MAX_COUNT:,}")
        return Fault("throttle", seconds=seconds, times=times)
    raise _refuse(value, "unknown fault")
