"""Every error funmusic-jupyter raises, and the one function that maps API answers to them.

    FunMusicError
    ├── ValidationError            bad input, caught before anything is sent (also a ValueError)
    ├── ConfigurationError         bad settings (base URL, endpoint, missing key for backend="api")
    ├── GenerationCancelled        the user stopped a song; ``partial_audio`` holds what arrived
    ├── BudgetExceededError        the session's spending reached its budget: nothing was sent
    └── APIError                   status_code, code, message, request_id, partial_audio
        ├── BadRequestError            400 InvalidParameter, 404 Model.NotExist, other 4xx
        │   └── ContentInspectionError 400 DataInspectionFailed
        ├── AuthenticationError        401 InvalidApiKey
        ├── PermissionDeniedError      403 AccessDenied, 400 Arrearage (never retried)
        ├── RateLimitError             429 Throttling*, with ``retry_after``
        ├── ServerError                5xx
        ├── APIConnectionError         no answer from the server
        │   └── APITimeoutError        connect, read or idle-between-events timeout
        └── StreamInterruptedError     the stream ended or broke before its final event

Every API error raised after audio started arriving carries every byte received in
``partial_audio``, so nothing the user paid for is lost.

All of them render in IPython as one line (``_render_traceback_``): a traceback is never what a
notebook user needs for a bad lyric or a throttled account. An ``APIError``'s ``message`` is
always one short line (the first line of what the server said, cut short); the server's whole
answer stays in ``body``. Every message that shows a value the user or a server gave goes
through ``quote``, so a 5,000-character value comes back as a short excerpt.
"""

from __future__ import annotations

import email.utils
import html
import json
import re
import reprlib
import time
from collections.abc import Mapping
from datetime import timezone
from typing import Any

from ._i18n import _, clip

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigurationError",
    "ContentInspectionError",
    "FunMusicError",
    "FunMusicWarning",
    "GenerationCancelled",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "StreamInterruptedError",
    "ValidationError",
    "error_from_response",
]
# quote() and one_line() are helpers for the package's own messages, not public API (every
# name in __all__ here is re-exported by the package).

#: How many characters of a value an error message shows.
QUOTE_LIMIT = 40
#: How many characters of a server's message an ``APIError`` shows.
MESSAGE_LIMIT = 200

_repr = reprlib.Repr()
_repr.maxstring = QUOTE_LIMIT + 10
_repr.maxother = QUOTE_LIMIT + 10


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``value`` as an error message shows it: its ``repr``, cut short when long.

    A string longer than ``limit`` shows its first ``limit`` characters (fewer rather than
    half a character: ``clip``), then ``…`` and its length, so the message says what arrived
    without echoing all of it. Other values use a bounded ``reprlib`` form (it never builds the
    full repr of a huge list first).
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return _("{start}… ({count:,} characters)").format(
            start=repr(clip(value, limit)), count=len(value)
        )
    text = _repr.repr(value)
    return text if len(text) <= limit + 10 else clip(text, limit) + "…"


_TAG = re.compile(r"<[^>]*>")


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """The first non-empty line of ``text`` (of its text, for an HTML page), cut to ``limit``.

    Server text may be a proxy's HTML page or a message with line breaks; an error message
    shows one line of it and keeps the promise that every error renders as one line.
    """
    stripped = text.lstrip()
    if stripped[:1] == "<":
        text = html.unescape(_TAG.sub("\n", stripped))
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else clip(line, limit - 1) + "…"
    return ""


class FunMusicWarning(UserWarning):
    """Something was sent, but not quite as written (both lyrics and prompt, an unknown tag)."""


class FunMusicError(Exception):
    """The root of every error this package raises."""

    def one_line(self) -> str:
        return f"{type(self).__name__}: {self}"

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback.
        return [self.one_line()]


class ValidationError(FunMusicError, ValueError):
    """The request was refused before anything was sent (nothing was billed)."""


class ConfigurationError(FunMusicError, ValueError):
    """A setting (key, base URL, endpoint, backend) cannot be used."""


class BudgetExceededError(FunMusicError):
    """A request was refused before sending: this session already spent its ``budget``."""


class GenerationCancelled(FunMusicError):
    """The user cancelled a song; ``partial_audio`` holds every byte that had arrived."""

    def __init__(self, message: str | None = None, *, partial_audio: bytes = b"") -> None:
        super().__init__(_("cancelled") if message is None else message)
        self.partial_audio = partial_audio


class APIError(FunMusicError):
    """The service (or the way to it) failed.

    ``code`` is DashScope's code (``InvalidParameter``, ``Throttling.RateQuota``…) when the
    server sent one; ``request_id`` comes from the body or the ``x-request-id`` header.
    ``message`` is always one line, at most ``MESSAGE_LIMIT`` characters; ``body`` is the
    server's whole answer as text (or the full message given, when it had to be cut), else None.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        partial_audio: bytes = b"",
        body: str | None = None,
    ) -> None:
        # One line whatever arrived; the whole text is kept in ``body`` for whoever needs it.
        short = one_line(message) or _("no error message in the response")
        super().__init__(short)
        self.message = short
        self.body = body if body is not None else (message if short != message else None)
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.partial_audio = partial_audio

    def __str__(self) -> str:
        parts = []
        if self.status_code is not None:
            parts.append(str(self.status_code))
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        # The server's code and message stay as they came; only our own words are translated.
        if self.request_id:
            text += _(" (request id {request_id})").format(request_id=self.request_id)
        if self.partial_audio:
            text += _(" [{count:,} bytes of audio had arrived]").format(
                count=len(self.partial_audio)
            )
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r}, "
            f"partial_audio=<{len(self.partial_audio)} bytes>)"
        )


class BadRequestError(APIError):
    pass


class ContentInspectionError(BadRequestError):
    pass


class AuthenticationError(APIError):
    pass


class PermissionDeniedError(APIError):
    pass


class RateLimitError(APIError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(APIError):
    pass


class APIConnectionError(APIError):
    pass


class APITimeoutError(APIConnectionError):
    pass


class StreamInterruptedError(APIError):
    pass


def _retry_after_seconds(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """``Retry-After`` in seconds: a number (RFC 9110 allows only a whole one >= 0, we accept
    any finite one >= 0) or an HTTP date. Anything else (negative, NaN, garbage) is None, so the
    caller falls back to its own backoff instead of retrying at once."""
    if not headers:
        return None
    raw = headers.get("retry-after") or headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" dates: RFC 9110 dates are always GMT
            when = when.replace(tzinfo=timezone.utc)
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


def _as_mapping(body: object) -> Mapping[str, Any] | None:
    if isinstance(body, Mapping):
        return body
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        text = body.strip()
        # A stream-framed error body ("event:error\n:HTTP_STATUS/400\ndata:{...}") may arrive
        # labelled application/json: take its data line.
        for line in text.splitlines():
            if line.startswith("data:"):
                text = line[5:].strip()
                break
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        return parsed if isinstance(parsed, Mapping) else None
    return None


def error_from_response(
    status_code: int | None,
    body: object,
    headers: Mapping[str, str] | None = None,
    *,
    partial_audio: bytes = b"",
) -> APIError:
    """Build the right ``APIError`` from a status and a body (dict, JSON text or SSE-framed text).

    Handles DashScope bodies (``{"code", "message", "request_id"}``) and gateway bodies
    (``{"error": {"code", "message", "type"}}``); parses by content, never by content type.
    """
    data = _as_mapping(body) or {}
    nested = data.get("error")
    if isinstance(nested, Mapping):
        data = {**nested, "request_id": data.get("request_id")}
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    full = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, default=str)
    code = data.get("code")
    # A code is one word; a server that sends a paragraph there gets it cut like a message.
    code = one_line(str(code), QUOTE_LIMIT) or None if code not in (None, "") else None
    message = data.get("message")
    if not message:
        if isinstance(body, str) and not data:
            message = body.strip() or _("no error message in the response")
        else:
            message = _("no error message in the response")
    request_id = data.get("request_id") or (headers or {}).get("x-request-id")
    kw: dict[str, Any] = {
        "status_code": status_code,
        "code": code,
        "request_id": one_line(str(request_id), MESSAGE_LIMIT) if request_id else None,
        "partial_audio": partial_audio,
        "body": full,
    }
    message = str(message)
    lowered = (code or "").lower()
    if code == "DataInspectionFailed":
        return ContentInspectionError(message, **kw)
    if code in ("Arrearage", "AccessDenied") or lowered.startswith("accessdenied"):
        return PermissionDeniedError(message, **kw)
    if code == "InvalidApiKey" or status_code == 401:
        return AuthenticationError(message, **kw)
    if lowered.startswith("throttling") or status_code == 429:
        return RateLimitError(message, retry_after=_retry_after_seconds(headers), **kw)
    if status_code == 403:
        return PermissionDeniedError(message, **kw)
    if status_code is not None and status_code >= 500:
        return ServerError(message, **kw)
    if code in ("InternalError", "ServiceUnavailable") or lowered.startswith("internalerror"):
        return ServerError(message, **kw)
    if code in ("InvalidParameter", "Model.NotExist"):
        # An in-stream error event or a 200 body carries no usable status: map by code.
        return BadRequestError(message, **kw)
    if status_code is not None and 400 <= status_code < 500:
        return BadRequestError(message, **kw)
    return APIError(message, **kw)
