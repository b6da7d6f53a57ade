"""NSFW policy on the delivered frames: nudenet's real detector, through the render path, checked on the MP4.

Explicit images cannot ship with a test suite, so the policies are exercised with a real
photograph (matplotlib's ``grace_hopper.jpg``; nudenet finds ``FACE_FEMALE`` on it) and a
profile that counts ``FACE_FEMALE`` as NSFW via ``[safety] nsfw_labels``. The photo stands in
for the video model's output only; detection, policy, blur, encoding are the real ones.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from fixed_generators import PhotoGenerator
from helpers import PROFILES, decode_frames, read_json

from brandstudio import BrandStudio, ProfileError, SafetyViolation
from brandstudio.safety.frames import (
    DEFAULT_NSFW_CLASSES,
    Detection,
    FrameSafety,
    NsfwBlur,
    _load_detector,
    detect,
    sample_indices,
)

KW = {"product": "Night Roast", "aspect": "16:9", "duration": 1.0, "resolution": 144, "seed": 4}


def face_profile(make_profile, policy: str, name: str | None = None):
    return make_profile(
        "aurora-coffee",
        name=name or policy,
        edit=lambda t: t.replace('nsfw = "block"', f'nsfw = "{policy}"\nnsfw_labels = ["FACE_FEMALE"]'),
    )


def render(profile, tmp_path, name: str):
    studio = BrandStudio(profile, output_dir=tmp_path, generator=PhotoGenerator(), cache=False)
    return studio.render("product-hero", output=tmp_path / f"{name}.mp4", **KW)


@pytest.fixture(scope="module")
def warned_and_blurred(tmp_path_factory):
    """The same clip rendered under `warn` and under `blur` (FACE_FEMALE counted)."""
    import shutil

    base = tmp_path_factory.mktemp("fs")
    out = {}
    for policy in ("warn", "blur"):
        prof = base / policy
        shutil.copytree(PROFILES / "aurora-coffee", prof)
        toml = prof / "brand.toml"
        toml.write_text(
            toml.read_text(encoding="utf-8").replace(
                'nsfw = "block"', f'nsfw = "{policy}"\nnsfw_labels = ["FACE_FEMALE"]'
            ),
            encoding="utf-8",
        )
        out[policy] = render(prof, base, policy)
    return out


def test_block_writes_nothing_and_names_frames_times_and_classes(make_profile, tmp_path):
    prof = face_profile(make_profile, "block")
    gen = PhotoGenerator()
    studio = BrandStudio(prof, output_dir=tmp_path / "out", generator=gen, cache=False)
    target = tmp_path / "out" / "blocked.mp4"
    with pytest.raises(SafetyViolation) as info:
        studio.render("product-hero", output=target, **KW)
    err = info.value
    msg = str(err)
    assert gen.calls == 1  # it got as far as the frames: the block is the frame check's
    assert err.rule_id == "nsfw:FACE_FEMALE" and err.field == "safety.nsfw"
    assert "FACE_FEMALE" in msg and "frame 0 (0.00 s)" in msg and "frame 8 (0.50 s)" in msg
    assert re.search(r"score 0\.\d\d", msg) and "nsfw" in err.fix and "Nothing was written" in err.fix
    assert not target.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_blur_pixelates_the_detected_box_and_nothing_else(warned_and_blurred):
    warned, blurred = warned_and_blurred["warn"], warned_and_blurred["blur"]
    a, b = decode_frames(warned.path).astype(np.int16), decode_frames(blurred.path).astype(np.int16)
    assert a.shape == b.shape and len(a) == 16
    # the face box, found by the detector on the delivered (warn) clip
    faces = [d for d in detect([a[0].astype(np.uint8)])[0] if d.label == "FACE_FEMALE"]
    assert faces, "nudenet should find the face in the delivered frame"
    x, y, w, h = faces[0].box
    H, W = a.shape[1:3]
    inner = (slice(None), slice(y + h // 4, y + 3 * h // 4), slice(x + w // 4, x + 3 * w // 4))
    inside = np.abs(a[inner] - b[inner]).mean(axis=(1, 2, 3))
    assert (inside > 8).all(), inside  # every frame, sampled or between samples, is pixelated there
    # away from the padded box (15 % + a macroblock of H.264 context) the two clips agree
    m = 16
    outside = np.ones((H, W), bool)
    outside[max(0, y - h // 6 - m) : y + h + h // 6 + m, max(0, x - w // 6 - m) : x + w + w // 6 + m] = False
    assert np.abs(a - b)[:, outside].mean() < 1.0
    # the detector no longer finds the face in the delivered, blurred clip
    after = detect([f.astype(np.uint8) for f in b[::5]])
    assert not any(d.label == "FACE_FEMALE" and d.score >= 0.5 for dets in after for d in dets), after
    v = [s for s in blurred.safety if s["rule"] == "nsfw:FACE_FEMALE"]
    assert v and v[0]["action"] == "blur" and "frame 0 (0.00 s)" in v[0]["where"]
    assert blurred.qc["checks"]["safety"]["status"] == "warn"


def test_warn_records_the_verdict_and_delivers_the_frames(warned_and_blurred):
    r = warned_and_blurred["warn"]
    v = [s for s in r.safety if s["rule"] == "nsfw:FACE_FEMALE"]
    assert len(v) == 1 and v[0]["action"] == "warn"
    assert "frame 0 (0.00 s), frame 8 (0.50 s), frame 15 (0.94 s)" in v[0]["where"]
    qc = read_json(r.path.with_suffix(".qc.json"))
    assert any(s["rule"] == "nsfw:FACE_FEMALE" for s in qc["safety"])
    assert r.qc["checks"]["safety"]["status"] == "warn"
    record = read_json(r.path.with_suffix(".json"))
    assert record["safety"] == [dict(x) for x in r.safety]
    assert "frame_safety" in r.timings


def test_default_classes_let_the_photo_through(tmp_path):
    studio = BrandStudio(
        PROFILES / "aurora-coffee", output_dir=tmp_path, generator=PhotoGenerator(), cache=False
    )
    r = studio.render("product-hero", output=tmp_path / "ok.mp4", **KW)
    assert r.path.is_file() and not [s for s in r.safety if s["rule"].startswith("nsfw:")]


@pytest.mark.slow
def test_demo_footage_passes_with_the_default_classes(tmp_path):
    """The tiny model's real output (the demo path), default [safety]: no frame verdict, clip written."""
    studio = BrandStudio(PROFILES / "aurora-coffee", output_dir=tmp_path)
    r = studio.render(
        "product-hero", product="Night Roast", aspect="16:9", duration=0.25, resolution=144, seed=1
    )
    assert r.path.is_file() and r.timings["frame_safety"] > 0
    assert not [s for s in r.safety if s["rule"].startswith("nsfw:")]
    assert r.qc["checks"]["safety"]["status"] == "pass"


# -- units --------------------------------------------------------------------------------


def test_sampling_grid_and_detector_loaded_once():
    assert sample_indices(80, 16, 0.5) == [0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 79]
    assert sample_indices(5, 16, 0.5) == [0, 4] and sample_indices(1, 16) == [0]
    assert _load_detector() is _load_detector()
    assert set(DEFAULT_NSFW_CLASSES) >= {"FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_EXPOSED"}


def test_blur_boxes_cover_the_frames_between_samples():
    hits = {0: [Detection("X", 0.9, (10, 10, 20, 20))], 8: [], 15: [Detection("X", 0.9, (40, 10, 20, 20))]}
    blur = NsfwBlur.from_hits(hits, 16, 100, 50)
    assert set(blur.boxes) == set(range(16))  # 0 and 15 have boxes, 1-14 lie next to one
    assert len(blur.boxes[3]) == 1 and len(blur.boxes[12]) == 1 and len(blur.boxes[8]) == 2
    x0, y0, x1, y1 = blur.boxes[0][0]
    assert (x0, y0, x1, y1) == (7, 7, 33, 33)  # padded by 15 %
    frames = np.random.default_rng(0).integers(0, 255, (16, 50, 100, 3), dtype=np.uint8)
    out = blur.apply(frames)
    assert (out[3, :, 70:] == frames[3, :, 70:]).all() and not (
        out[3, 7:33, 7:33] == frames[3, 7:33, 7:33]
    ).all()
    assert np.array_equal(blur.apply_at(frames[8:12], 8), out[8:12])  # chunked = whole clip


def test_bad_settings_are_clear_errors(make_profile):
    with pytest.raises(ValueError, match="unknown detector classes"):
        FrameSafety(extra_classes=("NAKED",))
    prof = make_profile(
        "aurora-coffee", edit=lambda t: t.replace('nsfw = "block"', 'nsfw = "block"\nnsfw_labels = ["NAKED"]')
    )
    with pytest.raises(ProfileError) as info:
        BrandStudio(prof)
    assert info.value.field == "safety.nsfw_labels" and "FACE_FEMALE" in str(info.value)
    prof = make_profile(
        "aurora-coffee", name="t", edit=lambda t: t.replace('nsfw = "block"', "nsfw_threshold = 1.5")
    )
    with pytest.raises(ProfileError) as info:
        BrandStudio(prof)
    assert info.value.field == "safety.nsfw_threshold"


def test_off_skips_the_detector(make_profile, tmp_path):
    prof = make_profile(
        "aurora-coffee",
        edit=lambda t: t.replace('nsfw = "block"', 'nsfw = "off"\nnsfw_labels = ["FACE_FEMALE"]'),
    )
    r = BrandStudio(prof, output_dir=tmp_path, generator=PhotoGenerator(), cache=False).render(
        "product-hero", **KW
    )
    assert r.path.is_file() and not [s for s in r.safety if s["rule"].startswith("nsfw:")]
    assert json.loads(r.to_json())["safety"] == []
