"""The generation package's front door (brandstudio.generation) with a stand-in generator: the
spec of a clip, the checks before any work, the clip record, and a multi-shot cut."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from helpers import PROFILES

from brandstudio import generation, load_profile
from brandstudio.errors import RequestError, TemplateError
from brandstudio.prompts.shots import PlannedShot, ShotPlan
from brandstudio.registry import MEMORY_PLANS, SPEED_PRESETS


class Counting:
    """Frame ``i`` of every clip has the value ``i``; no ``cache_identity``, so never cached."""

    model_id = "counting"
    model_family = "counting"

    def __init__(self) -> None:
        self.seen = []

    def generate(self, spec):
        self.seen.append(spec)
        ramp = np.arange(spec.num_frames, dtype=np.uint8)[:, None, None, None]
        return np.broadcast_to(ramp, (spec.num_frames, spec.height, spec.width, 3)).copy()


@pytest.fixture(scope="module")
def profile():
    return load_profile(PROFILES / "aurora-coffee")


def brief(**fields):
    base = dict(preset=None, memory=None, aspect="16:9", duration=2.0, shots=None, template="t",
                template_path="t.toml")  # fmt: skip
    fields = {**base, **fields}
    return SimpleNamespace(**fields, generated_duration=fields["duration"])  # no slow motion


def test_the_registries_name_the_presets_and_plans():
    assert list(SPEED_PRESETS) == ["quality", "balanced", "fast"]
    assert list(MEMORY_PLANS) == ["auto", "resident", "swap", "group-offload"]


def test_check_refuses_before_any_work(profile):
    generation.check(brief(), profile)
    with pytest.raises(RequestError, match="unknown speed preset 'turbo'") as e:
        generation.check(brief(preset="turbo"), profile)
    assert e.value.profile == "aurora-coffee" and "quality" in e.value.fix
    with pytest.raises(RequestError, match=r"\[model.fast\]"):
        generation.check(brief(preset="fast"), profile)
    with pytest.raises(RequestError, match="unknown memory plan") as e:
        generation.check(brief(memory="everything"), profile)
    assert "group-offload" in e.value.fix
    with pytest.raises(RequestError, match="needs 97 frames") as e:
        generation.check(brief(duration=6.0), profile)
    assert e.value.field == "output.duration"
    long_shot = ShotPlan((PlannedShot(0, "a", "", 1, None, 0.0, 90, 0, False),), fps=16)
    with pytest.raises(TemplateError, match="shot 0 of template 't' needs 93 frames"):
        generation.check(brief(shots=long_shot), profile)


def test_clip_spec_and_record(profile):
    gen = Counting()
    spec = generation.clip_spec(profile, gen, prompt="p", negative="n", seed=3, aspect="9:16", duration=0.5)
    assert (spec.width, spec.height, spec.num_frames) == (144, 256, 9)  # portrait; 8 frames -> 4k + 1
    clip = generation.generate_clip(gen, spec, profile=profile, cache=None)
    assert (clip.cache, clip.cache_key, clip.warnings, clip.shot_starts) == ("off", None, (), ())
    assert clip.frames.shape == (9, 256, 144, 3)
    assert clip.record["num_frames"] == 9 and clip.record["preset"] == "quality"
    assert clip.record["runtime"] is None  # a generator without a runtime records none


def test_generate_shots_cuts_at_the_model_fps(profile):
    gen = Counting()
    plan = ShotPlan((PlannedShot(0, "a", "", 1, None, 0.0, 8, 0, False),
                     PlannedShot(1, "b", "", 2, None, 0.375, 8, 2, True)), fps=16)  # fmt: skip
    clip = generation.generate_shots(gen, plan, profile=profile, template="t", template_path="t.toml",
                                     aspect="16:9", cache=None)  # fmt: skip
    assert clip.frames.shape[0] == plan.frames == 14 and clip.shot_starts == (0, 6)
    assert [s.num_frames for s in gen.seen] == [9, 9]
    assert clip.record["frames"] == 14 and [s["conditioning"] for s in clip.record["shots"]] == [
        "none",
        "none: model has no image input",
    ]
    assert clip.cache == "off" and "has no image input" in clip.warnings[0]
