"""Prompts: templates (sandboxed Jinja2 with declared variables), the brand's style composed into
the prompt, shot plans of multi-shot templates, and the :class:`Brief` every later stage reads.

The front door is :func:`make_brief` (step 1 of a render).

Example:
    >>> from brandstudio.prompts import compose_prompt
    >>> compose_prompt("a bag of coffee on oak", style="warm morning light", triggers=["aurora film look"])
    'a bag of coffee on oak, aurora film look, warm morning light'
"""

from .brief import Brief, derived_seed, make_brief, profile_scene
from .compose import brand_negative, brand_prompt, compose_negative, compose_prompt
from .shots import ShotPlan
from .templates import PromptTemplate, RenderedTemplate, TemplateLibrary, shared_templates_dir

__all__ = [
    "Brief",
    "PromptTemplate",
    "RenderedTemplate",
    "ShotPlan",
    "TemplateLibrary",
    "brand_negative",
    "brand_prompt",
    "compose_negative",
    "compose_prompt",
    "derived_seed",
    "make_brief",
    "profile_scene",
    "shared_templates_dir",
]
