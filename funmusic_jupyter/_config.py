"""Where the key, the base URL and the endpoint come from, and how the key is kept out of sight.

Order, for each setting: explicit argument, then the environment as the official DashScope SDK
reads it, then the default.

- key: ``api_key=`` > ``DASHSCOPE_API_KEY`` > the file named by ``DASHSCOPE_API_KEY_FILE_PATH``
  > ``~/.dashscope/api_key``
- base URL: ``base_url=`` > ``DASHSCOPE_HTTP_BASE_URL`` > ``DASHSCOPE_BASE_URL`` > the Beijing
  endpoint ``https://dashscope.aliyuncs.com/api/v1``
- endpoint path: ``endpoint=`` > ``FUNMUSIC_ENDPOINT`` > ``/services/audio/music/generation``

Backends: ``"api"`` talks to the base URL; ``"simulator"`` starts the embedded simulator and
never sends the user's key to it; ``"auto"`` (default) is ``"api"`` when a key or a base URL is
configured, else ``"simulator"``, so everything works offline with nothing set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ._errors import ConfigurationError, quote
from ._i18n import _

__all__ = [
    "DEFAULT_BASE_URL",
    "ENDPOINTS",
    "ENVIRONMENT_VARIABLES",
    "Settings",
    "mask_key",
    "redact",
    "resolve_endpoint",
    "resolve_settings",
]

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com/api/v1"
#: Short names for the two paths the service answers on.
ENDPOINTS = {
    "generation": "/services/audio/music/generation",
    "speech-synthesizer": "/services/audio/tts/SpeechSynthesizer",
}
DEFAULT_ENDPOINT = ENDPOINTS["generation"]
#: Every environment variable read here (tests clear them all so no test can reach a real key).
ENVIRONMENT_VARIABLES = (
    "DASHSCOPE_API_KEY",
    "DASHSCOPE_API_KEY_FILE_PATH",
    "DASHSCOPE_HTTP_BASE_URL",
    "DASHSCOPE_BASE_URL",
    "FUNMUSIC_ENDPOINT",
)
BACKENDS = ("auto", "api", "simulator")


def mask_key(key: str | None) -> str:
    """``'sk-…c0de'``: enough to tell keys apart, never enough to use one."""
    if not key:
        return "<none>"
    if len(key) <= 8:
        return "…"
    prefix = "sk-" if key.startswith("sk-") else ""
    return f"{prefix}…{key[-4:]}"


def redact(text: str, key: str | None) -> str:
    """Replace every occurrence of the key in ``text`` by its mask."""
    if key and len(key) >= 4 and key in text:
        return text.replace(key, mask_key(key))
    return text


def resolve_endpoint(endpoint: str | None) -> str:
    """A short name from ``ENDPOINTS`` or a path starting with ``/``."""
    value = endpoint or os.environ.get("FUNMUSIC_ENDPOINT") or DEFAULT_ENDPOINT
    if value in ENDPOINTS:
        return ENDPOINTS[value]
    if not value.startswith("/"):
        names = ", ".join(repr(n) for n in ENDPOINTS)
        raise ConfigurationError(
            _("endpoint must be one of {names} or a path starting with '/'; got {value}").format(
                names=names, value=quote(value)
            )
        )
    return value.rstrip("/")


def _check_key(key: object, source: str) -> str:
    """The key as it will go into the ``Authorization`` header: one printable ASCII token.

    A key with a line break, a space, a control or a non-ASCII character (a key file with a
    second line, a paste gone wrong) cannot be sent, and httpx/h11 would refuse it with an error
    quoting the whole header, key included. So it is refused here, and the message describes the
    key without ever quoting it.
    """
    if not isinstance(key, str):
        raise ConfigurationError(
            _("api_key must be a string such as 'sk-…'; got {type}").format(
                type=type(key).__name__
            )
        )
    for index, char in enumerate(key):
        if not "!" <= char <= "~":
            what = (
                _("a line break")
                if char in "\r\n"
                else _("the character U+{code:04X}").format(code=ord(char))
            )
            raise ConfigurationError(
                _(
                    "the API key (from {source}) must be one line of printable ASCII with no "
                    "spaces; got {count} characters with {what} at position {position}. "
                    "Check it for a second line, a space or a stray character"
                ).format(source=source, count=len(key), what=what, position=index + 1)
            )
    return key


def _shown(value: str) -> str:
    """How a setting appears in an error: a value that looks like a key is masked."""
    return quote(mask_key(value)) if value.strip().startswith("sk-") else quote(value)


def _check_base_url(url: str, source: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            _(
                "base URL ({source}) must be an http(s) URL up to and including /api/v1, "
                "e.g. {example!r}; got {value}"
            ).format(source=source, example=DEFAULT_BASE_URL, value=_shown(url))
        )
    return url.rstrip("/")


def _key_from_environment() -> tuple[str | None, str]:
    key = os.environ.get("DASHSCOPE_API_KEY", "").strip()
    if key:
        return _check_key(key, "DASHSCOPE_API_KEY"), "DASHSCOPE_API_KEY"
    file_path = os.environ.get("DASHSCOPE_API_KEY_FILE_PATH", "").strip()
    if file_path:
        path = Path(file_path).expanduser()
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                _(
                    "DASHSCOPE_API_KEY_FILE_PATH names a file that cannot be read: {path} "
                    "({reason})"
                ).format(path=_shown(str(path)), reason=exc.strerror)
            ) from None
        if key:
            return _check_key(key, "DASHSCOPE_API_KEY_FILE_PATH"), "DASHSCOPE_API_KEY_FILE_PATH"
    default_file = Path("~/.dashscope/api_key").expanduser()
    try:
        key = default_file.read_text(encoding="utf-8").strip()
    except OSError:
        key = ""
    if key:
        return _check_key(key, "~/.dashscope/api_key"), "~/.dashscope/api_key"
    return None, "none"


@dataclass(frozen=True, repr=False)
class Settings:
    """The effective connection settings. Its repr never shows the key."""

    backend: str  # "api" or "simulator" (never "auto": that is resolved here)
    api_key: str | None
    api_key_source: str  # "argument", "DASHSCOPE_API_KEY", …, or "none"
    base_url: str | None  # None for the simulator until it is started
    base_url_source: str
    endpoint: str

    @property
    def has_key(self) -> bool:
        return bool(self.api_key)

    def describe(self) -> dict[str, str]:
        """What ``%funmusic config`` shows: the key only as present or absent, with its source."""
        key = (
            _("present (from {source})").format(source=self.api_key_source)
            if self.api_key
            else _("absent")
        )
        return {
            "backend": self.backend,
            "api key": key,
            "base URL": self.base_url or _("embedded simulator (started on first use)"),
            "base URL source": self.base_url_source,
            "endpoint": self.endpoint,
        }

    def __repr__(self) -> str:
        return (
            f"Settings(backend={self.backend!r}, api_key={mask_key(self.api_key)!r}, "
            f"api_key_source={self.api_key_source!r}, base_url={self.base_url!r}, "
            f"endpoint={self.endpoint!r})"
        )


def resolve_settings(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    endpoint: str | None = None,
    backend: str = "auto",
) -> Settings:
    if backend not in BACKENDS:
        raise ConfigurationError(
            _("backend must be one of {choices}; got {value}").format(
                choices=", ".join(BACKENDS), value=quote(backend)
            )
        )
    endpoint_path = resolve_endpoint(endpoint)

    if backend == "simulator":
        # The user's key never goes to the simulator, even when one is configured.
        if base_url:
            return Settings(
                "simulator", None, "none", _check_base_url(base_url, "argument"), "argument",
                endpoint_path,
            )
        return Settings("simulator", None, "none", None, "embedded simulator", endpoint_path)

    if api_key is not None and (not isinstance(api_key, str) or api_key.strip()):
        key: str | None = _check_key(
            api_key.strip() if isinstance(api_key, str) else api_key, "argument"
        )
        key_source = "argument"
    else:
        key, key_source = _key_from_environment()

    if base_url:
        url, url_source = _check_base_url(base_url, "argument"), "argument"
    elif os.environ.get("DASHSCOPE_HTTP_BASE_URL"):
        url_source = "DASHSCOPE_HTTP_BASE_URL"
        url = _check_base_url(os.environ["DASHSCOPE_HTTP_BASE_URL"], url_source)
    elif os.environ.get("DASHSCOPE_BASE_URL"):
        url_source = "DASHSCOPE_BASE_URL"
        url = _check_base_url(os.environ["DASHSCOPE_BASE_URL"], url_source)
    else:
        url, url_source = DEFAULT_BASE_URL, "default"

    if backend == "auto" and key is None and url_source == "default":
        # Nothing configured: the offline simulator, so the product works with no key at all.
        return Settings("simulator", None, "none", None, "embedded simulator", endpoint_path)
    if backend == "api" and key is None and url_source == "default":
        raise ConfigurationError(
            _(
                "backend 'api' needs an API key: set DASHSCOPE_API_KEY (or pass api_key=); "
                "got none from the argument, DASHSCOPE_API_KEY, DASHSCOPE_API_KEY_FILE_PATH "
                "or ~/.dashscope/api_key"
            )
        )
    # A key, or an explicit base URL without a key (a classroom simulator server).
    return Settings("api", key, key_source, url, url_source, endpoint_path)
