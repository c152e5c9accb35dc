"""``GET /oss/fun-music/{day}/{name}``: a song's download, answered the way OSS answers.

The URL is checked (signature, then expiry), then the song comes from the cache or is made
again from the spec the URL carries (``_tokens``), so it downloads from any process or instance
that shares the signing secret. Errors are OSS-shaped XML: ``AccessDenied`` without a signature
or after the expiry, ``SignatureDoesNotMatch`` for a forged or altered URL.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from xml.sax.saxutils import escape as xml_escape

from starlette.requests import Request
from starlette.responses import Response

from .._models import mime_type_for
from ._state import SimulatorState, Stored
from ._tokens import SONG_FIELD

__all__ = ["OSS_BUCKET", "make_download"]

logger = logging.getLogger("funmusic_jupyter.simulator")

OSS_BUCKET = "fun-music"


def _oss_error(status: int, code: str, message: str, request_id: str,
               extra: Mapping[str, str] | None = None, *, head: bool = False) -> Response:
    fields = "".join(f"  <{k}>{xml_escape(v)}</{k}>\n" for k, v in (extra or {}).items())
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{code}</Code>\n  <Message>{xml_escape(message)}</Message>\n"
        f"  <RequestId>{request_id}</RequestId>\n  <HostId>{OSS_BUCKET}.simulator</HostId>\n"
        f"{fields}</Error>\n"
    ).encode()
    return Response(b"" if head else xml, status_code=status, media_type="application/xml",
                    headers={"x-oss-request-id": request_id, "x-request-id": request_id,
                             "content-length": str(len(xml))})


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def make_download(state: SimulatorState) -> Callable[[Request], Awaitable[Response]]:
    async def download(request: Request) -> Response:
        rid = uuid.uuid4().hex.upper()[:24]  # OSS request ids are 24 hex digits
        head = request.method == "HEAD"
        if request.method not in ("GET", "HEAD"):
            return _oss_error(405, "MethodNotAllowed",
                              "The specified method is not allowed against this resource.", rid)
        path = request.url.path
        expires_raw = request.query_params.get("Expires")
        signature = request.query_params.get("Signature")
        if not expires_raw or not signature:
            return _oss_error(403, "AccessDenied",
                              "You have no right to access this object because of bucket acl.",
                              rid, head=head)
        token = request.query_params.get(SONG_FIELD, "")
        try:
            expires = int(expires_raw)
        except ValueError:
            expires = -1
        if expires < 0 or not state.signer.check(path, expires, token, signature):
            return _oss_error(403, "SignatureDoesNotMatch",
                              "The request signature we calculated does not match the signature "
                              "you provided.", rid, head=head)
        now = time.time()
        if now > expires:
            return _oss_error(403, "AccessDenied", "Request has expired.", rid,
                              {"Expires": _iso(expires), "ServerTime": _iso(now)}, head=head)
        try:
            spec = state.signer.spec_from(token)
        except ValueError:
            # Signed by us yet unreadable: only a token format this version does not know.
            logger.warning("simulator: a signed download token could not be read (%s)", rid)
            return _oss_error(404, "NoSuchKey", "The specified key does not exist.", rid,
                              {"Key": path.rsplit("/", 1)[-1]}, head=head)
        if not path.endswith(f".{spec.format}"):
            return _oss_error(404, "NoSuchKey", "The specified key does not exist.", rid,
                              {"Key": path.rsplit("/", 1)[-1]}, head=head)
        stored = await state.store.get_or_make(spec.key, mime_type_for(spec.format),
                                               state.synthesis(spec).whole)
        return _ranged(request, stored, rid, head=head)

    return download


def _ranged(request: Request, stored: Stored, rid: str, *, head: bool) -> Response:
    """The object, or one byte range of it (browsers' <audio> seeks with ranges)."""
    data = stored.data
    size = len(data)
    headers = {"accept-ranges": "bytes", "x-oss-request-id": rid, "x-request-id": rid,
               "cache-control": "no-cache"}
    rng = request.headers.get("range", "")
    status, start, end = 200, 0, size - 1
    if rng.startswith("bytes=") and "," not in rng:
        first, _, last = rng[6:].strip().partition("-")
        try:
            if first:
                start = int(first)
                end = min(int(last), size - 1) if last else size - 1
            elif last:
                start, end = max(0, size - int(last)), size - 1
            if not 0 <= start <= end < size:
                raise ValueError(rng)
            status = 206
            headers["content-range"] = f"bytes {start}-{end}/{size}"
        except ValueError:
            status, start, end = 200, 0, size - 1  # OSS ignores a range it cannot satisfy
    body = data[start : end + 1]
    headers["content-length"] = str(len(body))
    return Response(b"" if head else body, status_code=status, headers=headers,
                    media_type=stored.media_type)
