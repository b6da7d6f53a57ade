"""Frame interpolation: exact timelines, motion-compensated in-between frames, the streamed chain,
and renders delivered at 25, 29.97 and 30 fps from a 16 fps model (probed and decoded)."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import cv2
import numpy as np
import pytest
from fixed_generators import PanGenerator
from helpers import PROFILES, decode_frames, probe

from brandstudio import BrandStudio
from brandstudio.errors import BrandStudioError
from brandstudio.post.interpolate import INTERPOLATORS, Retime, make_interpolator, mix, timeline
from brandstudio.post.reframe import Reframe
from brandstudio.post.stream import PostChain
from brandstudio.post.upscale import Upscale
from brandstudio.rates import frame_rate


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-9))


def moving_scene(n: int = 9, size=(96, 160), speed: float = 3.0, seed: int = 0) -> np.ndarray:
    """A textured background panning left and a textured square moving right over it."""
    rng = np.random.default_rng(seed)
    h, w = size
    texture = cv2.GaussianBlur(rng.integers(0, 256, (h, w * 3, 3)).astype(np.uint8), (0, 0), 2)
    square = cv2.GaussianBlur(rng.integers(0, 256, (24, 24, 3)).astype(np.uint8), (0, 0), 1.5)
    frames = []
    for i in range(n):
        x = int(round(i * speed))
        frame = texture[:, x : x + w].copy()
        sx = int(round(20 + i * 2 * speed))
        frame[36:60, sx : sx + 24] = square
        frames.append(frame)
    return np.stack(frames)


# -- timeline --------------------------------------------------------------------------------


def test_ntsc_timing_is_exact_over_a_long_clip():
    n_out = 30_000  # 16.7 minutes at 29.97
    t = timeline(10**6, 16, "30000/1001", n_out)
    i = np.arange(n_out)
    exact = [Fraction(int(k) * 16 * 1001, 30000) for k in (0, 1, 29_999)]
    assert t.left[[0, 1, 29_999]].tolist() == [int(x) for x in exact]
    assert np.allclose(t.alpha[[0, 1, 29_999]], [float(x - int(x)) for x in exact], atol=1e-6)
    # the float form of 29.97 is read as the same NTSC rate, not 2997/100
    assert np.array_equal(timeline(10**6, 16, 29.97, n_out).left, t.left)
    assert (t.left == (i * 16 * 1001) // 30000).all()


def test_same_rate_and_whole_multiples_need_no_in_between_frames():
    assert not timeline(33, 16, 16, 33).alpha.any()
    t = timeline(17, 16, 32, 33)
    assert t.alpha[1::2].tolist() == [0.5] * 16 and not t.alpha[0::2].any()


def test_slow_motion_makes_twice_the_in_between_moments():
    t = timeline(17, 16, 16, 32, slowmo=2)
    assert t.left.tolist()[:6] == [0, 0, 1, 1, 2, 2] and t.alpha.tolist()[:4] == [0.0, 0.5, 0.0, 0.5]


def test_nothing_is_mixed_across_a_cut_and_crossfades_mix_linearly():
    t = timeline(20, 16, 32, 40, cuts=[8], crossfades=[(12, 16)])
    before_cut = t.left == 7
    assert (t.alpha[before_cut] == 0).all()  # frame 7 held until the cut: nothing of shot 2 in it
    assert t.linear[(t.left >= 12) & (t.right <= 16)].all() and not t.linear[t.left < 12].any()


@pytest.mark.parametrize("bad", [0, -5, "abc", "1/0", 500])
def test_bad_frame_rates_are_named(bad):
    with pytest.raises(ValueError, match="frame rate"):
        frame_rate(bad)


# -- interpolators ---------------------------------------------------------------------------


def test_flow_remakes_a_dropped_frame_far_better_than_repeating_or_mixing():
    clip = moving_scene()
    kept, dropped = clip[0::2], clip[1::2]
    flow, repeat = make_interpolator("flow"), make_interpolator("repeat")
    scores = {"flow": [], "repeat": [], "mix": []}
    for k in range(len(dropped)):
        scores["flow"].append(psnr(flow.between(kept[k], kept[k + 1], [0.5])[0], dropped[k]))
        scores["repeat"].append(psnr(repeat.between(kept[k], kept[k + 1], [0.5])[0], dropped[k]))
        scores["mix"].append(psnr(mix(kept[k], kept[k + 1], [0.5])[0], dropped[k]))
    flow_db, repeat_db, mix_db = (float(np.mean(v)) for v in scores.values())
    assert flow_db > repeat_db + 6 and flow_db > mix_db + 4, scores


def test_flow_at_the_ends_of_the_interval_is_the_frames_themselves():
    clip = moving_scene(3)
    near = make_interpolator("flow").between(clip[0], clip[2], [1e-4, 1 - 1e-4])
    assert np.abs(near[0].astype(int) - clip[0]).mean() < 1.0
    assert np.abs(near[1].astype(int) - clip[2]).mean() < 1.0


def test_flow_handles_frames_too_small_for_optical_flow():
    a, b = np.zeros((8, 10, 3), np.uint8), np.full((8, 10, 3), 90, np.uint8)
    assert make_interpolator("flow").between(a, b, [0.5])[0].mean() == pytest.approx(45, abs=1)


def test_unknown_interpolator_lists_the_registered_ones():
    with pytest.raises(ValueError, match="repeat, flow, rife"):
        make_interpolator("optical")
    assert list(INTERPOLATORS) == ["repeat", "flow", "rife"]


# -- the streamed chain ----------------------------------------------------------------------


@pytest.mark.parametrize("chunk, workers", [(1, 1), (3, 1), (8, 1), (5, 2)])
def test_streamed_in_between_frames_equal_the_whole_clip(chunk, workers):
    src = moving_scene(9)
    retime = Retime(timeline(9, 16, 30, 16), make_interpolator("flow"))
    chain = PostChain((Reframe("1:1"), Upscale(64, 64)), retime=retime)
    whole = chain.apply(src)
    streamed = np.concatenate([f for _, f in chain.chunks(src, chunk_size=chunk, workers=workers)])
    lazy = chain.frames_at(src)
    assert whole.shape == (16, 64, 64, 3) and np.array_equal(whole, streamed)
    assert all(np.array_equal(lazy[i], whole[i]) for i in (0, 5, 15))
    # in-between frames are new pictures, not copies of a neighbour
    assert not np.array_equal(whole[1], whole[0]) and not np.array_equal(whole[1], whole[2])


def test_a_frame_map_and_a_retime_are_one_or_the_other():
    retime = Retime(timeline(9, 16, 30, 16), make_interpolator("flow"))
    with pytest.raises(ValueError, match="not both"):
        PostChain((), np.zeros(16, np.int64), (), retime)


# -- renders ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """The demo profile over footage that moves a known, steady amount every generated frame (the
    demo model's soft fields move too little to tell an in-between frame from a repeated one)."""
    return BrandStudio(PROFILES / "aurora-coffee", output_dir=tmp_path_factory.mktemp("renders"),
                       generator=PanGenerator(), cache=False)  # fmt: skip


def transitions(path) -> np.ndarray:
    """Mean absolute change of each decoded frame from the one before (8-bit levels)."""
    frames = decode_frames(path).astype(np.int16)
    return np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))


@pytest.mark.parametrize(
    "fps, rate", [(25, Fraction(25)), (29.97, Fraction(30000, 1001)), ("30", Fraction(30))]
)
def test_a_16_fps_generation_is_delivered_at_broadcast_rates(studio, fps, rate):
    result = studio.render("product-hero", product="Night Roast", aspect="16:9", duration=1.0, resolution=96,
                           seed=11, fps=fps, interpolation="flow")  # fmt: skip
    info = probe(result.path)
    assert Fraction(info["fps"]).limit_denominator(1001) == rate
    assert info["frames"] == round(1.0 * float(rate)) and result.fps == pytest.approx(float(rate))
    # every delivered frame is a new moment of the pan: no frame repeats its predecessor
    steps = transitions(result.path)
    assert steps.min() > 0.25 * np.median(steps), steps


def test_repeat_delivers_the_same_rate_by_repeating_frames(studio):
    result = studio.render("product-hero", product="Night Roast", aspect="16:9", duration=1.0, resolution=96,
                           seed=11, fps=30, interpolation="repeat")  # fmt: skip
    steps = transitions(result.path)
    # 16 moments spread over 30 frames: 14 frames repeat the one before
    assert (steps < 0.25 * np.median(steps)).sum() >= 10, steps


def test_slowmo_from_the_cli_and_a_bad_rate_is_a_clear_error(tmp_path):
    out = tmp_path / "slow.mp4"
    cmd = [sys.executable, "-m", "brandstudio.cli", "render", str(PROFILES / "aurora-coffee"), "product-hero",
           "--var", "product=Night Roast", "--aspect", "16:9", "--duration", "1", "--resolution", "96",
           "--seed", "11", "--fps", "29.97", "--slowmo", "2", "--interpolate", "flow", "-o", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    info = probe(out)
    assert Fraction(info["fps"]).limit_denominator(1001) == Fraction(30000, 1001) and info["frames"] == 30
    bad = subprocess.run(cmd[:-2] + ["--fps", "abc", "-o", str(tmp_path / "x.mp4")], capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert bad.returncode != 0 and "fps" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_slowmo_with_a_multi_shot_template_is_refused(studio):
    with pytest.raises(BrandStudioError, match="slowmo"):
        studio.render("brand-story", product="Night Roast", slowmo=2)


# -- rife through the profile ----------------------------------------------------------------


@pytest.fixture(scope="module")
def rife_weights(tmp_path_factory):
    import torch
    from safetensors.torch import save_file

    from brandstudio.post.rife import IFNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("rife") / "flownet.safetensors"
    save_file({k: v.contiguous() for k, v in IFNet().state_dict().items()}, str(path))
    return path


def test_rife_weights_named_by_the_profile_interpolate_a_render(make_profile, rife_weights, tmp_path):
    profile = make_profile(
        edit=lambda t: t.replace(
            "[output]\n",
            '[output]\ninterpolation = "rife"\ninterpolation_weights = "models/flownet.safetensors"\n',
            1,
        ),
        files={"models/flownet.safetensors": rife_weights.read_bytes()},
    )
    result = BrandStudio(profile, output_dir=tmp_path).render(
        "product-hero", product="Night Roast", aspect="16:9", duration=0.5, resolution=64, seed=11, fps=30
    )
    info = probe(result.path)
    assert info["fps"] == pytest.approx(30) and info["frames"] == 15


def test_broken_rife_weights_are_refused_when_the_profile_loads(make_profile):
    from brandstudio.profile import load_profile

    profile = make_profile(
        edit=lambda t: t.replace(
            "[output]\n",
            '[output]\ninterpolation = "rife"\ninterpolation_weights = "models/flownet.pkl"\n',
            1,
        ),
        files={"models/flownet.pkl": b"not a pickle at all"},
    )
    with pytest.raises(BrandStudioError, match="flownet.pkl") as err:
        load_profile(profile)
    assert err.value.field == "output.interpolation_weights"


def test_rife_asked_for_without_weights_is_refused_before_any_work(studio, monkeypatch):
    with pytest.raises(BrandStudioError, match="needs RIFE weights") as err:
        studio.render("product-hero", product="Night Roast", aspect="16:9", duration=0.5, resolution=64,
                      fps=30, interpolation="rife")  # fmt: skip
    assert err.value.field == "output.interpolation_weights"
