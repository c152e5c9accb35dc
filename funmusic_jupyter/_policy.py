"""One request policy: how a wish to stream becomes a request, for every front end.

Fun-Music streams only some texts: lyrics of 200–250 English words or 300–350 Chinese
characters, a prompt of 5–1,000 Chinese characters or English words. Without streaming the
limits are wider (``_validation``'s table). The magic, the panel, the batch API and the command
line all ask ``plan_request`` the same question with the same answer, so a text one of them
makes is never one another refuses:

``stream=True`` (insist)
    Streamed, or refused with the streaming limit's message.
``stream=False`` (never)
    Made without streaming; refused only by the non-streaming limits.
``stream="auto"`` (or ``None``): prefer streaming
    Streamed when the text fits the streaming limits; otherwise made without streaming, with a
    note saying why; refused, with the non-streaming limit's message, only when it fits neither.

Every other check (mode, language, script, gender, format, extras) is the same either way, so a
fallback only ever happens over length.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from ._errors import ValidationError, quote
from ._i18n import _
from ._validation import SongRequest, build_request, limit_for, text_stats

__all__ = ["Plan", "StreamPreference", "plan_request", "refused_stream", "stream_preference"]

#: ``True`` insists on streaming, ``False`` never streams, ``"auto"``/``None`` prefers it.
StreamPreference = bool | Literal["auto"] | None


class Plan(NamedTuple):
    """A validated request and the notes that explain it (``request, notes = plan_request(…)``).
    The notes are the request's own warnings, then the policy's."""

    request: SongRequest
    notes: tuple[str, ...]


def stream_preference(value: object) -> bool | None:
    """``value`` as ``True``, ``False`` or ``None`` (auto); ``ValidationError`` otherwise."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    raise ValidationError(
        _("stream must be True, False or 'auto'; got {value}").format(value=quote(value))
    )


def refused_stream(stream: StreamPreference) -> bool:
    """Whose limits a refusal under ``stream`` quotes: the streaming ones only when streaming
    was insisted on (auto falls back, so its refusals are the non-streaming limits')."""
    return stream_preference(stream) is True


def plan_request(*, stream: StreamPreference = "auto", **fields: Any) -> Plan:
    """Validate a song request under the policy above; raise ``ValidationError`` if refused.

    ``fields`` are ``build_request``'s (``text``/``prompt``/``lyrics``, ``mode``, ``gender``,
    ``format``, ``model``, extra input fields); ``stream`` is the preference.
    """
    preference = stream_preference(stream)
    if preference is not None:
        request = build_request(stream=preference, **fields)
        return Plan(request, request.warnings)
    try:
        request = build_request(stream=True, **fields)
    except ValidationError:
        request = build_request(stream=False, **fields)  # raises when it fits neither
    else:
        return Plan(request, request.warnings)
    return Plan(request, (*request.warnings, _fallback_note(request)))


def _fallback_note(request: SongRequest) -> str:
    # Built from the limit itself rather than cut out of the streaming error's text, so the
    # note stays right whatever wording that message has.
    limit = limit_for(request.mode, request.language, True)
    count = limit.measure(text_stats(request.text))
    return _(
        "not streamed: {what} must be {range} and this has {count:,}, so the song is made "
        "without streaming and appears when it is done (turn streaming off to ask for that up "
        "front: --no-stream, stream=False, or Off in the panel)"
    ).format(what=limit.describe(), range=limit.range_text(), count=count)
