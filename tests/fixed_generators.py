"""Generators that return given pictures as footage, for render-path tests that need known pixels.

They stand in for the video model only (the unit under test is everything after it): a real
photograph (matplotlib's bundled ``grace_hopper.jpg``, on which nudenet finds ``FACE_FEMALE``),
a flat grey field, or a textured pan that moves a known distance every frame. None has
``cache_identity``, so the scene cache never stores them.

The photo and the grey field carry a faint drifting wave (:func:`with_motion`, ±4 levels): QC
refuses footage that is one colour or frozen (the frames check), and real footage is never either.
"""

from __future__ import annotations

import numpy as np


def grace_hopper() -> np.ndarray:
    """The photo shipped with matplotlib, RGB uint8 (600, 512, 3)."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as img:
        return np.asarray(img.convert("RGB"))


def with_motion(frames: np.ndarray, amplitude: int = 4) -> np.ndarray:
    """``frames`` plus a faint diagonal wave drifting 1/16 of its period per frame: moving, not one colour."""
    t, h, w, _ = frames.shape
    y, x = np.mgrid[0:h, 0:w]
    out = np.empty_like(frames)
    for i in range(t):
        wave = np.rint(amplitude * np.sin(2 * np.pi * ((x / w + y / h) / 2 - i / 16))).astype(np.int16)
        out[i] = np.clip(frames[i].astype(np.int16) + wave[..., None], 0, 255)
    return out


class PhotoGenerator:
    """Every frame is the photo, fitted to the canvas height and centred on mid grey."""

    model_id = "photo"

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, spec) -> np.ndarray:
        from PIL import Image

        self.calls += 1
        img = Image.fromarray(grace_hopper())
        canvas = Image.new("RGB", (spec.width, spec.height), (128, 128, 128))
        h = spec.height
        w = min(spec.width, round(img.width * h / img.height))
        canvas.paste(img.resize((w, h), Image.Resampling.LANCZOS), ((spec.width - w) // 2, 0))
        return with_motion(np.repeat(np.asarray(canvas)[None], spec.num_frames, axis=0))


class FlatGenerator:
    """Every frame is one flat grey (with the faint wave of :func:`with_motion`)."""

    model_id = "flat"

    def __init__(self, level: int = 110) -> None:
        self.level = level
        self.calls = 0

    def generate(self, spec) -> np.ndarray:
        self.calls += 1
        return with_motion(np.full((spec.num_frames, spec.height, spec.width, 3), self.level, np.uint8))


class PanGenerator:
    """A soft random texture panning left ``speed`` pixels per generated frame: every frame a new
    moment, so a frame repeated by a frame-rate change shows as a still step."""

    model_id = "pan"

    def __init__(self, speed: float = 6.0, seed: int = 0) -> None:
        self.speed = speed
        self.seed = seed
        self.calls = 0

    def generate(self, spec) -> np.ndarray:
        from PIL import Image, ImageFilter

        self.calls += 1
        rng = np.random.default_rng(self.seed)
        travel = int(np.ceil(self.speed * spec.num_frames)) + 1
        noise = rng.integers(0, 256, (spec.height, spec.width + travel, 3), dtype=np.uint8)
        texture = np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3))).astype(np.float32)
        texture = (texture - texture.mean()) * 4 + 128  # the blur leaves little contrast: give it back
        frames = []
        for i in range(spec.num_frames):
            x = i * self.speed
            left, frac = int(x), x - int(x)  # sub-pixel steps, linearly
            window = texture[:, left : left + spec.width + 1]
            frames.append(window[:, :-1] * (1 - frac) + window[:, 1:] * frac)
        return np.clip(np.rint(np.stack(frames)), 0, 255).astype(np.uint8)
