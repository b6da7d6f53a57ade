"""Procedural footage: moving gradients, soft shapes and a light, each with a caption.

The offline demo model learns what footage looks like from these scenes
(:mod:`brandstudio.generation.tiny_training`), and the demo profiles' reference stills are drawn
the same way in the brand's palette (``brand_profiles/make_assets.py``), so a LoRA trained on
them moves the model from "any colour" to "the brand's colours" and nothing else.

A :class:`Scene` is drawn once from a seeded generator (:func:`random_scene`) and rendered at any
size and length (:func:`render_scene`): a gradient between two colours that drifts along its
axis, one or two soft discs gliding in straight lines, and a soft light that wanders. Everything
is smooth in space and time: footage a model of a few hundred thousand parameters can learn.

Example:
    >>> import numpy as np
    >>> scene = random_scene(np.random.default_rng(0))
    >>> render_scene(scene, frames=5, width=64, height=32).shape
    (5, 32, 64, 3)
    >>> scene_caption(scene).startswith("a soft gradient from ")
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["COLOUR_NAMES", "Disc", "Scene", "random_scene", "render_scene", "scene_caption", "scene_direction"]

COLOUR_NAMES: Mapping[str, str] = {
    "#C62828": "red",
    "#EF6C00": "orange",
    "#F9A825": "amber",
    "#FDD835": "yellow",
    "#9CCC65": "lime green",
    "#2E7D32": "forest green",
    "#00897B": "teal",
    "#4DD0E1": "cyan",
    "#81D4FA": "sky blue",
    "#1565C0": "blue",
    "#283593": "indigo",
    "#6A1B9A": "purple",
    "#D81B60": "magenta",
    "#F48FB1": "pink",
    "#6D4C41": "brown",
    "#F5E6C8": "cream",
    "#FAFAFA": "white",
    "#9E9E9E": "grey",
    "#212121": "black",
}
"""The colours of the demo model's world, with the words its captions use for them."""

_DIRECTIONS = {(-1, 0): "left", (1, 0): "right", (0, -1): "up", (0, 1): "down"}


@dataclass(frozen=True)
class Disc:
    """A soft disc: colour index, centre and radius (fractions of the height), velocity per second."""

    colour: int
    centre: tuple[float, float]
    radius: float
    velocity: tuple[float, float]


@dataclass(frozen=True)
class Scene:
    """One procedural shot; colours are indices into ``palette`` (hex strings)."""

    palette: tuple[str, ...]
    start: int
    end: int
    angle: float
    drift: float
    discs: tuple[Disc, ...]
    light: int
    light_centre: tuple[float, float]
    light_velocity: tuple[float, float]
    light_strength: float


def random_scene(
    rng: np.random.Generator, palette: Sequence[str] = tuple(COLOUR_NAMES), *, motion: float = 1.0
) -> Scene:
    """Draw a scene's colours, shapes and motion from ``rng``.

    Args:
        rng: a ``numpy.random.Generator``; the same state gives the same scene.
        palette: hex colours to draw from (at least two).
        motion: scales every velocity (0 gives a still).
    """
    if len(palette) < 2:
        raise ValueError(f"palette needs at least two colours, got {list(palette)!r}")
    start, end = (int(i) for i in rng.choice(len(palette), 2, replace=False))
    discs = tuple(
        Disc(
            colour=int(rng.integers(len(palette))),
            centre=(float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.2, 0.8))),
            radius=float(rng.uniform(0.2, 0.48)),
            velocity=tuple(float(v) for v in rng.uniform(-0.25, 0.25, 2) * motion),
        )
        for _ in range(int(rng.integers(1, 3)))
    )
    return Scene(
        palette=tuple(palette),
        start=start,
        end=end,
        angle=float(rng.uniform(0, 2 * np.pi)),
        drift=float(rng.uniform(-0.15, 0.15) * motion),
        discs=discs,
        light=int(rng.integers(len(palette))),
        light_centre=(float(rng.uniform(0, 1)), float(rng.uniform(0, 0.5))),
        light_velocity=tuple(float(v) for v in rng.uniform(-0.2, 0.2, 2) * motion),
        light_strength=float(rng.uniform(0.2, 0.45)),
    )


def _rgb(palette: Sequence[str]) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in palette], dtype=np.float32) / 255


def render_scene(scene: Scene, *, frames: int, width: int, height: int, fps: float = 16.0) -> np.ndarray:
    """The scene as ``(frames, height, width, 3)`` float32 RGB in [0, 1] at ``fps``.

    Positions are fractions of the frame height (horizontally offset to the frame centre), so
    the same scene composes the same way in landscape and portrait.
    """
    cols = _rgb(scene.palette)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u = (xx - width / 2) / height + 0.5 * width / height  # x in units of the height
    v = yy / height
    ca, sa = np.cos(scene.angle), np.sin(scene.angle)
    aspect = width / height
    out = np.empty((frames, height, width, 3), dtype=np.float32)
    for f in range(frames):
        t = f / fps
        g = ((u / aspect - 0.5) * ca + (v - 0.5) * sa) + 0.5 + scene.drift * t
        g = np.clip(g, 0, 1)[..., None]
        img = cols[scene.start] * (1 - g) + cols[scene.end] * g
        for d in scene.discs:
            cx = d.centre[0] * aspect + d.velocity[0] * t
            cy = d.centre[1] + d.velocity[1] * t
            r2 = (d.radius * 0.6) ** 2
            m = np.exp(-((((u - cx) ** 2 + (v - cy) ** 2) / (2 * r2)) ** 2))[..., None]
            img = img * (1 - m) + cols[d.colour] * m
        lx = scene.light_centre[0] * aspect + scene.light_velocity[0] * t
        ly = scene.light_centre[1] + scene.light_velocity[1] * t
        glow = scene.light_strength * np.exp(-((u - lx) ** 2 + (v - ly) ** 2) / (2 * 0.6**2))[..., None]
        out[f] = np.clip(img * (1 - glow) + cols[scene.light] * glow, 0, 1)
    return out


def _direction(velocity: tuple[float, float]) -> str:
    """The word for the larger component of a velocity: left, right, up or down."""
    vx, vy = velocity
    key = (int(np.sign(vx)), 0) if abs(vx) >= abs(vy) else (0, int(np.sign(vy)))
    return _DIRECTIONS.get(key, "")


def scene_direction(scene: Scene) -> str:
    """Where the scene's first moving disc drifts: ``"left"``, ``"right"``, ``"up"``, ``"down"``,
    or ``""`` when no disc moves noticeably (a still)."""
    moving = [d for d in scene.discs if max(abs(d.velocity[0]), abs(d.velocity[1])) > 0.05]
    return _direction(moving[0].velocity) if moving else ""


def scene_caption(scene: Scene, names: Mapping[str, str] = COLOUR_NAMES) -> str:
    """An English caption naming the scene's colours and its motion.

    ``names`` maps the palette's hex colours to words (the brand's swatch names for a brand).
    """
    name = [names.get(h, h) for h in scene.palette]
    shapes = " and ".join(name[d.colour] for d in scene.discs)
    direction = scene_direction(scene)
    motion = f" drifting {direction}" if direction else ""
    return (
        f"a soft gradient from {name[scene.start]} to {name[scene.end]}, "
        f"soft {shapes} shapes{motion}, a gentle {name[scene.light]} light"
    )
