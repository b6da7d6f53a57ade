"""Compose the final prompt: template text + LoRA trigger words + the brand's style suffix.

Example:
    >>> from brandstudio.prompts.compose import compose_prompt, compose_negative
    >>> compose_prompt("a bag of coffee on oak", style="warm morning light", triggers=["aurora film look"])
    'a bag of coffee on oak, aurora film look, warm morning light'
    >>> compose_negative("people", "blurry, watermark")
    'people, blurry, watermark'
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["brand_negative", "brand_prompt", "compose_negative", "compose_prompt"]


def _join(parts: Iterable[str], sep: str) -> str:
    seen: list[str] = []
    for part in parts:
        part = " ".join(part.split()).strip(" ,，;；")
        if part and part not in seen:
            seen.append(part)
    return sep.join(seen)


def compose_prompt(body: str, *, style: str = "", triggers: Iterable[str] = (), language: str = "en") -> str:
    """The prompt the model sees: the scene first (it matters most), then trigger words, then style."""
    sep = "，" if language.startswith("zh") else ", "
    return _join([body, *triggers, style], sep)


def compose_negative(template_negative: str, brand_negative: str) -> str:
    """Template negatives then the brand's, each term once."""
    terms = [t for part in (template_negative, brand_negative) for t in part.replace("，", ",").split(",")]
    return _join(terms, ", ")


def brand_prompt(spec, body: str) -> str:
    """``body`` as the model sees it for a profile (its ``BrandProfileSpec``): the LoRA trigger
    words of ``[[style.loras]]`` and the ``[prompt] style`` added. Renders and the scene-cache
    prewarm both use it, so a prewarmed scene has exactly the prompt a scene template asks for."""
    triggers = [w for lo in spec.style.loras for w in lo.trigger_words]
    return compose_prompt(body, style=spec.prompt.style, triggers=triggers, language=spec.brand.language)


def brand_negative(spec, template_negative: str = "") -> str:
    """A template's negative prompt with the profile's ``[prompt] negative`` added."""
    return compose_negative(template_negative, spec.prompt.negative)
