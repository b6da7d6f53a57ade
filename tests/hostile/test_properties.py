"""Property-based tests (hypothesis) of the parsers and the safety normaliser.

Parsers (profile loader, template loader, campaign CSV reader, ``.cube`` reader, safety rules):
whatever the bytes (mutations of real inputs: truncated, spliced, bytes flipped or inserted,
plus arbitrary bytes), each returns a value or raises a ``BrandStudioError``.

Normaliser: folding ignores invisible characters, is idempotent, keeps an index into the
original text, and catches a name however its letters are swapped for look-alikes from other
scripts or written in traditional Chinese.
"""

from __future__ import annotations

import opencc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parsers import PARSERS, seeds

from brandstudio.errors import BrandStudioError
from brandstudio.safety import TextRules
from brandstudio.textmatch import fold

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
SEEDS = seeds()


@st.composite
def mutated(draw, kind: str) -> bytes:
    """A real input of ``kind``, damaged a few times the ways files really get damaged."""
    data = bytearray(draw(st.sampled_from(SEEDS[kind])))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["truncate", "insert", "replace", "flip", "duplicate", "nest", "deep"]))
        if op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif op == "replace":
            data[at : at + draw(st.integers(1, 64))] = draw(st.binary(max_size=16))
        elif op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "duplicate":
            data[at:at] = data[max(0, at - draw(st.integers(1, 200))) : at]
        elif op == "nest":  # the brackets and braces parsers recurse on
            data[at:at] = draw(st.sampled_from([b"[", b"{", b"{{", b"{%", b"a=[", b"x={y="])) * draw(
                st.integers(1, 3000)
            )
        elif op == "deep":  # nesting in a value position, where a recursive parser recurses
            opener = draw(st.sampled_from([b"[", b"{a=", b"[{b="]))
            data += b"\nzz_deep = " + opener * draw(st.integers(200, 5000))
    return bytes(data)


def _parses_or_refuses(kind: str, data: bytes) -> None:
    try:
        PARSERS[kind](data)
    except BrandStudioError as exc:
        assert str(exc).strip(), "an error with no message"


@pytest.mark.parametrize("kind", sorted(PARSERS))
@SETTINGS
@given(data=st.data())
def test_damaged_input_is_parsed_or_refused_with_a_brandstudio_error(kind, data):
    _parses_or_refuses(kind, data.draw(mutated(kind)))


@pytest.mark.parametrize("kind", sorted(PARSERS))
@SETTINGS
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_are_parsed_or_refused_with_a_brandstudio_error(kind, data):
    _parses_or_refuses(kind, data)


# -- the safety normaliser ------------------------------------------------------------------------------

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u034f", "\u3164",
             "\ufe0f", "\U000e0041", "\u202e", "\u2066"]  # fmt: skip
LOOKALIKES = {  # Latin letter -> look-alikes that Unicode's confusables.txt lists, compatibility forms, leetspeak
    "a": ["а", "α", "ａ", "𝐚", "4", "@"], "b": ["Ь", "ｂ", "𝒃", "8"], "c": ["с", "ｃ", "ⅽ"], "k": ["ｋ", "𝐤", "K"],
    "o": ["о", "ο", "0", "ｏ", "σ"], "r": ["г", "ｒ", "𝐫"], "s": ["ѕ", "ｓ", "$", "5"], "t": ["ｔ", "𝐭", "7"],
    "u": ["υ", "ս", "ｕ"],
}  # fmt: skip
RULES = TextRules(competitors=["Starbucks"], blocked_terms=["减肥茶"])
text_strategy = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)


@SETTINGS
@given(text=text_strategy, data=st.data())
def test_invisible_characters_change_nothing(text, data):
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 8))):
        chars.insert(data.draw(st.integers(0, len(chars))), data.draw(st.sampled_from(INVISIBLE)))
    assert fold("".join(chars)).text == fold(text).text


@SETTINGS
@given(text=text_strategy)
def test_folding_is_idempotent_and_keeps_an_index(text):
    folded = fold(text)
    assert fold(folded.text).text == folded.text
    assert len(folded.index) == len(folded.text)
    assert list(folded.index) == sorted(folded.index) and all(0 <= i < len(text) for i in folded.index)


@SETTINGS
@given(before=text_strategy, after=text_strategy, data=st.data())
def test_a_name_is_caught_whatever_look_alikes_replace_its_letters(before, after, data):
    letters = [
        data.draw(st.sampled_from([c, c.upper(), *LOOKALIKES.get(c, [])])) for c in "starbucks"
    ]
    name = "".join(letters)
    text = f"{before} {name} {after}"
    verdicts = RULES.check(text, where="prompt")
    assert "competitor:starbucks" in [v.rule_id for v in verdicts], name


@SETTINGS
@given(before=st.text(max_size=20), after=st.text(max_size=20), traditional=st.booleans())
def test_chinese_terms_match_across_scripts(before, after, traditional):
    term = opencc.OpenCC("s2t.json").convert("减肥茶") if traditional else "减肥茶"
    assert any(v.rule_id == "blocked-term:减肥茶" for v in RULES.check(before + term + after, where="caption[0]"))


@SETTINGS
@given(text=text_strategy)
def test_checking_any_text_returns_verdicts_that_point_into_it(text):
    for verdict in RULES.check(text, where="prompt"):
        assert verdict.matched and verdict.matched in text
