"""Image conditioning for Wan2.2 models that take a start image (TI2V-5B, I2V-A14B).

A multi-shot clip can start a shot from the previous shot's last frame
(:mod:`brandstudio.generation.shots`). Which Wan checkpoints can:

=====================================  ==============================  ==================
checkpoint (``model_index.json``)       pipeline class                  ``image_input``
=====================================  ==============================  ==================
Wan2.2 T2V-A14B, Wan2.1 T2V             ``WanPipeline``                 ``"none"``
Wan2.2 TI2V-5B, ``tiny-ti2v``           ``WanPipeline``,                ``"optional"``
                                        ``expand_timesteps: true``
Wan2.2 I2V-A14B, Wan2.1 I2V             ``WanImageToVideoPipeline``     ``"required"``
=====================================  ==============================  ==================

The pipeline class is read from the checkpoint's ``model_index.json`` (:func:`pipeline_class_for`).
A TI2V checkpoint is saved as a ``WanPipeline`` (text only); for an image-conditioned call a
``WanImageToVideoPipeline`` is assembled from *the same* loaded components
(:func:`image_pipeline`: no second copy of the weights; LoRAs already loaded into the
transformer apply). With ``expand_timesteps`` the image's latent frame is kept clean through
denoising, so the video starts from the image.

The prompt is encoded with ``WanPipeline.encode_prompt`` and handed to the image pipeline as
embeddings: in diffusers 0.42 ``WanImageToVideoPipeline`` calls ``ftfy.fix_text`` without
checking that the optional ``ftfy`` package is installed (``WanPipeline`` checks), and the same
encoder gives the same embeddings either way.

Example:
    >>> import numpy as np
    >>> from brandstudio.generation.conditioning import image_digest
    >>> a = np.zeros((4, 6, 3), np.uint8)
    >>> image_digest(a) == image_digest(a.copy()), image_digest(a) == image_digest(a + 1)
    (True, False)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from brandstudio.errors import RequestError

from .base import TEXT_MAX_TOKENS

__all__ = ["check_image", "image_call", "image_digest", "image_input_of", "image_pipeline", "pipeline_class_for"]


def image_digest(image: np.ndarray) -> str:
    """SHA-256 of a frame's shape and pixels (``uint8`` ``(H, W, 3)``): its part of a scene-cache key."""
    image = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{image.dtype}{tuple(image.shape)}|".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def pipeline_class_for(source: str, revision: str | None = None):
    """The diffusers pipeline class a Wan checkpoint declares (``_class_name`` in ``model_index.json``).

    ``WanImageToVideoPipeline`` for image-to-video checkpoints, else ``WanPipeline`` (also when the
    file cannot be read: loading then fails with the usual message).

    Example:
        >>> pipeline_class_for("/nonexistent").__name__                 # doctest: +SKIP
        'WanPipeline'
    """
    from diffusers import WanImageToVideoPipeline, WanPipeline

    name = None
    index = Path(source) / "model_index.json"
    try:
        if index.is_file():
            name = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
        elif not Path(source).exists():
            from diffusers import DiffusionPipeline

            name = DiffusionPipeline.load_config(source, revision=revision).get("_class_name")
    except Exception:  # unreadable or unreachable: WanPipeline, whose loading reports the problem
        name = None
    return WanImageToVideoPipeline if name == "WanImageToVideoPipeline" else WanPipeline


def image_input_of(pipe) -> str:
    """``"none"``, ``"optional"`` (text or text + image) or ``"required"`` (image-to-video only)."""
    from diffusers import WanImageToVideoPipeline

    if isinstance(pipe, WanImageToVideoPipeline):
        return "required"
    return "optional" if pipe.config.get("expand_timesteps") else "none"


def image_pipeline(pipe):
    """A ``WanImageToVideoPipeline`` over ``pipe``'s loaded components (``pipe`` itself if it is one)."""
    from diffusers import WanImageToVideoPipeline

    if isinstance(pipe, WanImageToVideoPipeline):
        return pipe
    i2v = WanImageToVideoPipeline(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        vae=pipe.vae,
        scheduler=pipe.scheduler,
        transformer=pipe.transformer,
        transformer_2=pipe.transformer_2,
        boundary_ratio=pipe.config.get("boundary_ratio"),
        expand_timesteps=bool(pipe.config.get("expand_timesteps")),
    )
    i2v.set_progress_bar_config(disable=True)
    return i2v


def _text_pipeline(pipe):
    """A ``WanPipeline`` for encoding prompts (``pipe`` itself, or a view over its text encoder)."""
    from diffusers import WanPipeline

    if isinstance(pipe, WanPipeline):
        return pipe
    return WanPipeline(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, vae=pipe.vae,
                       scheduler=pipe.scheduler, transformer=None, transformer_2=None)


def check_image(image: np.ndarray | None, *, image_input: str, width: int, height: int, model_id: str) -> None:
    """Raise a :class:`~brandstudio.errors.RequestError` unless ``image`` fits the model and the spec."""
    if image is None:
        if image_input == "required":
            raise RequestError(
                f"`{model_id}` is an image-to-video model: it needs a start `image`",
                field="image", fix="pass image=<uint8 (H, W, 3) frame>, or use a text-to-video or TI2V model",
            )
        return
    if image_input == "none":
        raise RequestError(
            f"`{model_id}` has no image input (text-to-video only)",
            field="image", fix="leave image=None, or use an image-capable model (Wan2.2 TI2V-5B, I2V-A14B, tiny-ti2v)",
        )
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != (height, width, 3):
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise RequestError(
            f"the start `image` must be uint8 of shape ({height}, {width}, 3) like the frames asked for, got {got}",
            field="image", fix="pass a frame of the generation size (e.g. the previous shot's last frame)",
        )


def image_call(pipe, spec, image: np.ndarray) -> tuple[Any, dict]:
    """``(pipeline to call, inputs)`` for an image-conditioned generation of ``spec``.

    The inputs replace ``prompt``/``negative_prompt`` in the text-only call: the start image (as
    PIL) and the prompt embeddings (see the module docstring for why embeddings).
    """
    text = _text_pipeline(pipe)
    prompt_embeds, negative_embeds = text.encode_prompt(
        prompt=spec.prompt, negative_prompt=spec.negative_prompt, do_classifier_free_guidance=True,
        max_sequence_length=TEXT_MAX_TOKENS,  # as the text-only call reads (encode_prompt's own default is 226)
    )
    inputs = {
        "image": Image.fromarray(np.ascontiguousarray(image)),
        "prompt_embeds": prompt_embeds,
        "negative_prompt_embeds": negative_embeds,
    }
    return image_pipeline(pipe), inputs
