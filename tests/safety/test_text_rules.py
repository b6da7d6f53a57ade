"""Text safety rules: evasions (case, width, spacing, look-alikes, zero-width) and CJK substrings."""

from __future__ import annotations

import pytest

from brandstudio.errors import SafetyViolation
from brandstudio.profile.schema import SafetyRule
from brandstudio.safety import TextRules, check_texts

RULES = TextRules(
    blocked_terms=["miracle cure", "减肥"],
    competitors=["Starbucks", "星巴克"],
    rules=[
        SafetyRule(id="health", pattern=r"\bcures?\s+cancer", action="block"),
        SafetyRule(id="superlative", pattern=r"best coffee in the world", action="warn"),
    ],
)


@pytest.mark.parametrize(
    "text,rule,matched",
    [
        ("Better than Starbucks", "competitor:starbucks", "Starbucks"),
        ("better than STARBUCKS", "competitor:starbucks", "STARBUCKS"),
        ("ＳＴＡＲＢＵＣＫＳ coffee", "competitor:starbucks", "ＳＴＡＲＢＵＣＫＳ"),  # full-width forms
        ("s t a r b u c k s latte", "competitor:starbucks", "s t a r b u c k s"),
        ("S.t.a.r-b_u.c.k.s latte", "competitor:starbucks", "S.t.a.r-b_u.c.k.s"),
        ("st4rbuck$ latte", "competitor:starbucks", "st4rbuck$"),
        ("Star\u200bbucks latte", "competitor:starbucks", "Star\u200bbucks"),  # zero-width space
        ("a MIRACLE   cure", "blocked-term:miracle cure", "MIRACLE   cure"),
        ("比星巴克更好喝", "competitor:星巴克", "星巴克"),  # CJK: substring, no word boundaries
        ("星 巴 克 同款", "competitor:星巴克", "星 巴 克"),
        ("快速减肥茶", "blocked-term:减肥", "减肥"),
        ("it cures cancer", "health", "cures cancer"),
        ("It CURES  Cancer", "health", "CURES  Cancer"),
    ],
)
def test_rule_matches_evasions(text, rule, matched):
    hits = {v.rule_id: v.matched for v in RULES.check(text, where="prompt")}
    assert hits.get(rule) == matched


@pytest.mark.parametrize(
    "text",
    ["a classic starry night", "buckwheat pancakes", "first class service", "a curated menu", "茶香四溢"],
)
def test_innocent_text_passes(text):
    assert RULES.check(text, where="prompt") == []


def test_block_raises_with_rule_and_text_and_warn_is_recorded():
    verdicts = check_texts(RULES, [("prompt", "the best coffee in the world")])
    assert [(v.rule_id, v.action) for v in verdicts] == [("superlative", "warn")]
    with pytest.raises(SafetyViolation) as info:
        check_texts(RULES, [("prompt", "fresh beans"), ("caption[1]", "Not Starbucks!")], profile="p")
    exc = info.value
    assert exc.rule_id == "competitor:starbucks" and exc.matched == "Starbucks"
    assert exc.field == "caption[1]" and "Starbucks" in str(exc)
