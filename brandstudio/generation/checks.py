"""Cheap checks of a clip's generation before any work: nothing loaded, nothing generated.

The studio runs every stage's ``check`` on the brief first, so that a request that cannot be
made fails in milliseconds, with the field to fix, instead of after the model has loaded.

Example:
    >>> check(brief, profile)                                 # doctest: +SKIP
"""

from __future__ import annotations

import functools
import html
import os
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

from brandstudio.errors import RequestError, error_context
from brandstudio.generation.base import TEXT_MAX_TOKENS, frames_to_generate
from brandstudio.generation.clip import check_clip_frames, frames_for, preset_settings
from brandstudio.generation.memory import check_memory_plan
from brandstudio.generation.shots import check_shot_lengths

__all__ = ["TEXT_MAX_TOKENS", "check", "check_prompt_lengths", "prompt_tokens"]

#: without the model's tokenizer on disk, a prompt longer than this many characters is refused:
#: no UMT5 piece is that long on average (English runs about 4 characters a token), so such a
#: prompt can never fit, and a shorter one is left to the tokenizer
_CHARS_PER_TOKEN_BOUND = 16
#: models whose tokenizer is byte-level (one token per UTF-8 byte, plus ``</s>``): the offline ones
_BYTE_LEVEL_MODELS = ("tiny", "tiny-ti2v")


def check(brief, profile) -> None:
    """Raise before any work when the generation ``brief`` asks for cannot be made.

    ``brief`` has ``.preset`` and ``.memory`` (None: the profile's ``[model]`` ones),
    ``.duration`` and ``.shots`` (a :class:`~brandstudio.prompts.shots.ShotPlan` or None), and for
    the messages of a multi-shot clip ``.template`` and ``.template_path``. Checked: the speed
    preset is one of :data:`~brandstudio.registry.SPEED_PRESETS` (and ``fast`` has its
    ``[model.fast] lora``), the memory plan one of :data:`~brandstudio.registry.MEMORY_PLANS`,
    and the clip, or each shot, fits in one generation (``[model] max_frames``). What depends on
    the loaded model (a LoRA's base model, a continuing shot's extra frame on an image model) is
    checked when it is loaded or generated.

    Each prompt and negative prompt (each shot's) must fit in the text encoder
    (:func:`check_prompt_lengths`): the model would silently ignore the rest.

    Raises:
        RequestError: a prompt longer than the text encoder reads, an unknown preset or memory
            plan, ``fast`` without a distilled LoRA, or a clip longer than one generation
            on a text-to-video model (an image model makes it as a long take).
        TemplateError: a shot longer than one generation.
    """
    m = profile.spec.model
    with error_context(profile=profile.id):
        check_prompt_lengths(brief, profile)
        preset_settings(profile, None, brief.preset)  # the family is unknown before loading: names only
        check_memory_plan(brief.memory or m.memory)
        if brief.shots is None and frames_for(brief.generated_duration, m.fps) > m.max_frames:
            check_long_take(profile, brief.generated_duration)  # one scene in chained generations
        elif brief.shots is None:
            check_clip_frames(profile, frames_to_generate(frames_for(brief.generated_duration, m.fps)), brief.generated_duration)
        else:
            check_shot_lengths(
                brief.shots, template=getattr(brief, "template", None), path=getattr(brief, "template_path", ""),
                model_id=m.id, max_frames=m.max_frames, scene_frames=frames_for(profile.spec.output.duration, m.fps),
            )  # fmt: skip


def check_long_take(profile, duration: float) -> None:
    """Raise :class:`~brandstudio.errors.RequestError` when a clip longer than one generation is
    asked of a model known to be text-to-video only: a long take continues each generation from
    the last one's frames (:mod:`brandstudio.generation.long_take`). Other models are checked
    once loaded, before their first generation."""
    m = profile.spec.model
    model = m.id.lower()
    if model == "tiny" or ("t2v" in model and "ti2v" not in model):
        frames = frames_to_generate(frames_for(duration, m.fps))
        raise RequestError(
            f"a {duration:g} s clip needs {frames} frames at {m.fps} fps, more than the {m.max_frames} the model "
            f"makes in one generation, and `{m.id}` is text-to-video only, so it cannot continue a long take "
            "from its last frames",
            profile=profile.id, file="brand.toml", field="output.duration", value=duration,
            fix=f"ask for at most {(m.max_frames - 1) / m.fps:g} s, split the spot into shots (a multi-shot "
            "template), or use a text+image model for long takes (Wan-AI/Wan2.2-TI2V-5B-Diffusers, or tiny-ti2v offline)",
        )  # fmt: skip


def check_prompt_lengths(brief, profile) -> None:
    """Raise :class:`~brandstudio.errors.RequestError` when a prompt or negative prompt (each
    shot's, for a multi-shot clip) is longer than the text encoder reads (:data:`TEXT_MAX_TOKENS`).

    Counted exactly for the offline models (their tokenizer is byte-level) and for a model whose
    tokenizer is on disk (a local checkpoint, or the Hugging Face cache); otherwise a prompt is
    refused only when it is too long for any tokenizer of its kind (see ``_CHARS_PER_TOKEN_BOUND``).
    """
    if brief.shots is None:  # a brief without prompts (a partial one, in a test) has nothing to count
        texts = [("prompt", "prompt", getattr(brief, "prompt", "")),
                 ("negative_prompt", "negative prompt", getattr(brief, "negative", ""))]  # fmt: skip
    else:
        texts = [(f"shots[{s.index}].{name}", f"{label} of shots[{s.index}]", text) for s in brief.shots.shots
                 for name, label, text in (("prompt", "prompt", s.prompt),
                                           ("negative_prompt", "negative prompt", s.negative))]  # fmt: skip
    model = profile.spec.model
    for where, label, text in texts:
        tokens, exact = prompt_tokens(text, model.id, getattr(model, "revision", None))
        if tokens > TEXT_MAX_TOKENS:
            count = f"{tokens} tokens" if exact else f"{len(_clean(text))} characters"
            raise RequestError(
                f"the {label} is too long for the text encoder of {model.id}: {count}, "
                f"it reads at most {TEXT_MAX_TOKENS} tokens and would silently ignore the rest",
                profile=profile.id, field=where, value=text[:80] + ("..." if len(text) > 80 else ""),
                fix="shorten the template's prompt or the variables it prints (the brand's [prompt] style "
                "and LoRA trigger words are added to it)",
            )  # fmt: skip


def prompt_tokens(text: str, model_id: str, revision: str | None = None) -> tuple[int, bool]:
    """``(tokens, exact)``: how many tokens the text encoder of ``model_id`` gets for ``text``
    (the end-of-text token included), or, when its tokenizer is not on disk, a lower bound.
    Loads nothing from the network.

    Example:
        >>> prompt_tokens("steam over a cup", "tiny")
        (17, True)
        >>> prompt_tokens("茶" * 10, "tiny")              # 3 UTF-8 bytes a character
        (31, True)
    """
    cleaned = _clean(text)
    if model_id in _BYTE_LEVEL_MODELS:
        return len(cleaned.encode("utf-8")) + 1, True
    tokenizer = _local_tokenizer(model_id, revision)
    if tokenizer is not None:
        return len(tokenizer.encode(cleaned).ids), True
    return -(-len(cleaned) // _CHARS_PER_TOKEN_BOUND), False


def _clean(text: str) -> str:
    """The prompt as the pipeline tokenizes it (diffusers' ``prompt_clean``: HTML entities
    unescaped twice, runs of whitespace made one space, stripped)."""
    return " ".join(html.unescape(html.unescape(text)).split())


@functools.lru_cache(maxsize=4)
def _local_tokenizer(model_id: str, revision: str | None):
    """The model's ``tokenizer/tokenizer.json`` when it is on disk (a checkpoint directory, or
    the Hugging Face cache), loaded with ``tokenizers``; None otherwise. Never downloads."""
    path: str | None = None
    local = Path(os.path.expanduser(model_id)) / "tokenizer" / "tokenizer.json"
    if local.is_file():
        path = str(local)
    else:
        try:
            found = try_to_load_from_cache(model_id, "tokenizer/tokenizer.json", revision=revision)
            path = found if isinstance(found, str) else None
        except Exception:  # noqa: BLE001 - not a hub id, no cache: count by characters instead
            path = None
    if path is None:
        return None
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(path)
    except Exception:  # noqa: BLE001 - an unreadable tokenizer file is the loader's error to report
        return None
