"""Safety: the brand's text rules on prompts and captions (:mod:`.rules`), the NSFW check on
delivered frames (:mod:`.frames`), and their verdicts.

The stage's front doors: :func:`screen` (step 3 of a render: every text of the brief) and
:func:`screen_frames` (the sampled delivered frames, before they are encoded).

Example:
    >>> rules = TextRules(blocked_terms=["guaranteed"], competitors=["Brewster"])
    >>> [v.rule_id for v in check_texts(rules, [("prompt", "the best coffee")])]
    []
    >>> check_texts(rules, [("caption[0]", "Better than Brewster")])
    Traceback (most recent call last):
    ...
    brandstudio.errors.SafetyViolation: safety rule 'competitor:brewster' blocked the render: caption[0] contains 'Brewster' (competitor 'Brewster' must not appear)
      field:   caption[0]
      fix:     change the template variables or the brief so the text no longer matches; nothing was generated
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import SafetyViolation
from ..profile import BrandProfile
from .frames import FrameSafety, NsfwBlur
from .rules import SafetyVerdict, TextRules

__all__ = ["FrameSafety", "NsfwBlur", "SafetyVerdict", "TextRules", "check_texts", "rules_of", "screen", "screen_frames"]


def check_texts(
    rules: TextRules, texts: Iterable[tuple[str, str]], *, profile: str | None = None
) -> list[SafetyVerdict]:
    """Check ``(where, text)`` pairs; raise :class:`SafetyViolation` on the first blocking verdict.

    Returns every verdict (warnings included) when nothing blocks.
    """
    verdicts: list[SafetyVerdict] = []
    for where, text in texts:
        verdicts.extend(rules.check(text, where=where))
    for v in verdicts:
        if v.action == "block":
            raise SafetyViolation(
                f"safety rule {v.rule_id!r} blocked the render: {v.where} contains {v.matched!r} ({v.message})",
                rule_id=v.rule_id,
                matched=v.matched,
                verdicts=verdicts,
                profile=profile,
                field=v.where,
                value=v.matched,
                fix="change the template variables or the brief so the text no longer matches; "
                "nothing was generated",
            )
    return verdicts


def rules_of(profile: BrandProfile) -> TextRules:
    """The profile's ``[safety]`` text rules (blocked terms, competitors, regex rules)."""
    s = profile.spec.safety
    return TextRules(
        blocked_terms=s.blocked_terms,
        competitors=s.competitors,
        competitor_action=s.competitor_action,
        rules=s.rules,
        term_match=s.term_match,
        competitor_match=s.competitor_match,
    )


def screen(brief, rules: TextRules, *, profile: str | None = None) -> list[SafetyVerdict]:
    """The brand's rules on every text of ``brief`` (each shot's prompt, each caption): raises
    :class:`SafetyViolation` on a blocking match, else returns the verdicts (warnings)."""
    return check_texts(rules, brief.texts(), profile=profile)


def screen_frames(clip, fps: float, profile: BrandProfile) -> tuple[NsfwBlur | None, list[SafetyVerdict]]:
    """``[safety] nsfw`` on the sampled delivered frames of ``clip`` (``len(clip)``, ``clip[i]``):
    ``block`` raises, ``blur`` returns the pixelate effect to put in the stream, ``warn`` verdicts only."""
    return FrameSafety.from_section(profile.spec.safety).check(clip, fps, profile=profile.id)
