"""The request rules, checked before anything is sent: every limit at its boundaries for every
mode, language and streaming setting, and the other checks (scripts, empties, tags, values)."""

from __future__ import annotations

import itertools

import pytest

from funmusic_jupyter._errors import ValidationError
from funmusic_jupyter._validation import (
    build_request,
    detect_mode,
    limit_for,
    text_stats,
    validate_payload,
)

HAN = "春风吹过山岗月光照亮小河我们一起唱歌天空海洋花开时节"
WORDS = ["rain", "falls", "on", "the", "quiet", "street", "tonight", "we", "sing", "along"]


def chinese(n: int) -> str:
    """``n`` Han characters, in lines of ten (line breaks are not counted)."""
    chars = "".join(itertools.islice(itertools.cycle(HAN), n))
    return "\n".join(chars[i : i + 10] for i in range(0, len(chars), 10))


def english_words(n: int) -> str:
    words = list(itertools.islice(itertools.cycle(WORDS), n))
    return "\n".join(" ".join(words[i : i + 8]) for i in range(0, len(words), 8))


def english_characters(n: int) -> str:
    """English text with exactly ``n`` characters that are not white space."""
    words, left = [], n
    for word in itertools.cycle(WORDS):
        if left <= 0:
            break
        words.append(word[:left])
        left -= len(words[-1])
    return " ".join(words)


def text_of(mode: str, language: str, stream: bool, n: int) -> str:
    unit = limit_for(mode, language, stream).unit  # type: ignore[arg-type]
    if language == "zh":
        body = chinese(n)  # Han characters are characters, and units of the streaming prompt
    elif unit == "characters":
        body = english_characters(n)
    else:
        body = english_words(n)
    if mode == "lyrics" and body:
        return "[verse]\n" + body  # tag lines are never counted
    return body


COMBINATIONS = [
    (mode, language, stream)
    for mode in ("lyrics", "prompt")
    for language in ("zh", "en")
    for stream in (False, True)
]
EXPECTED_LIMITS = {
    ("lyrics", "zh", False): (5, 350, "characters"),
    ("lyrics", "zh", True): (300, 350, "characters"),
    ("lyrics", "en", False): (5, 2000, "characters"),
    ("lyrics", "en", True): (200, 250, "words"),
    ("prompt", "zh", False): (1, 2000, "characters"),
    ("prompt", "en", False): (1, 2000, "characters"),
    ("prompt", "zh", True): (5, 1000, "Chinese characters or English words"),
    ("prompt", "en", True): (5, 1000, "Chinese characters or English words"),
}
BOUNDARY_CASES = [
    pytest.param(
        mode,
        language,
        stream,
        edge,
        delta,
        id=f"{mode}-{language}-{'stream' if stream else 'plain'}-{edge}{delta:+d}",
    )
    for mode, language, stream in COMBINATIONS
    for edge in ("low", "high")
    for delta in (-1, 0, 1)
]


@pytest.mark.parametrize(("mode", "language", "stream"), COMBINATIONS)
def test_limit_table(mode: str, language: str, stream: bool) -> None:
    limit = limit_for(mode, language, stream)  # type: ignore[arg-type]
    assert (limit.low, limit.high, limit.unit) == EXPECTED_LIMITS[(mode, language, stream)]


@pytest.mark.parametrize(("mode", "language", "stream", "edge", "delta"), BOUNDARY_CASES)
def test_limit_boundaries(mode: str, language: str, stream: bool, edge: str, delta: int) -> None:
    low, high, unit = EXPECTED_LIMITS[(mode, language, stream)]
    n = (low if edge == "low" else high) + delta
    text = text_of(mode, language, stream, n)
    if n > 0:
        assert text_stats(text).language == language
    if low <= n <= high:
        request = build_request(stream=stream, **{mode: text})
        assert (request.mode, request.language, request.stream) == (mode, language, stream)
        assert (request.count, request.unit) == (n, unit)
        return
    with pytest.raises(ValidationError) as info:
        build_request(stream=stream, **{mode: text})
    message = str(info.value)
    if n == 0:
        assert "needs lyrics or a prompt" in message
        return
    # The message states the limit, what arrived and how to fix it.
    assert f"{low:,}–{high:,} {unit}" in message
    assert f"got {n:,} " in message
    assert ("Remove at least 1 " if n > high else "Add at least 1 ") in message
    if stream and n < low:
        assert "non-streaming" in message


def test_the_simulator_refuses_with_the_same_words() -> None:
    text = text_of("lyrics", "en", True, 251)
    with pytest.raises(ValidationError) as client_side:
        build_request(lyrics=text, stream=True)
    body = {"model": "fun-music-v1", "input": {"lyrics": text}}
    with pytest.raises(ValidationError) as server_side:
        validate_payload(body, stream=True)
    assert str(client_side.value) == str(server_side.value)


def test_error_message_form() -> None:
    with pytest.raises(ValidationError) as info:
        build_request(lyrics="[verse]\n" + chinese(351))
    assert str(info.value) == (
        "Chinese lyrics for non-streaming must be 5–350 characters; got 351 characters, "
        "not counting spaces or tag lines. Remove at least 1 character."
    )
    with pytest.raises(ValidationError) as info:
        build_request(lyrics="[verse]\n" + english_words(199), stream=True)
    assert str(info.value).startswith(
        "English lyrics for streaming must be 200–250 words; got 199 words. Add at least 1 word, "
        "or use non-streaming"
    )


# ---- language --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "han", "words"),
    [
        ("我爱你 love", "zh", 3, 1),
        ("我 love you", "en", 1, 2),
        ("我们 love", "zh", 2, 1),
        ("rain 雨 rain 雨", "zh", 2, 2),  # a tie goes to Chinese
    ],
)
def test_mixed_text_language(text: str, language: str, han: int, words: int) -> None:
    stats = text_stats(text)
    assert (stats.language, stats.han, stats.words) == (language, han, words)


def test_mixed_streaming_prompt_counts_han_plus_words() -> None:
    request = build_request(prompt="我爱你 love song", stream=True)
    assert (request.count, request.unit) == (5, "Chinese characters or English words")


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("さくらの歌をうたう", "Japanese kana"),
        ("カタカナのうた", "Japanese kana"),
        ("사랑의 노래를 불러요", "Korean hangul"),
        ("Песня о дожде", "Cyrillic script"),
    ],
)
@pytest.mark.parametrize("field", ["prompt", "lyrics"])
def test_unsupported_scripts_are_refused(text: str, script: str, field: str) -> None:
    body = text if field == "prompt" else "[verse]\n" + text
    with pytest.raises(ValidationError) as info:
        build_request(**{field: body})
    assert script in str(info.value) and "Chinese or English" in str(info.value)


# ---- empties, both fields, tags --------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "   ", "\n\t\n"])
@pytest.mark.parametrize("field", ["prompt", "lyrics", "text"])
def test_empty_or_blank_is_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match="needs lyrics or a prompt"):
        build_request(**{field: value})


def test_nothing_at_all_is_refused() -> None:
    with pytest.raises(ValidationError, match="got neither"):
        build_request()


def test_tags_only_lyrics_are_refused() -> None:
    with pytest.raises(ValidationError, match="only tags"):
        build_request(lyrics="[verse]\n[chorus]\n")


def test_both_lyrics_and_prompt_warns_and_lyrics_win() -> None:
    request = build_request(lyrics="[verse]\nHello rain", prompt="a sad song")
    assert request.mode == "lyrics"
    assert "prompt" not in request.payload()["input"]
    assert any("prompt is ignored" in w for w in request.warnings)


def test_unknown_tag_warns() -> None:
    request = build_request(lyrics="[verse]\nHello rain\n[hook]\nSing it\n[Chorus 2]\nAgain")
    [warning] = request.warnings
    assert "[hook]" in warning and "[chorus]" not in warning.split(":")[0]


def test_known_tags_do_not_warn() -> None:
    lyrics = "\n".join(
        f"[{tag}]\nline for {tag}" for tag in ("intro", "verse", "chorus", "bridge", "outro")
    )
    assert build_request(lyrics=lyrics).warnings == ()


def test_text_and_fields_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="not both"):
        build_request(text="hello", prompt="hello")


# ---- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sent"), [("female", "female"), ("male", "male"), (" Male ", "male")]
)
def test_gender_values(given: str, sent: str) -> None:
    assert build_request(prompt="a song", gender=given).payload()["input"]["gender"] == sent


@pytest.mark.parametrize(("given", "sent"), [("mp3", "mp3"), ("wav", "wav"), ("WAV", "wav")])
def test_format_values(given: str, sent: str) -> None:
    assert build_request(prompt="a song", format=given).payload()["input"]["format"] == sent


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gender", "robot"),
        ("gender", 3),
        ("format", "flac"),
        ("format", 3),
        ("mode", "poem"),
    ],
)
def test_bad_values_say_what_is_allowed(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        build_request(prompt="a song", **{field: value})  # type: ignore[arg-type]
    assert f"got {value!r}" in str(info.value) and "must be one of" in str(info.value)


def test_no_gender_means_female() -> None:
    # None is "not given" (fun-music-preview needs that); fun-music-v1 gets its default voice.
    assert build_request(prompt="a song", gender=None).payload()["input"]["gender"] == "female"


def test_stream_must_be_a_bool() -> None:
    with pytest.raises(ValidationError, match="True or False"):
        build_request(prompt="a song", stream="yes")  # type: ignore[arg-type]


def test_extra_input_passes_through_but_not_over_named_fields() -> None:
    assert (
        build_request(prompt="a song", mood="calm").payload()["input"]["mood"]
        == "calm"
    )
    with pytest.raises(ValidationError, match="JSON-serialisable"):
        build_request(prompt="a song", thing=object())


def test_other_models_skip_the_length_limits_only() -> None:
    long_prompt = english_characters(2500)
    assert build_request(prompt=long_prompt, model="fun-music-preview").count == 2500
    with pytest.raises(ValidationError, match="Japanese kana"):
        build_request(prompt="さくら", model="fun-music-preview")


# ---- mode detection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("[verse]\nHello rain", "lyrics"),
        ("  [Chorus 2]  \nSing it again", "lyrics"),
        ("[pre-chorus]\nla la la la", "lyrics"),
        ("Melancholic piano, rainy night yearning", "prompt"),
        ("A song with [verse] inline, not on its own line", "prompt"),
        ("[verse] Hello on the same line", "prompt"),
        ("[123]\nnumbers are not tags", "prompt"),
    ],
)
def test_mode_detection(text: str, mode: str) -> None:
    assert detect_mode(text) == mode
    assert build_request(text=text).mode == mode


def test_mode_can_be_forced() -> None:
    assert build_request(text="[verse]\nHello rain", mode="prompt").mode == "prompt"
    assert build_request(text="Hello rain falling down", mode="lyrics").mode == "lyrics"
    assert build_request(prompt="Hello rain falling", mode="lyrics").payload()["input"] == {
        "lyrics": "Hello rain falling",
        "gender": "female",
        "format": "mp3",
    }


# ---- hardening (issue 10) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["😀🎵🎶", "\u200b\u200b\u200b", "!!! ... ???", "12345 678", "[verse]\n🎵 🎵\n[chorus]\n🎶"],
)
@pytest.mark.parametrize("field", ["prompt", "lyrics", "text"])
def test_text_without_han_or_latin_letters_is_refused(field: str, text: str) -> None:
    with pytest.raises(ValidationError) as info:
        build_request(**{field: text})
    message = str(info.value)
    assert "at least one Han character or Latin letter" in message
    assert "\n" not in message and repr(text.strip("\n"))[:6] in message


@pytest.mark.parametrize("text", ["a 😀😀", "雨 🎵", "Éé ✨"])
def test_one_letter_among_emoji_is_enough(text: str) -> None:
    assert build_request(prompt=text).text == text


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"prompt": "hello \ud800 world"}, "prompt must be valid Unicode text; got a lone "
         "surrogate '\\ud800' at character 7"),
        ({"lyrics": "[verse]\nrain \udfff here"}, "lyrics must be valid Unicode text; got a "
         "lone surrogate '\\udfff' at character 14"),
        ({"prompt": "hi", "model": "fun\ud800"}, "model must be valid Unicode text"),
        ({"prompt": "hi", "style": {"mood": "\udc80"}}, "extra input 'style' must be valid "
         "Unicode text"),
        ({"prompt": "hi", "temperature": float("nan")}, "extra input 'temperature' must be JSON "
         "without NaN or infinity; got nan"),
        ({"prompt": "hi", "weights": [1.0, float("inf")]}, "extra input 'weights' must be JSON "
         "without NaN or infinity; got [1.0, inf]"),
        ({"prompt": "hi", "when": object()}, "extra input 'when' must be JSON-serialisable; "
         "got object"),
    ],
)
def test_what_cannot_be_sent_is_a_validation_error(
    kwargs: dict[str, object], expected: str
) -> None:
    with pytest.raises(ValidationError) as info:
        build_request(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(expected)


def test_the_validated_body_is_what_httpx_would_send() -> None:
    import httpx

    request = build_request(prompt="雨の夜 rain"[3:] + " 雨", tempo=1.5, tags=["a", "ü"])
    sent = httpx.Request("POST", "http://x/", json=request.payload()).content
    assert request.body() == sent


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gender", "x" * 5000),
        ("format", "x" * 5000),
        ("mode", "x" * 5000),
        ("model", " " * 5000),  # any other name passes through; blank is refused
        ("stream", ["x" * 5000]),
    ],
)
def test_errors_quote_a_short_excerpt_of_long_values(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        build_request(prompt="hi", **{field: value})  # type: ignore[arg-type]
    message = str(info.value)
    assert len(message) < 200 and "…" in message and "\n" not in message


def test_a_long_extra_value_is_quoted_short() -> None:
    with pytest.raises(ValidationError) as info:
        build_request(prompt="hi", weights=[float("nan")] * 5000)
    assert len(str(info.value)) < 200


def test_mixed_script_quotes_the_first_run_as_written_with_its_position() -> None:
    text = "I hear the rain のが fall and then また the night"
    with pytest.raises(ValidationError) as info:
        build_request(prompt=text)
    assert "Japanese kana ('のが' at character 17)" in str(info.value)
    assert text[16:18] == "のが"
    # Kanji inside the run belong to it; the position counts in the text as the user wrote it.
    with pytest.raises(ValidationError) as info:
        build_request(text="\n\nrain on 東京の雨 tonight")
    assert "('の雨' at character 13)" in str(info.value)


def test_character_counts_say_spaces_are_not_counted() -> None:
    text = " ".join(["abcd"] * 600)  # len() is 2,999; 2,400 characters without spaces
    with pytest.raises(ValidationError) as info:
        build_request(prompt=text)
    assert "got 2,400 characters, not counting spaces." in str(info.value)
    with pytest.raises(ValidationError) as info:
        build_request(prompt=" ".join(["w"] * 1001), stream=True)
    assert "got 1,001 Chinese characters or English words." in str(info.value)
