"""Fixtures for the generation tests: a private BRANDSTUDIO_HOME and one shared tiny generator."""

from __future__ import annotations

import pytest

from brandstudio.generation.base import GenerationSpec


@pytest.fixture(scope="session", autouse=True)
def brandstudio_home(tmp_path_factory):
    """Build the tiny model into a temporary home, never into the user's cache."""
    home = tmp_path_factory.mktemp("brandstudio-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("BRANDSTUDIO_HOME", str(home))
    mp.setenv("HF_HUB_OFFLINE", "1")  # nothing may download in tests
    yield home
    mp.undo()


@pytest.fixture(scope="session")
def tiny_gen(brandstudio_home):
    """One tiny WanGenerator without LoRAs, loaded once for the session."""
    from brandstudio.generation.wan import WanGenerator

    return WanGenerator("tiny", device="cpu")


@pytest.fixture
def spec() -> GenerationSpec:
    """Small and fast. Shift 3 with 2 steps puts step 1 on the high-noise expert and step 2 on
    the low-noise one (sigmas 1.0 and 0.75 < 0.875), so both experts run."""
    return GenerationSpec(
        prompt="a cup of coffee at dawn, 清晨的咖啡",
        negative_prompt="blurry, low quality",
        seed=1234,
        width=64,
        height=48,
        num_frames=5,
        steps=2,
        guidance_high=4.0,
        guidance_low=3.0,
        flow_shift=3.0,
    )
