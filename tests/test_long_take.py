"""Long takes: one scene longer than one generation, chained from each segment's last frames,
joined with an overlap blend, each segment's colour pulled back to the first's.

The plan and the join are checked on exact arithmetic (a take cut into overlapping segments
joins back bit for bit); the chain on a generator that continues a pan from its start image
and drifts in brightness, as extended takes do; the render end to end on ``tiny-ti2v``.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from helpers import PROFILES, decode_frames

from brandstudio import BrandStudio
from brandstudio.errors import GenerationError, RequestError
from brandstudio.generation.base import GenerationSpec
from brandstudio.generation.conditioning import image_digest
from brandstudio.generation.long_take import join_segments, plan_take, render_take
from brandstudio.post.match import colour_drift
from brandstudio.post.take_match import TakeMatch

# -- the plan and the join ------------------------------------------------------------------------


@pytest.mark.parametrize("total", [81, 82, 200, 480, 1000])
def test_the_plan_covers_the_take_and_each_segment_adds_what_it_can(total):
    plan = plan_take(total, max_frames=81, overlap=8)
    assert plan.starts[0] == 0 and all(n % 4 == 1 and n <= 81 for n in plan.lengths)
    ends = [s + n for s, n in zip(plan.starts, plan.lengths, strict=True)]
    assert ends[-1] >= total and all(e < total for e in ends[:-1])
    # each later segment starts overlap + 1 frames before the take's end so far
    for prev_end, start in zip(ends, plan.starts[1:], strict=False):
        assert start == prev_end - 1 - 8
    assert plan.lengths[-1] - (total - plan.starts[-1]) < 4  # the last one no longer than it needs
    if total == 480:  # 30 s at 16 fps: seven generations of 81
        assert plan.segments == 7


def test_an_overlap_that_leaves_nothing_new_is_refused():
    with pytest.raises(RequestError) as info:
        plan_take(300, max_frames=17, overlap=14)
    assert info.value.field == "overlap" and "between 0 and 12" in info.value.fix


def _truth(total: int, h: int = 12, w: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (total, h, w, 3), dtype=np.uint8)


def test_segments_of_one_take_join_back_exactly():
    """Segments cut from one known take (each beginning on its start frame) join back to it bit
    for bit: the blend mixes equal frames, and nothing is dropped or repeated."""
    truth = _truth(150)
    plan = plan_take(150, max_frames=33, overlap=6)
    segments = [truth[s : s + n] if s + n <= 150 else np.concatenate([truth[s:], truth[-1:].repeat(s + n - 150, 0)])
                for s, n in zip(plan.starts, plan.lengths, strict=True)]  # fmt: skip
    assert np.array_equal(join_segments(segments, plan), truth)


def test_the_overlap_fades_from_the_old_segment_to_the_new():
    plan = plan_take(40, max_frames=33, overlap=4)
    old = np.full((33, 2, 2, 3), 0, np.uint8)
    new = np.full((plan.lengths[1], 2, 2, 3), 250, np.uint8)
    take = join_segments([old, new], plan)
    start = plan.starts[1]
    assert take[start, 0, 0, 0] == 0 and take[-1, 0, 0, 0] == 250
    ramp = take[start + 1 : start + 5, 0, 0, 0].tolist()
    assert ramp == [50, 100, 150, 200]  # 1/5 .. 4/5 of the way


# -- the chain ------------------------------------------------------------------------------------


class DriftingPan:
    """An image-conditioned toy: frame 0 re-creates the start image, every later frame pans it
    ``speed`` px and darkens it by ``drift`` per frame; without an image it draws a texture."""

    model_id = "drifting-pan"
    image_input = "optional"

    def __init__(self, speed: int = 2, drift: float = 0.006) -> None:
        self.speed, self.drift, self.calls, self.images = speed, drift, 0, []

    def generate(self, spec, image=None):
        self.calls += 1
        self.images.append(None if image is None else image.copy())
        if image is None:
            rng = np.random.default_rng(spec.seed)
            y, x = np.mgrid[0 : spec.height, 0 : spec.width]
            base = 120 + 60 * np.sin(x / 5.0)[..., None] * np.cos(y / 7.0)[..., None] + rng.normal(0, 3, (spec.height, spec.width, 3))
            image = np.clip(base, 0, 255).astype(np.uint8)
        frames = [np.roll(image, self.speed * i, axis=1).astype(np.float32) * (1 - self.drift) ** i for i in range(spec.num_frames)]
        return np.clip(np.rint(np.stack(frames)), 0, 255).astype(np.uint8)


def _spec(**kw) -> GenerationSpec:
    base = dict(prompt="a pan", negative_prompt="", seed=5, width=48, height=32, num_frames=33, steps=2,
                guidance_high=1.0, guidance_low=1.0, flow_shift=3.0)  # fmt: skip
    return GenerationSpec(**{**base, **kw})


def test_each_segment_starts_from_the_take_so_far_and_the_joins_do_not_jump():
    gen = DriftingPan()
    plan = plan_take(120, max_frames=33, overlap=6)
    take, records = render_take(plan, _spec(), image_input="optional", model_id=gen.model_id,
                                generate=lambda spec, image: (gen.generate(spec, image), "off", None))  # fmt: skip
    assert take.shape == (120, 32, 48, 3) and gen.calls == plan.segments == len(records)
    for i, (rec, image) in enumerate(zip(records, gen.images, strict=True)):
        if i == 0:
            assert image is None and rec["conditioning"] == "none"
            continue
        assert np.array_equal(image, take[plan.starts[i]])  # the take's own frame, as it is shown
        assert rec["condition_sha256"] == image_digest(image) and rec["seed"] == 5 + i
    # motion continues through every join: no step larger than the pan's own
    steps = np.abs(np.diff(take.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert steps.max() < 2.0 * np.median(steps)


def test_a_text_only_model_cannot_continue_a_take():
    plan = plan_take(120, max_frames=33, overlap=6)
    with pytest.raises(GenerationError) as info:
        render_take(plan, _spec(), image_input="none", model_id="tiny", generate=lambda s, i: None)
    assert "tiny" in str(info.value) and "TI2V" in info.value.fix


# -- the drift pulled back --------------------------------------------------------------------------


def test_take_match_pulls_each_segment_back_to_the_first_and_keeps_the_first_as_it_is():
    gen = DriftingPan(speed=1, drift=0.01)  # about 25 % darker per 33 frames: an exaggerated drift
    plan = plan_take(150, max_frames=33, overlap=6)
    take, _ = render_take(plan, _spec(), image_input="optional", model_id=gen.model_id,
                          generate=lambda spec, image: (gen.generate(spec, image), "off", None))  # fmt: skip
    fixed = TakeMatch.planned(take, plan.segment_starts).apply_at(take, 0)
    before, after = colour_drift(take), colour_drift(fixed)
    assert after["l_range"] < 0.4 * before["l_range"] and after["delta_e_max"] < 0.4 * before["delta_e_max"]
    first = plan.segment_starts[1]
    centre0 = (first - 1) / 2
    assert np.array_equal(fixed[: int(centre0) + 1], take[: int(centre0) + 1])  # the first segment's first half untouched
    # streamed in chunks it is the same as in one piece
    chunks = np.concatenate([TakeMatch.planned(take, plan.segment_starts).apply_at(take[a : a + 20], a) for a in range(0, 150, 20)])
    assert np.array_equal(chunks, fixed)
    # and it adds no step at the joins
    steps = np.abs(np.diff(colour_lightness(fixed)))
    assert steps.max() < 1.0


def colour_lightness(frames: np.ndarray) -> np.ndarray:
    from brandstudio.frames import srgb_to_lab

    return np.array([srgb_to_lab(f)[..., 0].mean() for f in frames])


# -- through the render -------------------------------------------------------------------------


def test_a_text_to_video_profile_refuses_a_take_longer_than_one_generation_before_any_work(tmp_path):
    studio = BrandStudio(PROFILES / "aurora-coffee", output_dir=tmp_path)
    with pytest.raises(RequestError) as info:
        studio.render("product-hero", product="Night Roast", duration=8.0, aspect="16:9")
    err = info.value
    assert err.field == "output.duration" and err.value == 8.0
    assert "needs 129 frames" in err.message and "text-to-video only" in err.message and "tiny-ti2v" in err.fix
    assert studio._generator is None  # refused before the model was even loaded
    assert not any(tmp_path.rglob("*.mp4"))


@pytest.fixture(scope="module")
def ti2v_take(tmp_path_factory):
    """tiny-ti2v at 128x64 with 17-frame generations (4 frames blended at each join): a 3 s take
    is four chained generations."""
    root = tmp_path_factory.mktemp("take") / "aurora-ti2v"
    shutil.copytree(PROFILES / "aurora-coffee", root)
    text = (root / "brand.toml").read_text(encoding="utf-8")
    text = text.replace('id = "tiny"', 'id = "tiny-ti2v"').replace("steps = 4", "steps = 2")
    text = text.replace("width = 256", "width = 128").replace("height = 144", "height = 64")
    text = text.replace("max_frames = 81", "max_frames = 17")
    text = re.sub(r"\[\[style\.loras\]\].*?(?=\n\[colour\])", "", text, flags=re.S)  # LoRAs are for tiny-wan2.2
    (root / "brand.toml").write_text(text, encoding="utf-8")
    studio = BrandStudio(root, output_dir=root.parent / "renders", cache=root.parent / "scenes")
    events = []
    result = studio.render("product-hero", product="Night Roast", duration=3.0, aspect="16:9", resolution=64, seed=3,
                           on_progress=events.append)  # fmt: skip
    return studio, result, events


def test_a_long_take_renders_on_tiny_ti2v_from_chained_generations(ti2v_take):
    studio, r, events = ti2v_take
    take = r.generation["take"]
    assert [s["conditioning"] for s in take["segments"]] == ["none"] + [f"take frame {s['start']}" for s in take["segments"][1:]]
    assert len(take["segments"]) == 4 and take["overlap"] == 4
    assert r.generation["num_frames"] == 48 and r.duration == pytest.approx(3.0)
    frames = decode_frames(r.path)
    assert len(frames) == round(3.0 * r.fps)
    # the denoising steps say which segment they belong to
    details = {e.detail.split(",")[0] for e in events if e.stage == "generation" and e.step}
    assert details == {f"segment {i}/4" for i in range(1, 5)}
    # the second render of the same take finds every segment in the scene cache
    again = studio.render("product-hero", product="Night Roast", duration=3.0, aspect="16:9", resolution=64, seed=3,
                          output=r.path.with_name("again.mp4"))  # fmt: skip
    assert again.cache == "hit" and {s["cache"] for s in again.generation["take"]["segments"]} == {"hit"}
    assert r.cache == "miss"
    keys = [s["cache_key"] for s in take["segments"]]
    assert len(set(keys)) == len(keys)
    # each segment's seed is its own: the same prompt, another noise
    assert [s["seed"] for s in take["segments"]] == [3 + i for i in range(4)]
