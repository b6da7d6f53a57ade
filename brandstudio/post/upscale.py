"""Resize frames to the delivery size.

Methods live in two string-keyed registries:

* :data:`UPSCALERS`: resamplers (``"lanczos"``, always there; ``"bicubic"``); each takes one
  ``(H, W, 3)`` uint8 frame and a ``(width, height)`` and returns the resized frame.
* :data:`MODEL_UPSCALERS`: learned upscalers that need a weight file: ``"realesrgan"``
  (:class:`brandstudio.post.sr.RealESRGAN`: RRDBNet and SRVGGNetCompact, detected from the
  official weight files). The model upscales by its own factor (x2, x4), tiled, and Lanczos
  then brings the result to the exact delivery size. Frames that need no enlargement skip
  the model. fp32 on CPU, bf16 on CUDA: on a 2-core CPU a full-size model takes minutes per
  clip, so it is a GPU feature.

Example:
    >>> import numpy as np
    >>> from brandstudio.post.upscale import Upscale, UPSCALERS, METHODS
    >>> sorted(UPSCALERS), METHODS
    (['bicubic', 'lanczos'], ('lanczos', 'bicubic', 'realesrgan'))
    >>> Upscale(64, 36).apply(np.zeros((3, 18, 32, 3), np.uint8)).shape
    (3, 36, 64, 3)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from PIL import Image as _Image

from brandstudio.frames import check_frames
from brandstudio.profile.assets import ASSET_CHECKS
from brandstudio.registry import UPSCALE_METHODS

from .effect import Effect

__all__ = ["METHODS", "MODEL_UPSCALERS", "UPSCALERS", "Upscale"]


#: freed image blocks Pillow keeps for reuse while frames are resized (see :func:`_reuse_pillow_blocks`)
PILLOW_BLOCKS = 16


def _reuse_pillow_blocks() -> None:
    """Let Pillow keep a few freed image blocks instead of returning them to the OS.

    Pillow's default (``blocks_max`` 0) frees every image's memory, so each resized 720p frame
    maps and zero-fills fresh pages for its three images (source, horizontal pass, result):
    about 5 ms a frame of the 21 ms a Lanczos upscale costs on this machine (``bench/post.py``).
    Raised to :data:`PILLOW_BLOCKS` (at most ~60 MB held for 720p frames), never lowered, and left
    alone when the user set ``PILLOW_BLOCKS_MAX`` (Pillow's own switch for the same thing).
    """


    if "PILLOW_BLOCKS_MAX" not in os.environ and _Image.core.get_blocks_max() < PILLOW_BLOCKS:
        _Image.core.set_blocks_max(PILLOW_BLOCKS)


def _pil(resample: int) -> Callable[[np.ndarray, tuple[int, int]], np.ndarray]:
    def resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return np.asarray(Image.fromarray(frame).resize(size, resample=resample))

    return resize


#: resampling methods by name
UPSCALERS: dict[str, Callable[[np.ndarray, tuple[int, int]], np.ndarray]] = {
    "lanczos": _pil(Image.Resampling.LANCZOS),
    "bicubic": _pil(Image.Resampling.BICUBIC),
}


def _realesrgan(weights, tile, tile_pad, device):
    from .sr import RealESRGAN

    return RealESRGAN(weights, tile=tile, tile_pad=tile_pad, device=device)


#: learned upscalers by name: ``(weights, tile, tile_pad, device) -> model`` with ``.upscale(frames)``
MODEL_UPSCALERS: dict[str, Callable] = {"realesrgan": _realesrgan}

#: every method :class:`Upscale` accepts (``[upscale] method`` is checked against the registry)
METHODS = (*UPSCALERS, *MODEL_UPSCALERS)
for _name in METHODS:
    UPSCALE_METHODS.register(_name, UPSCALERS.get(_name) or MODEL_UPSCALERS[_name])


@dataclass(frozen=True)
class Upscale(Effect):
    """Resize every frame to ``width`` x ``height`` with ``method`` (a key of :data:`METHODS`).

    It also downsizes; frames already at the size are returned unchanged (copied). A model
    method (``"realesrgan"``) needs ``weights`` (a ``.safetensors`` or ``.pth`` file); it runs
    only when the frames must grow, with ``tile`` / ``tile_pad`` (input px) on ``device``,
    and Lanczos takes its output to the exact size.
    """

    width: int
    height: int
    method: str = "lanczos"
    weights: str | Path | None = None
    tile: int = 256
    tile_pad: int = 16
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"unknown upscale method {self.method!r}; use one of {', '.join(sorted(METHODS))}"
            )
        if self.method in MODEL_UPSCALERS and self.weights is None:
            raise ValueError(f"upscale method {self.method!r} needs `weights` (a .safetensors or .pth file)")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")

    def apply(self, frames: np.ndarray) -> np.ndarray:
        frames = check_frames(frames)
        size = (int(self.width), int(self.height))
        if frames.shape[1:3] == (size[1], size[0]):
            return frames.copy()
        resize = UPSCALERS.get(self.method, UPSCALERS["lanczos"])
        if self.method in MODEL_UPSCALERS and (size[0] > frames.shape[2] or size[1] > frames.shape[1]):
            model = MODEL_UPSCALERS[self.method](self.weights, self.tile, self.tile_pad, self.device)
            frames = model.upscale(frames)
            if frames.shape[1:3] == (size[1], size[0]):
                return frames
        _reuse_pillow_blocks()
        out = np.empty((frames.shape[0], size[1], size[0], 3), dtype=np.uint8)
        for i, frame in enumerate(frames):
            out[i] = resize(frame, size)
        return out


@ASSET_CHECKS.register("upscale-weights")
def _check_sr_weights(path: Path) -> None:
    from .sr import inspect_weights  # torch: imported when Real-ESRGAN weights are named

    inspect_weights(path)
