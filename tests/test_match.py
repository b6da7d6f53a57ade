"""Colour matching: drifting clips (brightness ramp + saturation decay) pulled back to a reference,
measured; the Lab conversion against colour-science; a reference still through the profile and a render."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import decode_frames
from PIL import Image

from brandstudio import BrandStudio, load_profile
from brandstudio.errors import AssetError, ProfileError
from brandstudio.frames import lab_to_srgb, srgb_to_lab
from brandstudio.post.grade import Grade, read_lut
from brandstudio.post.match import MATCHERS, MAX_GAIN, ColourMatch, colour_drift, load_reference
from brandstudio.post.upscale import Upscale


def scene(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A colourful still: hue gradients, a few patches, grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack(
        [0.5 + 0.4 * np.sin(x / 9), 0.5 + 0.35 * np.cos(y / 7), 0.45 + 0.3 * np.sin((x + y) / 13)], -1
    )
    img[10:24, 8:24] = (0.85, 0.35, 0.2)
    img[28:42, 36:56] = (0.2, 0.55, 0.75)
    return np.clip(img * 255 + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def drifting(t: int = 12, gain_end: float = 0.62, sat_end: float = 0.4) -> np.ndarray:
    """The still, darkening (gain 1 -> gain_end) and fading (saturation 1 -> sat_end) over t frames."""
    base = scene().astype(np.float32)
    frames = []
    for k in range(t):
        a = k / (t - 1)
        grey = base.mean(-1, keepdims=True)
        sat = 1 + (sat_end - 1) * a
        f = (grey + sat * (base - grey)) * (1 + (gain_end - 1) * a)
        frames.append(np.clip(np.rint(f), 0, 255).astype(np.uint8))
    return np.stack(frames)


def test_lab_conversion_matches_colour_science_and_round_trips():
    import colour

    px = np.random.default_rng(1).integers(0, 256, (5000, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(px / 255.0))
    assert np.abs(srgb_to_lab(px) - ref).max() < 0.05
    assert np.array_equal(lab_to_srgb(srgb_to_lab(px)), px)


@pytest.mark.parametrize("method", sorted(MATCHERS))
def test_drift_drops_by_a_large_factor(method):
    clip = drifting()
    before = colour_drift(clip)
    after = colour_drift(ColourMatch(method).apply(clip))
    assert before["l_range"] > 15 and before["chroma_range"] > 10 and before["delta_e_max"] > 10
    # per-channel histograms cannot restore a fade that mixes the channels: saturation comes back only in part
    # chroma keeps each frame's lightness: a frame left 40 % darker holds less of the colour in sRGB
    chroma_factor = {"histogram": 2.5, "chroma": 4}.get(method, 10)
    assert after["chroma_range"] < before["chroma_range"] / chroma_factor, (method, before, after)
    if method == "chroma":  # colour only, by design: the exposure drift stays
        assert after["l_range"] == pytest.approx(before["l_range"], abs=1.5), (before, after)
        return
    assert after["l_range"] < before["l_range"] / 8, (method, before, after)
    assert after["delta_e_max"] < before["delta_e_max"] / 5, (method, before, after)


def test_match_to_a_brand_still_and_strength():
    clip = drifting(t=4, gain_end=1.0, sat_end=1.0)  # steady, but not the brand's look
    still = np.clip(scene(seed=3).astype(np.float32) * (1.1, 0.9, 0.7) + 15, 0, 255).astype(np.uint8)
    before = colour_drift(clip, reference=still)["delta_e_mean"]
    full = ColourMatch("reinhard", reference=still).apply(clip)
    half = ColourMatch("reinhard", reference=still, strength=0.5).apply(clip)
    after = colour_drift(full, reference=still)["delta_e_mean"]
    assert before > 5 and after < before / 5
    assert after < colour_drift(half, reference=still)["delta_e_mean"] < before
    assert np.array_equal(ColourMatch("mkl", reference=still, strength=0).apply(clip), clip)


def test_mkl_undoes_a_cross_channel_cast():
    ref = scene()
    mix = np.array([[0.8, 0.2, 0.0], [0.1, 0.7, 0.2], [0.0, 0.3, 0.7]], np.float32)  # couples channels
    cast = np.clip(ref.astype(np.float32) @ mix.T, 0, 255).astype(np.uint8)[None]
    out = ColourMatch("mkl", reference=ref).apply(cast)[0].reshape(-1, 3).astype(float)
    target = np.cov(ref.reshape(-1, 3).astype(float), rowvar=False)
    cast_cov = np.cov(cast.reshape(-1, 3).astype(float), rowvar=False)
    assert np.abs(np.cov(out, rowvar=False) - target).max() < 0.1 * np.abs(cast_cov - target).max()
    assert np.abs(out.mean(0) - ref.reshape(-1, 3).mean(0)).max() < 1.5


@pytest.mark.parametrize("method", ["mkl", "reinhard"])
def test_a_flat_source_is_not_stretched_past_the_gain_limit(method):
    """From an almost flat shot the exact transfer would multiply its contrast tens of times; a LUT
    baked from that clips every other shot to one colour. Both transfers stop at MAX_GAIN."""
    rng = np.random.default_rng(3)
    flat = np.clip(0.3 + 0.01 * rng.standard_normal((32, 32, 3)), 0, 1)
    flat_u8 = (flat * 255).round().astype(np.uint8)
    matcher = MATCHERS[method]
    out = matcher.transfer(flat_u8, matcher.stats(flat_u8), matcher.stats((scene() * 255).astype(np.uint8)))
    spread_in = flat_u8.reshape(-1, 3).astype(float).std(axis=0).max()
    spread_out = out.reshape(-1, 3).astype(float).std(axis=0).max()
    assert 1.5 < spread_out / spread_in <= MAX_GAIN * 1.6  # stretched, within the limit (Lab axes mix channels)


def test_bad_arguments_and_reference_files(tmp_path):
    with pytest.raises(ValueError, match="reinhard"):
        ColourMatch("pca")
    with pytest.raises(ValueError, match="strength"):
        ColourMatch(strength=2)
    with pytest.raises(ValueError, match="reference"):
        ColourMatch(reference=np.zeros((4, 4), np.uint8))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(AssetError, match="not a readable image"):
        load_reference(tmp_path / "bad.png")
    with pytest.raises(AssetError, match="not found"):
        load_reference(tmp_path / "missing.png")


class Drifting:
    """A generator stand-in that hands back a drifting clip at the requested size."""

    model_id = "stub-drift"

    def generate(self, spec):
        clip = drifting(t=spec.num_frames)
        return np.stack([np.asarray(Image.fromarray(f).resize((spec.width, spec.height))) for f in clip])


def _still_png(seed: int = 0) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(scene(seed=seed)).save(buf, format="PNG")
    return buf.getvalue()


def test_profile_reference_is_hashed_and_the_render_holds_steady(make_profile, tmp_path):
    edit = lambda t: t.replace(  # noqa: E731
        'interpolation = "tetrahedral"',
        'interpolation = "tetrahedral"\nreference = "refs/still.png"\nmatch = "histogram"',
    )
    root = make_profile(edit=edit, files={"refs/still.png": _still_png()})
    prof = load_profile(root)
    assert prof.assets["colour.reference"].rel == "refs/still.png"
    fp = prof.fingerprint
    (root / "refs/still.png").write_bytes(_still_png(seed=5))  # another still: another fingerprint
    assert load_profile(root).fingerprint != fp
    (root / "refs/still.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(AssetError) as err:
        load_profile(root)
    assert err.value.field == "colour.reference"
    (root / "refs/still.png").write_bytes(_still_png())
    assert load_profile(root).fingerprint == fp

    studio = BrandStudio(root, output_dir=tmp_path, cache=False, generator=Drifting(),
                         overrides={"colour.match": "reinhard"})  # fmt: skip
    r = studio.render("product-hero", product="Night Roast", aspect="16:9", duration=0.75, resolution=96,
                      seed=2, output=tmp_path / "matched.mp4")  # fmt: skip
    region = (slice(None), slice(20, 60), slice(40, 130))  # clear of captions, logo and label
    delivered = decode_frames(r.path)
    # the same footage through the same grade and resize, without matching: the drift to beat
    g = r.generation
    source = Drifting().generate(SimpleNamespace(**g))[: len(delivered)]
    c = studio.profile.spec.colour
    graded = Grade(read_lut(studio.profile.path("colour.lut")), c.strength, c.interpolation).apply(source)
    unmatched = Upscale(r.width, r.height).apply(graded)
    before, after = colour_drift(unmatched[region]), colour_drift(delivered[region])
    assert before["l_range"] > 15 and before["chroma_range"] > 10
    assert after["l_range"] < before["l_range"] / 5, (before, after)
    assert after["chroma_range"] < before["chroma_range"] / 3, (before, after)
    # and every frame sits near the brand still's look, through the same grade
    graded_still = Grade(read_lut(studio.profile.path("colour.lut")), c.strength).apply(scene()[None])
    still = Upscale(r.width, r.height).apply(graded_still)[0]
    assert colour_drift(delivered[region], reference=still[region[1:]])["delta_e_max"] < 6


def test_bad_match_setting_is_a_profile_error(make_profile):
    root = make_profile(
        edit=lambda t: t.replace(
            'interpolation = "tetrahedral"', 'interpolation = "tetrahedral"\nmatch = "pca"'
        )
    )
    with pytest.raises(ProfileError) as err:
        load_profile(root)
    assert err.value.field == "colour.match"


def test_chroma_moves_the_colour_and_keeps_the_lightness():
    from brandstudio.frames import srgb_to_lab
    from brandstudio.post.match import MATCHERS

    rng = np.random.default_rng(3)
    frame = np.clip(rng.normal([90, 95, 100], 20, (48, 64, 3)), 0, 255).astype(np.uint8)  # dark, grey-blue
    ref = np.clip(rng.normal([200, 150, 90], 25, (48, 64, 3)), 0, 255).astype(np.uint8)  # bright, warm
    chroma = MATCHERS["chroma"]
    out = chroma.transfer(frame, chroma.stats(frame), chroma.stats(ref))
    before, after, want = (srgb_to_lab(x).reshape(-1, 3) for x in (frame, out, ref))
    assert np.abs(after[:, 0] - before[:, 0]).mean() < 1.5  # lightness kept (up to gamut clipping)
    assert np.abs(after[:, 1:].mean(0) - want[:, 1:].mean(0)).max() < 2.5  # the colour is the reference's
    assert np.abs(before[:, 1:].mean(0) - want[:, 1:].mean(0)).max() > 15
