"""Safety rules on text: blocked terms, competitor names and regex rules from the profile.

Checks run on the *final* prompt (after the template and brand style are composed), on every
caption and on every template variable, so a blocked word cannot slip in through any of them.

Every text is folded first (:func:`brandstudio.textmatch.fold`), so what *looks* the same
matches the same:

- compatibility forms and case (``ＳＴＡＲＢＵＣＫＳ``, ``𝐒𝐭𝐚𝐫𝐛𝐮𝐜𝐤𝐬`` = ``Starbucks``);
- look-alike letters from other scripts, by Unicode's confusable skeletons (UTS #39):
  Cyrillic ``Ѕtаrbuсks``, Greek ``ΝΙΚΕ``, ``McDonaIds`` with a capital I;
- invisible characters (zero-width spaces and joiners, soft hyphens, word joiners, variation
  selectors, tag characters, Hangul fillers) and accents or zalgo marks (``Nestlé``);
- traditional and simplified Chinese (``麥當勞`` = ``麦当劳``), both ways;
- spacing tricks: separators between letters (``s t a r b u c k s``, ``s.t.a.r-bucks``) and
  digit or symbol look-alikes (``st4rbuck$``).

Where a term may match:

- ``match = "anywhere"`` (competitor names by default): inside longer words and hashtags
  (``#StarbucksLovers``, ``UnStarbucks``);
- ``match = "word"`` (blocked terms by default): as a whole word, where a hashtag's capitals
  start words (``#MiracleCure`` and ``#TryMiracleCure`` match ``miracle cure``; ``class``
  does not match ``ass``);
- CJK terms always match anywhere (Chinese and Japanese have no spaces between words).

Regex rules (``[[safety.rules]]``) run on the readable fold: look-alikes of ASCII letters made
ASCII, Chinese simplified, lower case; on RE2, in linear time (see
:func:`brandstudio.textmatch.compile_pattern`).

Example:
    >>> from brandstudio.safety.rules import TextRules
    >>> rules = TextRules(blocked_terms=["miracle cure"], competitors=["Starbucks"])
    >>> [v.rule_id for v in rules.check("Better than S.t.a.r.b.u.c.k.s!", where="prompt")]
    ['competitor:starbucks']
    >>> [v.matched for v in rules.check("#ЅtаrbuсksLovers", where="caption[0]")]  # Cyrillic Ѕ, а, с
    ['Ѕtаrbuсks']
    >>> rules.check("#TryMiracleCure today", where="prompt")[0].rule_id
    'blocked-term:miracle cure'
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ProfileError
from ..textmatch import REGEX_SECONDS, Folded, Pattern, PatternTimeout, compile_pattern, fold, is_cjk

__all__ = ["MATCH_MODES", "SafetyVerdict", "TextRules", "term_key"]

MATCH_MODES = ("word", "anywhere")

# digit and symbol look-alikes people type for letters (leetspeak); the confusable skeleton
# already covers 0 -> o and 1 / | -> l
_LOOKALIKE = {
    "a": "4@",
    "b": "8",
    "e": "3€",
    "g": "9",
    "i": "1!|",
    "l": "1|",
    "o": "0",
    "s": "5$",
    "t": "7+",
    "z": "2",
}
_SEPARATORS = r"[^\pL\pN]*"  # anything but a letter or digit, between the letters of a term


@dataclass(frozen=True)
class SafetyVerdict:
    """One rule that matched: which, where, what text, and whether it blocks."""

    rule_id: str
    action: str  # "block" | "warn"
    matched: str
    where: str  # "prompt", "caption[0]", "variables.product", ...
    message: str = ""

    def as_dict(self) -> dict:
        return {
            "rule": self.rule_id,
            "action": self.action,
            "matched": self.matched,
            "where": self.where,
            "message": self.message,
        }


def term_key(term: str) -> str:
    """The readable folded form of a term: the tail of its rule id (``competitor:starbucks``)."""
    return fold(term, readable=True).text.strip()


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LN" and not is_cjk(ch)


def _char_class(ch: str) -> str:
    """RE2 syntax for one folded letter and its folded digit/symbol look-alikes."""
    alternatives = dict.fromkeys([ch])
    for alt in _LOOKALIKE.get(ch, ""):
        folded = fold(alt).text
        if len(folded) == 1:
            alternatives[folded] = None
    escaped = "".join(c if c.isalnum() else f"\\x{{{ord(c):x}}}" for c in alternatives)
    return escaped if len(alternatives) == 1 else f"[{escaped}]"


@dataclass(frozen=True)
class _TermRule:
    rule_id: str
    action: str
    message: str
    pattern: Pattern
    whole_word: bool

    def find(self, folded: Folded) -> tuple[int, int] | None:
        text, pos = folded.text, 0
        while (span := self.pattern.search(text, pos)) is not None:
            start, end = span
            if not self.whole_word or (
                (start == 0 or not _is_word_char(text[start - 1]) or start in folded.camel)
                and (end == len(text) or not _is_word_char(text[end]) or end in folded.camel)
            ):
                return span
            pos = start + 1
        return None


def _term_rule(term: str, *, kind: str, action: str, match: str, message: str) -> _TermRule:
    letters = [c for c in fold(term).text if unicodedata.category(c)[0] in "LN"]
    if not letters:
        raise ValueError(f"safety term {term!r} has no letters or digits")
    if match not in MATCH_MODES:
        raise ValueError(f"unknown match mode {match!r} for safety term {term!r}; use one of {list(MATCH_MODES)}")
    pattern = compile_pattern(_SEPARATORS.join(_char_class(c) for c in letters), ignore_case=False)
    whole_word = match == "word" and not (is_cjk(letters[0]) or is_cjk(letters[-1]))
    return _TermRule(f"{kind}:{term_key(term)}", action, message, pattern, whole_word)


@dataclass(frozen=True)
class _RegexRule:
    rule_id: str
    action: str
    message: str
    pattern: Pattern
    field: str  # where the rule is in brand.toml, for a timeout error

    def find(self, folded: Folded) -> tuple[int, int] | None:
        text, pos = folded.text, 0
        while (span := self.pattern.search(text, pos)) is not None:
            if span[1] > span[0]:
                return span
            pos = span[0] + 1  # an empty match says nothing: look further
            if pos > len(text):
                break
        return None


def _term_and_mode(entry: Any, default: str) -> tuple[str, str]:
    """A term given as a string, or as a ``{term, match}`` entry (the schema's ``SafetyTerm``)."""
    if isinstance(entry, str):
        return entry, default
    return entry.term, entry.match or default


class TextRules:
    """The profile's text rules, compiled once.

    ``blocked_terms`` and ``competitors`` are strings or ``{term, match}`` entries;
    ``term_match`` and ``competitor_match`` are the modes of the plain strings.
    """

    def __init__(
        self,
        *,
        blocked_terms: Iterable[Any] = (),
        competitors: Iterable[Any] = (),
        competitor_action: str = "block",
        rules: Sequence = (),  # SafetyRule-like: id, pattern, action, message
        term_match: str = "word",
        competitor_match: str = "anywhere",
    ) -> None:
        compiled: list[_TermRule | _RegexRule] = []
        for entry in blocked_terms:
            term, match = _term_and_mode(entry, term_match)
            compiled.append(
                _term_rule(term, kind="blocked-term", action="block", match=match,
                           message=f"the brand never uses {term!r}")
            )
        for entry in competitors:
            name, match = _term_and_mode(entry, competitor_match)
            compiled.append(
                _term_rule(name, kind="competitor", action=competitor_action, match=match,
                           message=f"competitor {name!r} must not appear")
            )
        for i, rule in enumerate(rules):
            compiled.append(
                _RegexRule(rule.id, rule.action, rule.message or f"rule {rule.id}", compile_pattern(rule.pattern),
                           f"safety.rules[{i}].pattern")
            )
        self._rules = tuple(compiled)

    def __len__(self) -> int:
        return len(self._rules)

    def check(self, text: str, *, where: str) -> list[SafetyVerdict]:
        """Every rule that matches ``text`` (first match per rule)."""
        skeleton = fold(text)
        readable = fold(text, readable=True)
        verdicts = []
        for rule in self._rules:
            folded = readable if isinstance(rule, _RegexRule) else skeleton
            try:
                span = rule.find(folded)
            except PatternTimeout as exc:
                raise ProfileError(
                    f"safety rule {rule.rule_id!r} ran past its time limit on {where}: {exc}",
                    field=rule.field,  # type: ignore[union-attr]  # only regex rules time out
                    value=rule.pattern.source,
                    fix="rewrite the pattern for RE2 (no look-arounds or back-references) so it runs in "
                    f"linear time; or {REGEX_SECONDS.fix()}",
                ) from None
            if span is None:
                continue
            matched = folded.original(text, *span)
            verdicts.append(SafetyVerdict(rule.rule_id, rule.action, matched, where, rule.message))
        return verdicts
