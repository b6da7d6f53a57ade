"""Subject-aware reframing: saliency and face crops keep an off-centre subject that a centre crop cuts,
one steady window per shot, placed in the caption/logo safe area; and through a render, decoded."""

from __future__ import annotations

import numpy as np
import pytest
from fixed_generators import with_motion
from helpers import decode_frames
from PIL import Image

from brandstudio import BrandStudio
from brandstudio.post.grade import Grade, read_lut
from brandstudio.post.reframe import Reframe
from brandstudio.post.stream import PostChain
from brandstudio.post.subject import face_boxes, saliency_centre
from brandstudio.post.upscale import Upscale
from brandstudio.profile.schema import SafeArea

H, W = 144, 256  # a 16:9 generation


def background(t: int = 6, seed: int = 0) -> np.ndarray:
    """Dim, textured, noisy footage: gradients plus grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    base = np.stack([40 + 30 * x / W, 45 + 20 * y / H, 60 + 10 * np.sin(x / 9)], -1)
    return np.clip(base[None] + rng.normal(0, 6, (t, H, W, 3)), 0, 255).astype(np.uint8)


def with_bright_subject(cx: int = 214, cy: int = 60, r: int = 14, t: int = 6) -> np.ndarray:
    frames = background(t)
    y, x = np.mgrid[0:H, 0:W]
    frames[:, (x - cx) ** 2 + (y - cy) ** 2 <= r * r] = (250, 215, 120)
    return frames


def grace(height: int) -> np.ndarray:
    import matplotlib.cbook as cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        im = im.convert("RGB")
        return np.asarray(im.resize((round(im.width * height / im.height), height), Image.Resampling.LANCZOS))


def with_face(left: int = 166, t: int = 5) -> np.ndarray:
    frames = background(t)
    g = grace(H)  # full height, 123 px wide: her face sits near x = left + 55
    frames[:, :, left : left + g.shape[1]] = g[:, : W - left]
    return frames


def contains(win, box) -> bool:
    _, _, left, top, cw, ch = win
    x0, y0, x1, y1 = box
    return left <= x0 and x1 <= left + cw and top <= y0 and y1 <= top + ch


@pytest.mark.parametrize("aspect", ["9:16", "4:5", "1:1"])
def test_saliency_crop_keeps_an_off_centre_subject(aspect):
    frames = with_bright_subject()
    subject = (214 - 14, 60 - 14, 214 + 14, 60 + 14)
    (win,) = Reframe(aspect, mode="saliency").windows(frames)
    (centre,) = Reframe(aspect).windows(frames)
    assert contains(win, subject)
    if aspect != "4:5":  # a 4:5 crop of 16:9 is wide enough to hold it even when centred
        assert not contains(centre, subject)
    out = Reframe(aspect, mode="saliency").apply(frames)
    _, _, left, top, cw, ch = win
    assert out.shape == (6, ch, cw, 3)
    # the subject's colour is in the output: the brightest pixels are the subject's
    assert (out[0].astype(int) - (250, 215, 120)).__abs__().sum(-1).min() == 0


def test_face_crop_keeps_the_face_and_centre_cuts_it():
    frames = with_face()
    boxes = face_boxes(frames[0])
    assert boxes, "NudeNet finds Grace Hopper's face"
    x, y, w, h, _ = max(boxes, key=lambda b: b[4])
    face = (x, y, x + w, y + h)
    assert face[0] > 168  # off-centre: right of a centred 9:16 window (88..168)
    (win,) = Reframe("9:16", mode="face").windows(frames)
    (centre,) = Reframe("9:16").windows(frames)
    assert contains(win, face) and not contains(centre, face)
    # the face is found again in the cropped frames, and not in the centre crop
    assert face_boxes(Reframe("9:16", mode="face").apply(frames[:1])[0])
    assert not face_boxes(Reframe("9:16").apply(frames[:1])[0])


def test_one_steady_window_per_shot_despite_a_distracting_frame():
    frames = with_bright_subject(t=9)
    moved = with_bright_subject(cx=40, t=9)
    frames[4] = moved[4]  # one frame where the subject jumps left: the median ignores it
    (win,) = Reframe("9:16", mode="saliency").windows(frames)
    assert win[2] > 150
    out = Reframe("9:16", mode="saliency").apply(frames)
    assert np.array_equal(out[3], frames[3, :, win[2] : win[2] + win[4]])  # same window on every frame
    # a second shot (from frame 5) where the subject sits left gets its own window
    frames[5:] = moved[5:]
    first, second = Reframe("9:16", mode="saliency", shots=(5,)).windows(frames)
    assert (first[:2], second[:2]) == ((0, 5), (5, 9))
    assert first[2] > 150 and second[2] < 40


def test_subject_goes_to_the_safe_area_centre_and_the_window_stays_inside():
    frames = with_bright_subject(cx=150)
    safe = SafeArea(left=0.06, right=0.30, top=0.1, bottom=0.2)
    (plain,) = Reframe("9:16", mode="saliency").windows(frames)
    (shifted,) = Reframe("9:16", mode="saliency", safe_area=safe).windows(frames)
    cx = saliency_centre(frames[0])[0]
    assert abs(cx - (plain[2] + 0.5 * plain[4])) <= 2
    assert abs(cx - (shifted[2] + (0.06 + 0.70) / 2 * shifted[4])) <= 2  # safe-area centre: 38% across
    for edge_x in (3, W - 3):  # a subject at the very edge: the window is clamped inside the frame
        (win,) = Reframe("9:16", mode="saliency").windows(with_bright_subject(cx=edge_x, r=6))
        assert 0 <= win[2] and win[2] + win[4] <= W


def test_planned_reframe_streams_like_the_whole_clip():
    frames = with_bright_subject(t=7)
    whole = Reframe("1:1", mode="saliency").apply(frames)
    planned = Reframe("1:1", mode="saliency").planned(frames)
    chunks = [c for _, c in PostChain((planned,)).chunks(frames, chunk_size=3)]
    assert np.array_equal(np.concatenate(chunks), whole)
    with pytest.raises(ValueError, match="planned"):
        Reframe("1:1", mode="saliency").apply_at(frames[3:], 3)
    with pytest.raises(ValueError, match="mode"):
        Reframe("1:1", mode="faces")


class FaceFootage:
    """A generator stand-in: Grace Hopper right of centre in every 16:9 frame."""

    model_id = "stub-face"

    def generate(self, spec):
        assert (spec.width, spec.height) == (W, H), "source_aspect = 16:9 generates landscape for 9:16"
        return with_motion(with_face(t=spec.num_frames))


def test_render_9x16_from_one_16x9_generation_keeps_the_face(make_profile, tmp_path):
    root = make_profile(
        edit=lambda t: t.replace("crf = 20", 'crf = 20\nreframe = "face"\nsource_aspect = "16:9"'),
    )
    studio = BrandStudio(root, output_dir=tmp_path, cache=False, generator=FaceFootage())
    result = studio.render(
        "product-hero", product="Night Roast", aspect="9:16", duration=0.5, resolution=160, seed=1,
        output=tmp_path / "face.mp4",
    )  # fmt: skip
    delivered = decode_frames(result.path)
    assert delivered.shape[1:3] == (284, 160)
    # what the face window and the centre window of the graded source look like at the delivery size
    source = with_face(t=1)
    c = studio.profile.spec.colour
    graded = Grade(read_lut(studio.profile.path("colour.lut")), c.strength, c.interpolation).apply(source)
    (face_win,) = Reframe("9:16", mode="face").windows(source)
    (centre_win,) = Reframe("9:16").windows(source)

    def expected(win):
        _, _, left, top, cw, ch = win
        return Upscale(160, 284).apply(np.ascontiguousarray(graded[:, top : top + ch, left : left + cw]))[0]

    band = slice(70, 200)  # below the label and the logo, above the caption
    frame = delivered[len(delivered) // 2, band].astype(int)
    to_face = np.abs(frame - expected(face_win)[band]).mean()
    to_centre = np.abs(frame - expected(centre_win)[band]).mean()
    assert to_face < 6, f"the delivered frame is the face window of the footage ({to_face:.1f} levels off)"
    assert to_centre > 4 * to_face
    assert face_win[2] > centre_win[2] + 40  # the window moved right, onto the face (see the test above)


@pytest.mark.slow
def test_cli_render_with_reframe_and_match_options(tmp_path):
    import json

    from helpers import PROFILES, probe
    from typer.testing import CliRunner

    from brandstudio.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["render", str(PROFILES / "aurora-coffee"), "product-hero", "-v", "product=X",
                              "--reframe", "sideways"])  # fmt: skip
    assert bad.exit_code == 2 and "output.reframe" in bad.output and "Traceback" not in bad.output
    out = tmp_path / "clip.mp4"
    res = runner.invoke(app, ["render", str(PROFILES / "aurora-coffee"), "product-hero", "-v", "product=X",
                              "--aspect", "1:1", "--duration", "0.25", "--resolution", "64", "-o", str(out),
                              "--reframe", "saliency", "--match", "reinhard", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    plain = BrandStudio(PROFILES / "aurora-coffee").profile
    assert result["profile_fingerprint"] != plain.fingerprint  # the overrides are traced
    assert (probe(out)["width"], probe(out)["height"]) == (64, 64)
