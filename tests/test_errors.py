"""``error_from_response``: every status and code to its class, and every body shape."""

from __future__ import annotations

import json

import pytest

from funmusic_jupyter._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentInspectionError,
    FunMusicError,
    GenerationCancelled,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    ValidationError,
    error_from_response,
)

TABLE = [
    # status, code, class
    (400, "InvalidParameter", BadRequestError),
    (400, "DataInspectionFailed", ContentInspectionError),
    (400, "Arrearage", PermissionDeniedError),
    (401, "InvalidApiKey", AuthenticationError),
    (401, None, AuthenticationError),
    (403, "AccessDenied", PermissionDeniedError),
    (403, "AccessDenied.Unpurchased", PermissionDeniedError),
    (403, None, PermissionDeniedError),
    (404, "Model.NotExist", BadRequestError),
    (404, None, BadRequestError),
    (409, "Conflict", BadRequestError),
    (429, "Throttling", RateLimitError),
    (429, "Throttling.RateQuota", RateLimitError),
    (429, "Throttling.AllocationQuota", RateLimitError),
    (429, None, RateLimitError),
    (500, "InternalError", ServerError),
    (500, "InternalError.Algo", ServerError),
    (502, None, ServerError),
    (503, "ServiceUnavailable", ServerError),
    # No usable status (an in-stream error event without :HTTP_STATUS): mapped by code.
    (None, "InvalidParameter", BadRequestError),
    (None, "Model.NotExist", BadRequestError),
    (None, "DataInspectionFailed", ContentInspectionError),
    (None, "Arrearage", PermissionDeniedError),
    (None, "InvalidApiKey", AuthenticationError),
    (None, "Throttling.RateQuota", RateLimitError),
    (None, "InternalError", ServerError),
    (None, "ServiceUnavailable", ServerError),
    (None, "SomethingNew", APIError),
]


@pytest.mark.parametrize(("status", "code", "cls"), TABLE, ids=[f"{s}-{c}" for s, c, _ in TABLE])
def test_mapping_table(status: int | None, code: str | None, cls: type[APIError]) -> None:
    body = {"request_id": "rid-1", "message": "what happened"}
    if code:
        body["code"] = code
    err = error_from_response(status, body)
    assert type(err) is cls
    assert (err.status_code, err.code, err.message, err.request_id) == (
        status,
        code,
        "what happened",
        "rid-1",
    )


@pytest.mark.parametrize("shape", ["dict", "json text", "json bytes", "sse text"])
def test_body_shapes(shape: str) -> None:
    obj = {"request_id": "r", "code": "InvalidParameter", "message": "m"}
    body: object = {
        "dict": obj,
        "json text": json.dumps(obj),
        "json bytes": json.dumps(obj).encode(),
        "sse text": "event:error\n:HTTP_STATUS/400\ndata:" + json.dumps(obj) + "\n\n",
    }[shape]
    err = error_from_response(400, body)
    assert (type(err), err.code, err.message, err.request_id) == (
        BadRequestError,
        "InvalidParameter",
        "m",
        "r",
    )


def test_gateway_error_body_without_request_id() -> None:
    body = {"error": {"code": "NotFound", "message": "Not found", "type": "invalid_request_error"}}
    err = error_from_response(404, body)
    assert (type(err), err.code, err.message, err.request_id) == (
        BadRequestError,
        "NotFound",
        "Not found",
        None,
    )
    err = error_from_response(404, body, {"x-request-id": "from-header"})
    assert err.request_id == "from-header"


def test_body_request_id_wins_over_the_header() -> None:
    err = error_from_response(
        500, {"request_id": "body", "code": "InternalError"}, {"x-request-id": "hdr"}
    )
    assert err.request_id == "body"


def test_unparseable_and_empty_bodies() -> None:
    err = error_from_response(502, "<html>Bad Gateway</html>")
    assert type(err) is ServerError and err.message == "Bad Gateway"
    assert err.body == "<html>Bad Gateway</html>"
    err = error_from_response(500, "")
    assert err.message == "no error message in the response"
    err = error_from_response(400, {"code": "InvalidParameter"})
    assert err.message == "no error message in the response"
    long = "x" * 1000
    err = error_from_response(500, long)
    assert len(err.message) == 200 and err.message.endswith("…") and err.body == long


NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@pytest.mark.parametrize(
    ("status", "body", "line"),
    [
        (502, NGINX_502, "ServerError: 502: 502 Bad Gateway"),
        (
            400,
            {"code": "InvalidParameter", "message": "bad lyrics\nline 2\r\nline 3",
             "request_id": "r-1"},
            "BadRequestError: 400 InvalidParameter: bad lyrics (request id r-1)",
        ),
        (
            500,
            {"code": "Internal\nError", "message": "\n\n  first   real line \n second"},
            "ServerError: 500 Internal: first real line",
        ),
        (503, "x" * 5000, None),
    ],
)
def test_server_text_renders_as_one_line_and_the_body_is_kept(
    status: int, body: object, line: str | None
) -> None:
    err = error_from_response(status, body)
    rendered = err._render_traceback_()
    assert len(rendered) == 1 and "\n" not in rendered[0] and "\r" not in rendered[0]
    assert len(rendered[0]) < 260
    if line is not None:
        assert rendered[0] == line
    expected_body = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    assert err.body == expected_body


def test_every_api_error_is_one_line_even_when_built_by_hand() -> None:
    err = APIError("first\nsecond", status_code=500)
    assert str(err) == "500: first" and err.body == "first\nsecond"
    assert APIError("plain").body is None


@pytest.mark.parametrize(
    ("header", "retry_after"),
    [
        ("7", 7.0), ("0.5", 0.5), ("1e400", float("inf")), (None, None),
        # Negative or NaN: not a wait we can honour; None lets the caller use its own backoff
        # instead of retrying at once.
        ("-3", None), ("nan", None), ("soon", None),
        # An HTTP date (RFC 9110): the seconds until then, never negative.
        ("Wed, 21 Oct 2026 07:28:00 GMT", 0.0),
    ],
)
def test_retry_after(header: str | None, retry_after: float | None) -> None:
    headers = {"retry-after": header} if header is not None else {}
    err = error_from_response(429, {"code": "Throttling"}, headers)
    assert isinstance(err, RateLimitError) and err.retry_after == retry_after


def test_retry_after_as_a_future_http_date() -> None:
    import email.utils
    import time

    header = email.utils.formatdate(time.time() + 120, usegmt=True)
    err = error_from_response(429, {"code": "Throttling"}, {"retry-after": header})
    assert isinstance(err, RateLimitError) and err.retry_after is not None
    assert 115 <= err.retry_after <= 121


def test_partial_audio_is_carried_and_counted() -> None:
    err = error_from_response(500, {"code": "InternalError", "message": "m"}, partial_audio=b"abc")
    assert err.partial_audio == b"abc"
    assert "[3 bytes of audio had arrived]" in str(err)
    assert "partial_audio=<3 bytes>" in repr(err)


def test_message_form_and_one_line_rendering() -> None:
    err = error_from_response(
        429, {"code": "Throttling.RateQuota", "message": "slow down", "request_id": "r9"}
    )
    assert str(err) == "429 Throttling.RateQuota: slow down (request id r9)"
    assert err._render_traceback_() == [
        "RateLimitError: 429 Throttling.RateQuota: slow down (request id r9)"
    ]


def test_hierarchy() -> None:
    assert issubclass(ContentInspectionError, BadRequestError)
    assert issubclass(APITimeoutError, APIConnectionError)
    for cls in (
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        RateLimitError,
        ServerError,
        APIConnectionError,
        StreamInterruptedError,
    ):
        assert issubclass(cls, APIError)
    for cls in (APIError, ValidationError, GenerationCancelled):
        assert issubclass(cls, FunMusicError)
    assert issubclass(ValidationError, ValueError)
    assert GenerationCancelled(partial_audio=b"x").partial_audio == b"x"
