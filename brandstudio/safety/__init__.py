"""Safety: text rules on prompts and captions (``rules``), verdicts, and the check used by a render."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import SafetyViolation
from .rules import SafetyVerdict, TextRules

__all__ = ["SafetyVerdict", "TextRules", "check_texts"]


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
