"""Lyrics side of the offline Fun-Music simulator.

Writes structured lyrics from a prompt (prompt mode), parses structure tags, and
splits lines into sung syllables so the melody can give one note per syllable.
Everything here is deterministic: the only randomness is a ``random.Random``
seeded from a SHA-256 of the input text.
"""

from __future__ import annotations

import hashlib
import random
import re

__all__ = [
    "KNOWN_TAGS",
    "write_lyrics",
    "parse_sections",
    "syllables",
    "vowel_of",
    "is_mostly_cjk",
]

KNOWN_TAGS = ("intro", "verse", "chorus", "bridge", "outro")

# CJK Unified Ideographs (+ extension A and compatibility ideographs): the characters
# that each carry exactly one sung syllable in Chinese.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RE = re.compile(f"[{_HAN}]")
_LATIN_LETTER_RE = re.compile(r"[A-Za-z\u00c0-\u024f]")
# One token per Han character or per Latin word (apostrophes kept inside words so
# "there's" stays one word); digits and punctuation match nothing and are ignored.
_SYLLABLE_TOKEN_RE = re.compile(f"[{_HAN}]|[A-Za-z\u00c0-\u024f]+(?:'[A-Za-z]+)*")
_TAG_RE = re.compile(r"^\s*\[([^\]]*)\]\s*(.*)$")
_VOWELS = "aeiouy"


def is_mostly_cjk(text: str) -> bool:
    """True when Han characters outnumber Latin letters (the prompt's language test)."""
    han = len(_HAN_RE.findall(text))
    latin = len(_LATIN_LETTER_RE.findall(text))
    return han > 0 and han >= latin


def _rng_for(text: str) -> random.Random:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


# --------------------------------------------------------------------------- parsing


def _normalise_tag(raw: str) -> str:
    # "[Verse 2]", "[CHORUS]" and "[verse-1]" all name a known tag by their leading word;
    # anything else (e.g. "[pre-chorus]", "[hook]") is sung like a verse.
    match = re.match(r"\s*([A-Za-z]+)", raw)
    word = match.group(1).lower() if match else ""
    return word if word in KNOWN_TAGS else "verse"


def parse_sections(lyrics: str) -> list[tuple[str, list[str]]]:
    """Split lyrics into ``[(tag, [line, ...]), ...]``.

    Text before any tag is a ``verse``; unknown tags are treated as ``verse``; blank
    lines are dropped. A tag with no lines is kept (an instrumental section), but no
    empty untagged verse is invented when the lyrics start with a tag.
    """
    sections: list[tuple[str, list[str]]] = []
    current_tag: str | None = None
    current_lines: list[str] = []
    for raw_line in lyrics.splitlines():
        match = _TAG_RE.match(raw_line)
        if match:
            if current_tag is not None or current_lines:
                sections.append((current_tag or "verse", current_lines))
            current_tag = _normalise_tag(match.group(1))
            current_lines = []
            rest = match.group(2).strip()
            if rest:
                current_lines.append(rest)
            continue
        line = raw_line.strip()
        if line:
            current_lines.append(line)
    if current_tag is not None or current_lines:
        sections.append((current_tag or "verse", current_lines))
    return sections


# ------------------------------------------------------------------------- syllables


def _english_word_syllables(word: str) -> list[str]:
    # Contractions ("there's", "don't") add no syllable: only the stem before the
    # apostrophe is scanned for vowel groups, the suffix rides on the last piece.
    stem, apostrophe, suffix = word.partition("'")
    tail = apostrophe + suffix
    low = stem.lower()
    groups = [(m.start(), m.end()) for m in re.finditer(f"[{_VOWELS}]+", low)]
    # A leading "y" before a vowel is a consonant ("yes", "you"): drop it from the group.
    if groups and low.startswith("y") and groups[0][0] == 0 and groups[0][1] > 1:
        groups[0] = (1, groups[0][1])
    if not groups:
        return [word]
    if len(groups) > 1:
        last_start, last_end = groups[-1]
        last = low[last_start:last_end]
        # Silent final "e" ("time", "drifts by the lane") but not consonant+"le" ("little").
        if (
            last == "e"
            and last_end == len(low)
            and not (len(low) >= 3 and low[-2] == "l" and low[-3] not in _VOWELS)
        ):
            groups.pop()
        # Past-tense "-ed" is silent unless after t/d ("finished" vs "wanted").
        elif (
            last == "e"
            and low.endswith("ed")
            and last_end == len(low) - 1
            and low[-3:-2] not in ("t", "d")
        ):
            groups.pop()
        # Plural/verb "-es" after a non-sibilant is silent ("times", "lines").
        elif (
            last == "e"
            and low.endswith("es")
            and last_end == len(low) - 1
            and low[-3:-2] not in ("s", "x", "z", "h", "c", "g")
        ):
            groups.pop()
    if len(groups) == 1:
        return [word]
    # Cut between vowel groups: one consonant goes to the next syllable (V-CV), a
    # cluster is split after its first consonant (VC-CV).
    cuts = [0]
    for (_prev_start, prev_end), (start, _end) in zip(groups, groups[1:], strict=False):
        consonants = start - prev_end
        cuts.append(prev_end if consonants <= 1 else prev_end + 1)
    cuts.append(len(stem))
    pieces = [stem[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    pieces[-1] += tail
    return [p for p in pieces if p]


def syllables(line: str) -> list[str]:
    """One entry per sung syllable.

    English words are split by a vowel-group heuristic (at least one syllable per
    word); Chinese gives one syllable per Han character; digits and punctuation are
    ignored.
    """
    out: list[str] = []
    for token in _SYLLABLE_TOKEN_RE.findall(line):
        if _HAN_RE.fullmatch(token):
            out.append(token)
        else:
            out.extend(_english_word_syllables(token))
    return out


def vowel_of(syllable: str) -> str:
    """The vowel colour ('a', 'e', 'i', 'o' or 'u') the voice should sing for a syllable."""
    low = syllable.lower()
    for ch in low:
        if ch in "aeiou":
            return ch
        if ch == "y" and low.index(ch) > 0:
            return "i"
    if _HAN_RE.fullmatch(syllable):
        # No pinyin table offline: a fixed mapping from the code point still gives
        # every character a stable vowel and varied colours across a line.
        return "aeiou"[(ord(syllable) * 7) % 5]
    return "a"


# ---------------------------------------------------------------------- generation

_EN_STOPWORDS = frozenset(
    """a an the of and or but with for to in on at by from into about over under as is are was
    were be been it its this that these those my your our their his her me you we they i he she
    song songs music track tune lyrics lyric style genre like some very really just make write
    please want feel feeling feels mood vibe vibes beat beats bpm type kind sort using use so
    not no yes can could would should will shall do does did have has had than then there here
    one two three four""".split()
)
_ZH_SPLIT_RE = re.compile(
    r"[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+"  # runs of anything that is not Han
    r"|[的地得了和与在是着过把被就也都很]"  # particles and function words
)
_ZH_FILLER = frozenset(
    {"一首", "首", "歌", "歌曲", "音乐", "风格", "关于", "一个", "一种", "写", "请"}
)

_EN_VERSE = (
    "{W} in the morning light",
    "I keep the {w} close to me",
    "Walking where the {w} meets the sky",
    "Every little {w} finds its way",
    "Hold on to the {w} tonight",
    "We were chasing {w} through the streets",
    "All the {w} that we left behind",
    "Whispers of the {w} in my mind",
    "Counting every {w} on the road",
    "Painting {w} on an open door",
)
_EN_CHORUS = (
    "Oh, {w}, carry me home",
    "Sing it loud, {w} and {w2}",
    "We are the {w}, we are alive",
    "Never let the {w} fade away",
    "Turn it up and let the {w} play",
    "{W}, {w2}, here we go",
)
_EN_BRIDGE = (
    "Maybe the {w} was all we need",
    "Close your eyes and feel the {w}",
    "Slowly the {w} turns to gold",
)
_ZH_VERSE = (
    "{w}在窗前轻轻落下",
    "我把{w}藏在心里",
    "走过{w}的街头",
    "{w}陪我度过漫长的夜",
    "风吹过{w}的方向",
    "想起那年的{w}",
    "{w}在远方静静等待",
    "一个人数着{w}",
)
_ZH_CHORUS = (
    "啊{w}，请你别走",
    "让{w}在心中歌唱",
    "{w}是我唯一的光",
    "我们一起追逐{w}",
    "{w}和{w2}，永远不散",
)
_ZH_BRIDGE = (
    "也许{w}只是一场梦",
    "闭上眼感受{w}",
    "{w}慢慢变成了回忆",
)

# Section plans (tag, number of lines): every plan yields 8-16 lines.
_STRUCTURES: tuple[tuple[tuple[str, int], ...], ...] = (
    (("verse", 4), ("chorus", 4)),
    (("verse", 4), ("chorus", 4), ("verse", 4), ("chorus", 4)),
    (("verse", 4), ("chorus", 4), ("bridge", 2), ("chorus", 4)),
    (("verse", 4), ("chorus", 4), ("verse", 2), ("chorus", 4)),
)


def _english_words(prompt: str) -> list[str]:
    words: list[str] = []
    for token in re.findall(r"[A-Za-z][A-Za-z'-]*", prompt):
        low = token.lower().strip("'-")
        if len(low) >= 3 and low not in _EN_STOPWORDS and low not in words:
            words.append(low)
    return words or ["light", "road", "heart"]


def _chinese_words(prompt: str) -> list[str]:
    words: list[str] = []
    for piece in _ZH_SPLIT_RE.split(prompt):
        piece = piece.strip()
        if not piece or piece in _ZH_FILLER:
            continue
        # Long unsegmented runs are cut into two-character words, the commonest
        # Chinese word length, so they fit the line templates.
        chunks = (
            [piece]
            if len(piece) <= 4
            else [piece[i : i + 2] for i in range(0, len(piece) - 1, 2)]
        )
        for chunk in chunks:
            if chunk not in words and chunk not in _ZH_FILLER:
                words.append(chunk)
    return words or ["月光", "远方", "心跳"]


def _fill(template: str, word: str, word2: str, english: bool) -> str:
    cap = word[:1].upper() + word[1:] if english else word
    return template.format(w=word, w2=word2, W=cap)


def write_lyrics(prompt: str) -> str:
    """Write structured lyrics for prompt mode.

    Uses ``[verse]``/``[chorus]``/``[bridge]`` tags with a blank line between sections,
    Chinese when the prompt is mostly Han characters and English otherwise, and
    the prompt's own words. Same prompt -> same lyrics; 8-16 lines.
    """
    rng = _rng_for(prompt)
    english = not is_mostly_cjk(prompt)
    words = _english_words(prompt) if english else _chinese_words(prompt)
    templates = {
        "verse": _EN_VERSE if english else _ZH_VERSE,
        "chorus": _EN_CHORUS if english else _ZH_CHORUS,
        "bridge": _EN_BRIDGE if english else _ZH_BRIDGE,
    }
    structure = rng.choice(_STRUCTURES)
    # Shuffled round-robin over the prompt words so every word (up to the line count)
    # shows up somewhere in the song.
    order = words[:]
    rng.shuffle(order)
    word_index = 0
    written: dict[str, list[str]] = {}
    blocks: list[str] = []
    for tag, count in structure:
        if tag == "chorus" and "chorus" in written:
            lines = written["chorus"]  # a chorus repeats, as choruses do
        else:
            chosen = rng.sample(templates[tag], k=min(count, len(templates[tag])))
            lines = []
            for template in chosen:
                word = order[word_index % len(order)]
                word2 = order[(word_index + 1) % len(order)]
                if word2 == word:
                    word2 = rng.choice(words if english else ["梦想", "远方", "星光"])
                word_index += 1
                lines.append(_fill(template, word, word2, english))
            if tag == "chorus":
                written["chorus"] = lines
        blocks.append(f"[{tag}]\n" + "\n".join(lines))
    return "\n\n".join(blocks) + "\n"
