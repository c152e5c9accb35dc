"""Instrumental songs (``input.is_instrumental``) and ``fun-music-preview`` (a prompt only).

Both come from the vendor's newer pages, not the original reference (see the README).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

import funmusic_jupyter as fm
from funmusic_jupyter import ValidationError, build_request
from funmusic_jupyter.simulator import SimulatorServer
from funmusic_jupyter.simulator._music import arrange

PREVIEW = "fun-music-preview"
LYRICS = "[verse]\nRain on the window\n[chorus]\nStay with me tonight"


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(speed=0) as server:
        yield server


# -- validation -------------------------------------------------------------------------------


def test_instrumental_is_sent_only_when_asked() -> None:
    assert build_request(prompt="a song", instrumental=True).payload()["input"] == {
        "prompt": "a song", "gender": "female", "format": "mp3", "is_instrumental": True,
    }
    assert "is_instrumental" not in build_request(prompt="a song").payload()["input"]
    assert build_request(prompt="a song", instrumental=True).describe()["instrumental"] is True


def test_the_wire_name_is_an_alias() -> None:
    request = build_request(prompt="a song", is_instrumental=True)
    assert request.instrumental is True and request.extra_input == {}
    with pytest.raises(ValidationError, match="True or False; got 'yes'"):
        build_request(prompt="a song", is_instrumental="yes")


@pytest.mark.parametrize("value", [1, "true", None, 0.0])
def test_instrumental_must_be_a_real_bool(value: object) -> None:
    with pytest.raises(ValidationError, match=r"^instrumental must be True or False; got "):
        build_request(prompt="a song", instrumental=value)  # type: ignore[arg-type]


def test_preview_takes_a_prompt_and_sends_no_gender() -> None:
    request = build_request(prompt="Melancholic piano", model=PREVIEW, instrumental=True)
    assert request.payload() == {
        "model": PREVIEW,
        "input": {"prompt": "Melancholic piano", "format": "mp3", "is_instrumental": True},
    }
    assert request.gender == ""


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"lyrics": LYRICS}, "fun-music-preview takes a prompt only; got lyrics. "),
        ({"text": LYRICS}, "got lyrics (the text has a structure-tag line such as [verse])"),
        ({"prompt": "a song", "gender": "male"}, "takes no gender; got gender='male'"),
        ({"prompt": "a song", "gender": "robot"}, "takes no gender; got gender='robot'"),
    ],
)
def test_preview_refuses_lyrics_and_gender_in_one_line(
    fields: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        build_request(model=PREVIEW, **fields)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_preview_refuses_even_the_default_voice_when_it_is_given() -> None:
    # Dropping gender="female" silently would hide that it does nothing for this model.
    with pytest.raises(ValidationError, match=r"takes no gender; got gender='female'"):
        build_request(prompt="a song", gender="female", model=PREVIEW)


def test_preview_through_generate_with_default_arguments(simulator: SimulatorServer) -> None:
    # generate()'s own defaults must not count as an explicit gender.
    song = fm.generate(prompt="Slow rainy night piano", model=PREVIEW, format="wav",
                       base_url=simulator.base_url)
    assert song.model == PREVIEW and song.request.gender == ""
    assert "default voice" in song.summary()


# -- the simulator ----------------------------------------------------------------------------


def test_an_instrumental_arrangement_has_no_voice() -> None:
    sung = arrange(lyrics=LYRICS, gender="female")
    plain = arrange(lyrics=LYRICS, gender="female", instrumental=True)
    assert sung.lead_notes and not plain.lead_notes
    assert not any(e.kind in ("lead", "harmony") for s in plain.sections for e in s.events)
    assert plain.duration == sung.duration  # the same song, only the voices gone


@pytest.mark.parametrize("stream", [False, True])
def test_simulator_makes_instrumentals_with_empty_lyrics(
    simulator: SimulatorServer, stream: bool
) -> None:
    prompt = "Upbeat summer dance with bright synths"
    song = fm.generate(prompt=prompt, instrumental=True, stream=stream, format="wav",
                       base_url=simulator.base_url)
    sung = fm.generate(prompt=prompt, stream=stream, format="wav", base_url=simulator.base_url)
    assert song.lyrics == "" and sung.lyrics != ""
    assert song.request.instrumental and "instrumental" in song.summary()
    assert song.audio != sung.audio and len(song.audio) == len(sung.audio)


def test_simulator_refuses_preview_lyrics_and_gender_as_the_client_does(
    simulator: SimulatorServer,
) -> None:
    url = f"{simulator.base_url}/services/audio/music/generation"
    for inp, expected in (
        ({"lyrics": LYRICS}, "takes a prompt only"),
        ({"prompt": "a song", "gender": "male"}, "takes no gender"),
    ):
        answer = httpx.post(url, json={"model": PREVIEW, "input": inp}, timeout=30)
        assert answer.status_code == 400
        body = json.loads(answer.content)
        assert body["code"] == "InvalidParameter" and expected in body["message"]

