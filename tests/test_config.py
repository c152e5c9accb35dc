"""Where the key, base URL and endpoint come from, the backends, and the key kept out of sight.

tests/conftest.py clears every DASHSCOPE_* variable and points HOME at an empty folder.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from funmusic_jupyter._client import AsyncFunMusicClient, FunMusicClient
from funmusic_jupyter._config import (
    DEFAULT_BASE_URL,
    ENDPOINTS,
    mask_key,
    redact,
    resolve_endpoint,
    resolve_settings,
)
from funmusic_jupyter._errors import ConfigurationError

ARG_KEY = "sk-argument-key-1111"
ENV_KEY = "sk-environment-key-2222"
FILE_KEY = "sk-file-key-3333"
HOME_KEY = "sk-home-key-4444"


@pytest.fixture
def all_key_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    key_file = tmp_path / "key.txt"
    key_file.write_text(FILE_KEY + "\n")
    home_key = Path.home() / ".dashscope" / "api_key"
    home_key.parent.mkdir(parents=True)
    home_key.write_text(HOME_KEY)
    monkeypatch.setenv("DASHSCOPE_API_KEY", ENV_KEY)
    monkeypatch.setenv("DASHSCOPE_API_KEY_FILE_PATH", str(key_file))
    return monkeypatch


def test_key_precedence(all_key_sources: pytest.MonkeyPatch) -> None:
    monkeypatch = all_key_sources
    s = resolve_settings(api_key=ARG_KEY)
    assert (s.api_key, s.api_key_source) == (ARG_KEY, "argument")
    s = resolve_settings()
    assert (s.api_key, s.api_key_source) == (ENV_KEY, "DASHSCOPE_API_KEY")
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    s = resolve_settings()
    assert (s.api_key, s.api_key_source) == (FILE_KEY, "DASHSCOPE_API_KEY_FILE_PATH")
    monkeypatch.delenv("DASHSCOPE_API_KEY_FILE_PATH")
    s = resolve_settings()
    assert (s.api_key, s.api_key_source) == (HOME_KEY, "~/.dashscope/api_key")
    (Path.home() / ".dashscope" / "api_key").unlink()
    s = resolve_settings()
    assert (s.api_key, s.api_key_source, s.backend) == (None, "none", "simulator")


def test_blank_argument_and_variable_fall_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "   ")
    s = resolve_settings(api_key="  ")
    assert s.api_key is None and s.backend == "simulator"


def test_unreadable_key_file_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY_FILE_PATH", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="cannot be read"):
        resolve_settings()


def test_base_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", ENV_KEY)
    assert resolve_settings().base_url == DEFAULT_BASE_URL
    monkeypatch.setenv("DASHSCOPE_BASE_URL", "https://b.example/api/v1")
    assert resolve_settings().base_url == "https://b.example/api/v1"
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "https://h.example/api/v1/")
    s = resolve_settings()
    assert (s.base_url, s.base_url_source) == (
        "https://h.example/api/v1",
        "DASHSCOPE_HTTP_BASE_URL",
    )
    s = resolve_settings(base_url="http://127.0.0.1:9/api/v1")
    assert (s.base_url, s.base_url_source) == ("http://127.0.0.1:9/api/v1", "argument")


@pytest.mark.parametrize("url", ["dashscope.aliyuncs.com/api/v1", "ftp://x/api/v1", "http://"])
def test_bad_base_url(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"http\(s\) URL"):
        resolve_settings(base_url=url)


@pytest.mark.parametrize(
    ("given", "path"),
    [
        (None, "/services/audio/music/generation"),
        ("generation", "/services/audio/music/generation"),
        ("speech-synthesizer", "/services/audio/tts/SpeechSynthesizer"),
        ("/services/audio/tts/SpeechSynthesizer/", "/services/audio/tts/SpeechSynthesizer"),
    ],
)
def test_endpoint_names_and_paths(given: str | None, path: str) -> None:
    assert resolve_endpoint(given) == path
    assert resolve_settings(endpoint=given).endpoint == path
    assert set(ENDPOINTS) == {"generation", "speech-synthesizer"}


def test_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNMUSIC_ENDPOINT", "speech-synthesizer")
    assert resolve_settings().endpoint == ENDPOINTS["speech-synthesizer"]
    assert resolve_settings(endpoint="generation").endpoint == ENDPOINTS["generation"]


def test_bad_endpoint() -> None:
    with pytest.raises(ConfigurationError, match="'generation', 'speech-synthesizer'"):
        resolve_settings(endpoint="music")


# ---- backends ----------------------------------------------------------------------------------


def test_auto_with_nothing_is_the_simulator() -> None:
    s = resolve_settings()
    assert (s.backend, s.base_url, s.api_key) == ("simulator", None, None)


def test_auto_with_a_key_is_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", ENV_KEY)
    s = resolve_settings()
    assert (s.backend, s.base_url) == ("api", DEFAULT_BASE_URL)


def test_auto_with_only_a_base_url_is_a_keyless_api() -> None:
    # A classroom simulator server: talk to it, send no key.
    s = resolve_settings(base_url="http://10.0.0.5:8000/api/v1")
    assert (s.backend, s.api_key) == ("api", None)


def test_api_without_key_or_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="needs an API key"):
        resolve_settings(backend="api")


def test_simulator_never_keeps_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", ENV_KEY)
    s = resolve_settings(backend="simulator", api_key=ARG_KEY)
    assert (s.backend, s.api_key, s.base_url) == ("simulator", None, None)
    s = resolve_settings(backend="simulator", base_url="http://127.0.0.1:1/api/v1")
    assert (s.backend, s.api_key, s.base_url) == ("simulator", None, "http://127.0.0.1:1/api/v1")


def test_unknown_backend() -> None:
    with pytest.raises(ConfigurationError, match="auto, api, simulator"):
        resolve_settings(backend="cloud")


def test_clients_resolve_like_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", ENV_KEY)
    with FunMusicClient(transport=httpx.MockTransport(lambda r: httpx.Response(500))) as client:
        assert client.settings.api_key == ENV_KEY and client.settings.backend == "api"
    with FunMusicClient(backend="simulator") as client:
        assert client.settings.api_key is None


# ---- the key stays hidden ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "masked"),
    [
        (None, "<none>"),
        ("", "<none>"),
        ("short", "…"),
        ("sk-0123456789abcdef", "sk-…cdef"),
        ("abcdefghijkl", "…ijkl"),
    ],
)
def test_mask_key(key: str | None, masked: str) -> None:
    assert mask_key(key) == masked


def test_redact() -> None:
    key = "sk-0123456789abcdef"
    assert redact(f"bad key {key}!", key) == "bad key sk-…cdef!"
    assert redact("nothing here", key) == "nothing here"
    assert redact("abc", None) == "abc"


@pytest.mark.anyio
async def test_key_never_in_repr_or_describe(all_key_sources: pytest.MonkeyPatch) -> None:
    s = resolve_settings(api_key=ARG_KEY)
    assert ARG_KEY not in repr(s) and ARG_KEY not in str(s)
    assert ARG_KEY not in repr(s.describe())
    assert s.describe()["api key"] == "present (from argument)"
    with FunMusicClient(api_key=ARG_KEY) as client:
        assert ARG_KEY not in repr(client)
        assert ARG_KEY not in repr(client.stream(prompt="Warm acoustic guitar ballad tonight"))
    async with AsyncFunMusicClient(api_key=ARG_KEY) as aclient:
        assert ARG_KEY not in repr(aclient)


def test_key_never_in_configuration_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", ENV_KEY)
    for kwargs in ({"backend": "cloud"}, {"endpoint": "nope"}, {"base_url": "nope"}):
        with pytest.raises(ConfigurationError) as info:
            resolve_settings(api_key=ARG_KEY, **kwargs)
        assert ARG_KEY not in str(info.value) and ENV_KEY not in str(info.value)


@pytest.mark.parametrize(
    "bad_key",
    [
        "sk-secretpart\n# my key", "sk-secret\rpart", "sk-secr\x00etpart", "sk-sécretpart",
        "sk-sec retpart",
    ],
)
def test_a_key_that_cannot_be_a_header_is_refused_without_quoting_it(
    bad_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # httpx/h11 refuse such a header with an error quoting it whole ("Illegal header value
    # b'Bearer sk-…'"), which the client's redaction cannot match: refuse it first, unquoted.
    key_file = tmp_path / "key.txt"
    key_file.write_text(bad_key + "\n", encoding="utf-8")
    setups = [
        ({"api_key": bad_key}, None),
        ({}, ("DASHSCOPE_API_KEY", bad_key)),
        ({}, ("DASHSCOPE_API_KEY_FILE_PATH", str(key_file))),
    ]
    for kwargs, env in setups:
        if env and "\x00" in env[1]:
            continue  # the environment cannot hold a NUL
        with monkeypatch.context() as m:
            if env:
                m.setenv(*env)
            with pytest.raises(ConfigurationError) as info:
                resolve_settings(base_url="http://127.0.0.1:9/api/v1", **kwargs)
            message = str(info.value)
            assert "secret" not in message and "part" not in message.replace("printable", "")
            assert "\n" not in message and "API key" in message


def test_a_key_that_is_not_a_string_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="api_key must be a string .*; got int"):
        resolve_settings(api_key=123)  # type: ignore[arg-type]


def test_a_key_given_as_a_path_or_url_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY_FILE_PATH", ENV_KEY)
    with pytest.raises(ConfigurationError) as info:
        resolve_settings()
    assert ENV_KEY not in str(info.value) and mask_key(ENV_KEY) in str(info.value)
    monkeypatch.delenv("DASHSCOPE_API_KEY_FILE_PATH")
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(base_url=ARG_KEY)
    assert ARG_KEY not in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backend": "x" * 5000},
        {"endpoint": "x" * 5000},
        {"base_url": "ftp://" + "x" * 5000},
        {"base_url": "http://sim.test/api/v1", "idle_timeout": "x" * 5000},
    ],
)
def test_settings_errors_quote_a_short_excerpt(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as info:
        FunMusicClient(**kwargs).close()  # type: ignore[arg-type]
    assert len(str(info.value)) < 250 and "…" in str(info.value)
