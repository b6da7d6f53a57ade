"""Procedural footage: seeded scenes, smooth in space, moving in time, captioned with their colours."""

from __future__ import annotations

import numpy as np
import pytest

from brandstudio.generation.procedural import COLOUR_NAMES, random_scene, render_scene, scene_caption


def test_procedural_scenes_are_seeded_smooth_and_captioned():
    a = render_scene(random_scene(np.random.default_rng(5)), frames=9, width=96, height=48)
    b = render_scene(random_scene(np.random.default_rng(5)), frames=9, width=96, height=48)
    assert a.shape == (9, 48, 96, 3) and a.dtype == np.float32 and np.array_equal(a, b)
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert np.abs(np.diff(a, axis=2)).mean() < 0.02  # smooth in space
    assert np.abs(a[-1] - a[0]).mean() > 0.005  # and it moves
    still = random_scene(np.random.default_rng(5), ["#112233", "#AABBCC"], motion=0.0)
    frames = render_scene(still, frames=3, width=32, height=32)
    assert np.array_equal(frames[0], frames[2])
    caption = scene_caption(still, {"#112233": "navy", "#AABBCC": "mist"})
    assert "navy" in caption and "mist" in caption and "drifting" not in caption
    with pytest.raises(ValueError, match="at least two colours"):
        random_scene(np.random.default_rng(0), ["#000000"])
    assert any(
        name in scene_caption(random_scene(np.random.default_rng(1))) for name in COLOUR_NAMES.values()
    )
