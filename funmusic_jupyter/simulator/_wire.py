"""DashScope's wire format, as the simulator writes it: compact JSON, error bodies, SSE events,
and the ``X-FunMusic-Simulated`` mark on every response."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._faults import SIMULATED_HEADER

__all__ = ["JSON_CONTENT_TYPE", "MESSAGES", "SSE_CONTENT_TYPE", "SimulatedHeaderMiddleware",
           "dumps", "error", "new_request_id", "sse_event"]

SSE_CONTENT_TYPE = "text/event-stream;charset=UTF-8"
JSON_CONTENT_TYPE = "application/json"
_SIMULATED = (SIMULATED_HEADER.lower().encode("latin-1"), b"true")

MESSAGES = {
    "InvalidApiKey": "Invalid API-key provided.",
    "Throttling.RateQuota": "Requests rate limit exceeded, please try again later.",
    "InternalError": (
        "An internal error has occurred, please try again later or contact service support."
    ),
    "ServiceUnavailable": "The service is temporarily unavailable, please try again later.",
    "DataInspectionFailed": "Input data may contain inappropriate content.",
    "Model.NotExist": "Model not exist.",
}


def dumps(obj: object) -> str:
    """Compact JSON as DashScope sends it (the vendor's Java sample matches substrings of it).

    Non-ASCII stays UTF-8, but the three characters Python's ``str.splitlines`` treats as line
    breaks (and httpx's line decoder with it) are escaped, so no lyric can split an SSE line.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def json_response(status: int, body: Mapping[str, Any], request_id: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    hdrs = {"x-request-id": request_id, **(headers or {})}
    return Response(dumps(body).encode("utf-8"), status_code=status, headers=hdrs,
                    media_type=JSON_CONTENT_TYPE)


def error(status: int, code: str, request_id: str, message: str | None = None,
           headers: Mapping[str, str] | None = None) -> Response:
    body = {"request_id": request_id, "code": code, "message": message or MESSAGES[code]}
    return json_response(status, body, request_id, headers)


def new_request_id() -> str:
    return str(uuid.uuid4())


def sse_event(event_id: int, data: str, *, event: str = "result", status: int = 200) -> bytes:
    return f"id:{event_id}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:{data}\n\n".encode()


class SimulatedHeaderMiddleware:
    """Adds ``X-FunMusic-Simulated: true`` to every response the routes send."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), _SIMULATED]}
            await send(message)

        await self.app(scope, receive, marked)
