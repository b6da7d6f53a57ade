"""Safety rules on text: blocked terms, competitor names and regex rules from the profile.

Checks run on the *final* prompt (after the template and brand style are composed) and on
every caption, so a blocked word cannot slip in through a template variable.

Matching is robust to the usual evasions:

- case and Unicode compatibility forms (NFKC + casefold: ``ＳＴＡＲＢＵＣＫＳ`` and
  ``Starbucks`` are the same), zero-width characters and soft hyphens are removed;
- spacing tricks: separators between letters (``s t a r b u c k s``, ``s.t.a.r-bucks``)
  and common digit/symbol look-alikes (``st4rbuck$``);
- CJK terms match as substrings (Chinese has no spaces between words), also across
  inserted spaces or punctuation (``星 巴 克``).

Latin terms still need a word boundary on both ends, so "ass" does not match "class".

Example:
    >>> from brandstudio.safety.rules import TextRules
    >>> rules = TextRules(blocked_terms=["miracle cure"], competitors=["Starbucks"])
    >>> [v.rule_id for v in rules.check("Better than S.t.a.r.b.u.c.k.s!", where="prompt")]
    ['competitor:starbucks']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["SafetyVerdict", "TextRules", "normalise"]

_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e"}
_LOOKALIKE = {
    "a": "a4@",
    "b": "b8",
    "e": "e3€",
    "g": "g9",
    "i": "i1!|",
    "l": "l1|",
    "o": "o0",
    "s": "s5$",
    "t": "t7+",
    "z": "z2",
}
_SEP = r"[\W_]*"


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x3040 <= cp <= 0x30FF  # kana
        or 0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xAC00 <= cp <= 0xD7AF  # hangul
        or 0xF900 <= cp <= 0xFAFF
        or 0x20000 <= cp <= 0x2FA1F
    )


def normalise(text: str) -> tuple[str, list[int]]:
    """NFKC + casefold + invisible characters dropped; also the index of each output char in ``text``."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if ch in _INVISIBLE or unicodedata.category(ch) == "Cf":
            continue
        for c in unicodedata.normalize("NFKC", ch).casefold():
            out.append(c)
            index.append(i)
    return "".join(out), index


@dataclass(frozen=True)
class SafetyVerdict:
    """One rule that matched: which, where, what text, and whether it blocks."""

    rule_id: str
    action: str  # "block" | "warn"
    matched: str
    where: str  # "prompt", "caption[0]", ...
    message: str = ""

    def as_dict(self) -> dict:
        return {
            "rule": self.rule_id,
            "action": self.action,
            "matched": self.matched,
            "where": self.where,
            "message": self.message,
        }


@dataclass(frozen=True)
class _Rule:
    rule_id: str
    action: str
    regex: re.Pattern
    message: str


def _term_regex(term: str) -> re.Pattern:
    norm, _ = normalise(term)
    chars = [c for c in norm if not c.isspace() and unicodedata.category(c)[0] in "LN"]
    if not chars:
        raise ValueError(f"safety term {term!r} has no letters or digits")
    parts = []
    for c in chars:
        alts = _LOOKALIKE.get(c, c)
        parts.append("[" + re.escape(alts) + "]" if len(alts) > 1 else re.escape(c))
    body = _SEP.join(parts)
    if _is_cjk(chars[0]) or _is_cjk(chars[-1]):
        return re.compile(body)  # substring match: no word boundaries in CJK text
    return re.compile(r"(?<![^\W_])" + body + r"(?![^\W_])")


class TextRules:
    """The profile's text rules, compiled once."""

    def __init__(
        self,
        *,
        blocked_terms: Iterable[str] = (),
        competitors: Iterable[str] = (),
        competitor_action: str = "block",
        rules: Sequence = (),  # SafetyRule-like: id, pattern, action, message
    ) -> None:
        compiled: list[_Rule] = []
        for term in blocked_terms:
            compiled.append(
                _Rule(
                    f"blocked-term:{normalise(term)[0]}",
                    "block",
                    _term_regex(term),
                    f"the brand never uses {term!r}",
                )
            )
        for name in competitors:
            compiled.append(
                _Rule(
                    f"competitor:{normalise(name)[0]}",
                    competitor_action,
                    _term_regex(name),
                    f"competitor {name!r} must not appear",
                )
            )
        for rule in rules:
            compiled.append(
                _Rule(
                    rule.id,
                    rule.action,
                    re.compile(rule.pattern, re.IGNORECASE),
                    rule.message or f"rule {rule.id}",
                )
            )
        self._rules = tuple(compiled)

    def __len__(self) -> int:
        return len(self._rules)

    def check(self, text: str, *, where: str) -> list[SafetyVerdict]:
        """Every rule that matches ``text`` (first match per rule)."""
        norm, index = normalise(text)
        verdicts = []
        for rule in self._rules:
            m = rule.regex.search(norm)
            if m is None or m.end() == m.start():
                continue
            matched = text[index[m.start()] : index[m.end() - 1] + 1]
            verdicts.append(SafetyVerdict(rule.rule_id, rule.action, matched, where, rule.message))
        return verdicts
