"""What the sync and async Fun-Music clients share: settings, limits, request building, the
lazy base URL, one TLS context, and the checks of numbers and headers made before sending.

The clients themselves are ``_sync_client.FunMusicClient`` and
``_async_client.AsyncFunMusicClient``; the rest of the package imports them from ``_client``.
"""

from __future__ import annotations

import functools
import math
import os
import ssl
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

import httpx

from ._config import Settings, resolve_settings
from ._errors import APIError, ConfigurationError, FunMusicWarning, ValidationError, quote
from ._i18n import N_, _
from ._validation import SongRequest, build_request
from ._wire import (
    MAX_ERROR_BODY,
    LimitedBody,
    SongAssembler,
    generation_headers,
    generation_url,
    retry_wait,
    transport_error,
)

_PACKAGE = __name__.rpartition(".")[0] + "."


@functools.lru_cache(maxsize=4)
def _ssl_context_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads the same two variables, as httpx's default does


def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every client: building one loads the CA bundle (about 0.25 s), which
    a script making one client per ``asyncio.run`` (the per-loop default clients) paid per song.
    Keyed on the variables httpx consults, so the trust settings stay exactly httpx's."""
    return _ssl_context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


class _ClientCore:
    """What the two clients share: settings, limits, request building, the lazy base URL."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        endpoint: str | None,
        backend: str,
        connect_timeout: float,
        read_timeout: float,
        idle_timeout: float,
        download_timeout: float,
        max_download_bytes: int,
        max_retries: int,
        max_retry_wait: float,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.settings: Settings = resolve_settings(
            api_key=api_key, base_url=base_url, endpoint=endpoint, backend=backend
        )
        # Checked here, in one line, rather than as httpx's "Timeout value out of range" (or a
        # silent oddity) once a request is under way.
        for name, value in (
            ("connect_timeout", connect_timeout), ("read_timeout", read_timeout),
            ("idle_timeout", idle_timeout), ("download_timeout", download_timeout),
        ):
            _check_number(name, value, N_("a number of seconds > 0"), positive=True)
        _check_number("max_retry_wait", max_retry_wait, N_("a number of seconds >= 0"))
        _check_number("max_retries", max_retries, N_("a whole number >= 0"), integer=True)
        _check_number("max_download_bytes", max_download_bytes, N_("a whole number > 0"),
                      integer=True, positive=True)
        headers = _check_headers(headers, ConfigurationError)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.download_timeout = download_timeout
        self.max_download_bytes = max_download_bytes
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._headers = dict(headers or {})
        self._base_url = self.settings.base_url
        self._base_url_lock = threading.Lock()

    def __repr__(self) -> str:
        # Settings' repr masks the key.
        return f"{type(self).__name__}(settings={self.settings!r})"

    def _timeout(self, read: float) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout, read=read, write=read, pool=self.connect_timeout
        )

    def _resolve_url(self) -> str:
        if self._base_url is None:
            with self._base_url_lock:
                if self._base_url is None:
                    # Imported here: the simulator (uvicorn, synthesis) is only loaded when used.
                    from .simulator import start_embedded

                    self._base_url = start_embedded()
        return generation_url(self._base_url, self.settings.endpoint)

    def _headers_for(
        self, request: SongRequest, call_headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        call_headers = _check_headers(call_headers, ValidationError)
        return generation_headers(
            self.settings,
            stream=request.stream,
            client_headers=self._headers,
            call_headers=call_headers,
        )

    def _body_limit(self, status_code: int) -> int:
        # A 200 answer read whole may be a stream-framed song (base64: 4/3 of the audio).
        return 2 * self.max_download_bytes if status_code == 200 else MAX_ERROR_BODY

    def _failure(
        self,
        exc: httpx.HTTPError,
        assembler: SongAssembler,
        url: str,
        *,
        streaming: bool,
        responded: bool,
    ) -> APIError:
        """The ``APIError`` for a transport failure, naming the limit that was reached."""
        if isinstance(exc, httpx.ConnectTimeout):
            limit = self.connect_timeout
        else:
            limit = self.idle_timeout if streaming else self.read_timeout
        return transport_error(
            exc, assembler=assembler, url=url, streaming=streaming, responded=responded,
            timeout=limit,
        )

    def _assembler(self, request: SongRequest) -> SongAssembler:
        return SongAssembler(request, self.settings, started=time.monotonic())

    def _retry_wait(
        self, failure: BaseException, attempt: int, assembler: SongAssembler
    ) -> float | None:
        return retry_wait(
            failure,
            attempt=attempt,
            audio_received=assembler.bytes_received,
            max_retries=self.max_retries,
            max_retry_wait=self.max_retry_wait,
        )

    @staticmethod
    def _build(stream: bool, kwargs: dict[str, Any]) -> SongRequest:
        request = build_request(stream=stream, **kwargs)
        for message in request.warnings:
            warnings.warn(message, FunMusicWarning, stacklevel=_caller_stacklevel())
        return request


def _check_number(
    name: str, value: object, expected: str, *, integer: bool = False, positive: bool = False
) -> None:
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if ok:
        number = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(number) and (number > 0 if positive else number >= 0)
    if not ok:
        raise ConfigurationError(
            _("{name} must be {expected}; got {value}").format(
                name=name, expected=_(expected), value=quote(value)
            )
        )


def _check_headers(
    headers: Mapping[str, str] | None, error: type[ConfigurationError | ValidationError]
) -> Mapping[str, str] | None:
    if headers is None:
        return None
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        got = type(headers).__name__ if not isinstance(headers, Mapping) else N_("other values")
        raise error(
            _("headers must be a mapping of header names to strings; got {got}").format(
                got=_(got) if got == "other values" else got
            )
        )
    # Checked as they will be sent: httpx encodes header values as ASCII (anything else is a
    # raw UnicodeEncodeError), and a line break would end the header in the middle.
    for name, value in headers.items():
        if not (name + value).isascii() or any(c in name + value for c in "\r\n\0"):
            raise error(
                _("header {name} must be ASCII text on one line; got {value}").format(
                    name=quote(name), value=quote(value)
                )
            )
    return headers


def _caller_stacklevel() -> int:
    """The stacklevel of the first frame outside this package (for ``warnings.warn``).

    Pointing at the user's line, whether they called a client or the module-level API, also
    keeps Python's once-per-location warning filter from hiding later warnings.
    """
    frame = sys._getframe(1)  # the function calling warnings.warn
    level = 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(_PACKAGE):
        frame = frame.f_back
        level += 1
    return level


def _answer_too_large(assembler: SongAssembler, body: LimitedBody) -> APIError:
    return assembler.interrupted(
        _("the answer is larger than {limit:,} bytes; refused").format(limit=body.limit)
    )

