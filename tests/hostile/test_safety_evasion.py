"""Hostile input, class 1: competitor names and banned claims written to slip past the rules.

Each case is an evasion a person can type or paste: look-alike letters from other scripts,
invisible characters, accents and zalgo marks, hashtags and longer words, traditional vs
simplified Chinese, and regex rules that would hang a backtracking engine.
"""

from __future__ import annotations

import doctest
import subprocess
import sys
import time

import pytest
from helpers import PROFILES

import brandstudio.safety.rules
import brandstudio.textmatch
from brandstudio import BrandStudio
from brandstudio.errors import ProfileError, SafetyViolation
from brandstudio.profile import load_profile
from brandstudio.profile.schema import SafetyRule, SafetyTerm
from brandstudio.safety import TextRules, check_texts
from brandstudio.textmatch import compile_pattern, fold

RULES = TextRules(
    blocked_terms=["miracle cure", "减肥", "麥當勞"],
    competitors=["Starbucks", "Nespresso", "McDonald's", "茶颜悦色", SafetyTerm(term="Dunkin", match="word")],
    rules=[SafetyRule(id="health", pattern=r"\bcures?\s+(cancer|diabetes)", action="block")],
)


def _hits(text: str) -> dict[str, str]:
    return {v.rule_id: v.matched for v in RULES.check(text, where="prompt")}


@pytest.mark.parametrize(
    "text,rule,matched",
    [
        # letters from another script that look the same (UTS #39 skeletons)
        ("Better than Ѕtаrbuсks", "competitor:starbucks", "Ѕtаrbuсks"),  # Cyrillic Ѕ а с
        ("ΝΕSΡRΕSSΟ pods", "competitor:nespresso", "ΝΕSΡRΕSSΟ"),  # Greek capitals
        ("𝕊𝕥𝕒𝕣𝕓𝕦𝕔𝕜𝕤 taste", "competitor:starbucks", "𝕊𝕥𝕒𝕣𝕓𝕦𝕔𝕜𝕤"),  # mathematical double-struck
        ("Ⓢⓣⓐⓡⓑⓤⓒⓚⓢ", "competitor:starbucks", "Ⓢⓣⓐⓡⓑⓤⓒⓚⓢ"),  # circled
        ("a McDonaIds burger", "competitor:mcdonald's", "McDonaIds"),  # capital I for l
        ("N3spr3ss0 style", "competitor:nespresso", "N3spr3ss0"),  # digits (leetspeak + skeleton 0 -> O)
        # invisible characters and marks
        ("Star\u2060bucks", "competitor:starbucks", "Star\u2060bucks"),  # word joiner
        ("Star\u3164bucks", "competitor:starbucks", "Star\u3164bucks"),  # Hangul filler
        ("Star\ufe0fbucks", "competitor:starbucks", "Star\ufe0fbucks"),  # variation selector
        ("Star\U000e0020bucks", "competitor:starbucks", "Star\U000e0020bucks"),  # tag space
        ("Star\u034fbucks", "competitor:starbucks", "Star\u034fbucks"),  # combining grapheme joiner
        ("Star\u202ebucks", "competitor:starbucks", "Star\u202ebucks"),  # right-to-left override
        ("S\u0336t\u0336a\u0336r\u0336bucks", "competitor:starbucks", "S\u0336t\u0336a\u0336r\u0336bucks"),  # zalgo
        ("Stárbücks", "competitor:starbucks", "Stárbücks"),  # accents
        # hashtags and longer words (competitors match anywhere)
        ("#StarbucksLovers unite", "competitor:starbucks", "Starbucks"),
        ("#ilovestarbucks", "competitor:starbucks", "starbucks"),
        ("the UnStarbucks experience", "competitor:starbucks", "Starbucks"),
        ("#DunkinDonuts fans", "competitor:dunkin", "Dunkin"),  # whole word, a hashtag's capital starts one
        # blocked terms match whole words, hashtags split at their capitals
        ("#TryMiracleCure now", "blocked-term:miracle cure", "MiracleCure"),
        ("a MIRACLE cure", "blocked-term:miracle cure", "MIRACLE cure"),
        # traditional and simplified Chinese, both ways
        ("快速減肥茶", "blocked-term:减肥", "減肥"),  # traditional text, simplified rule
        ("比麦当劳更好", "blocked-term:麦当劳", "麦当劳"),  # simplified text, traditional rule
        ("茶顏悅色同款", "competitor:茶颜悦色", "茶顏悅色"),
        ("減\u200b肥", "blocked-term:减肥", "減\u200b肥"),
        # regex rules see the same folding (ASCII look-alikes made ASCII)
        ("it сures сancer", "health", "сures сancer"),  # Cyrillic с
        ("it ＣＵＲＥＳ diabetes", "health", "ＣＵＲＥＳ diabetes"),
    ],
)
def test_evasion_is_caught(text, rule, matched):
    assert _hits(text).get(rule) == matched


@pytest.mark.parametrize(
    "text",
    [
        "a biscuit dunking into coffee",  # Dunkin asks for whole words
        "first class service",
        "a curated menu of miracles",
        "moderately priced",
        "茶香四溢",
        "Nestlé",  # not a rule here: accents folded must not invent matches
        "a star and some bucks",
    ],
)
def test_innocent_text_passes(text):
    assert _hits(text) == {}


def test_spaced_words_still_match_the_spaced_term():
    # "star bucks" and "s t a r b u c k s" are the usual spacing evasions: both blocked
    assert "competitor:starbucks" in _hits("star bucks")
    assert "competitor:starbucks" in _hits("s t a r b u c k s")


def test_whole_word_rule_for_a_term_given_as_a_table():
    profile = load_profile(PROFILES / "aurora-coffee")  # competitors = [..., { term = "Dunkin", match = "word" }]
    rules = brandstudio.safety.rules_of(profile)
    assert rules.check("biscuits dunking in a latte", where="prompt") == []
    assert [v.rule_id for v in rules.check("#DunkinRun", where="prompt")] == ["competitor:dunkin"]


def test_a_term_without_letters_is_refused_when_the_profile_loads(make_profile):
    profile_dir = make_profile(edit=lambda t: t.replace('"miracle cure",', '"miracle cure", "\u200b!!!",', 1))
    with pytest.raises(ProfileError) as info:
        load_profile(profile_dir)
    assert "safety.blocked_terms" in (info.value.field or "") and "no letters" in str(info.value)


def test_template_variables_are_screened_even_when_not_printed(make_profile, tmp_path):
    # `date` is printed only in a caption here; a variable the caption drops would still be read
    profile_dir = make_profile(
        files={
            "templates/quiet.toml": 'prompt = "a cup of coffee on a table"\n'
            '[variables.note]\ntype = "str"\ndefault = ""\n'
        }
    )
    studio = BrandStudio(profile_dir, output_dir=tmp_path / "out")
    with pytest.raises(SafetyViolation) as info:
        studio.render("quiet", note="as good as Ѕtаrbuсks", duration=1.0, resolution=96)
    assert info.value.field == "variables.note" and info.value.rule_id == "competitor:starbucks"
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_cli_blocks_a_lookalike_competitor_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", "render", str(PROFILES / "aurora-coffee"), "product-hero",
         "-v", "product=#StarbucksLovers blend", "--duration", "1", "--resolution", "96",
         "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "competitor:starbucks" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    assert list(tmp_path.iterdir()) == []


# -- regular expressions that would hang a backtracking engine ------------------------------------------


def test_catastrophic_regex_rule_finishes_in_bounded_time(make_profile, tmp_path):
    """`(a+)+$` on 'aaaa…!' takes exponential time in Python's `re`; it runs on RE2 here."""
    profile_dir = make_profile(
        edit=lambda t: t + '\n[[safety.rules]]\nid = "bomb"\npattern = "(a+)+$"\naction = "warn"\n'
    )
    code = (
        "import sys; from brandstudio import BrandStudio; from brandstudio.errors import BrandStudioError\n"
        f"s = BrandStudio({str(profile_dir)!r}, output_dir={str(tmp_path / 'out')!r})\n"
        "from brandstudio import safety\n"
        "print(safety.check_texts(s.rules, [('caption[0]', 'a' * 64 + '!')]))\n"
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60  # a backtracking engine needs ~2^64 steps
    assert "[]" in proc.stdout  # the text ends with '!': no match, and no hang


def test_regex_rules_run_on_re2_and_refuse_bad_syntax():
    assert compile_pattern(r"(a+)+$").engine == "re2"
    assert compile_pattern(r"(x|xx)*y").search("x" * 100_000) is None
    with pytest.raises(ValueError, match="invalid regular expression"):
        compile_pattern(r"(unclosed")


def test_lookaround_rule_runs_on_the_timed_engine_and_a_timeout_names_the_rule(monkeypatch):
    rule = SafetyRule(id="not-decaf", pattern=r"(?<!de)caf+eine", action="block")
    rules = TextRules(rules=[rule])
    assert compile_pattern(rule.pattern).engine == "regex"
    assert [v.rule_id for v in rules.check("extra caffeine", where="prompt")] == ["not-decaf"]
    assert rules.check("decaffeine", where="prompt") == []
    monkeypatch.setenv("BRANDSTUDIO_SAFETY_REGEX_TIMEOUT", "0.000001")
    with pytest.raises(ProfileError) as info:
        rules.check("z" * 2_000_000 + " caffeine", where="caption[0]")
    err = info.value
    assert err.field == "safety.rules[0].pattern" and "BRANDSTUDIO_SAFETY_REGEX_TIMEOUT" in err.fix
    assert "caption[0]" in str(err)


def test_a_bad_regex_in_brand_toml_is_refused_when_the_profile_loads(make_profile):
    profile_dir = make_profile(edit=lambda t: t + '\n[[safety.rules]]\nid = "broken"\npattern = "(oops"\n')
    with pytest.raises(ProfileError) as info:
        load_profile(profile_dir)
    assert "safety.rules" in (info.value.field or "") and "(oops" in str(info.value)


def test_blocking_verdict_names_the_original_text():
    with pytest.raises(SafetyViolation) as info:
        check_texts(RULES, [("caption[2]", "Tastes like Ѕtаrbuсks")], profile="p")
    assert info.value.matched == "Ѕtаrbuсks" and info.value.field == "caption[2]"


def test_fold_keeps_an_index_into_the_original():
    text = "ⓈT\u200bA\u0301rbucks"
    folded = fold(text)
    assert folded.text == "starbucks"
    assert folded.original(text, 0, len(folded.text)) == text


def test_docstring_examples():
    for module in (brandstudio.textmatch, brandstudio.safety.rules):
        assert doctest.testmod(module).failed == 0
