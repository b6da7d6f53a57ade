"""AI-content labels per region, checked on the decoded MP4: visible label pixels and metadata tags.

Clips are rendered from flat grey footage (the video model is swapped for a fixed picture), so
every pixel the label draws shows up as a difference against the same clip rendered with
``region = "none"``.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from fixed_generators import FlatGenerator
from helpers import PROFILES, decode_frames, probe

from brandstudio import BrandStudio, ProfileError
from brandstudio.post.label import CN_MIN_TEXT_HEIGHT, RegionLabel, label_plan
from brandstudio.post.marks import DIGITAL_SOURCE_TYPE, produce_id
from brandstudio.profile.loader import load_profile

AIGC_KEYS = {"Label", "ContentProducer", "ProduceID", "ReservedCode1", "ContentPropagator", "PropagateID"}


def copy_profile(root, base: str, name: str, region: str, extra: str = ""):
    dest = root / name
    shutil.copytree(PROFILES / base, dest)
    toml = dest / "brand.toml"
    text = toml.read_text(encoding="utf-8")
    for r in ("eu", "cn"):
        text = text.replace(f'region = "{r}"', f'region = "{region}"')
    toml.write_text(
        text.replace('[label]\nposition = "top-left"', '[label]\nposition = "top-left"\n' + extra),
        encoding="utf-8",
    )
    return dest


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """{name: (RenderResult, decoded frames)} for EU / none (aurora) and CN / none / CN show=clip (qinglan)."""
    root = tmp_path_factory.mktemp("labels")
    jobs = {
        "eu": ("aurora-coffee", "eu", "", {"product": "Night Roast"}, 1.0, 144),
        "eu-none": ("aurora-coffee", "none", "", {"product": "Night Roast"}, 1.0, 144),
        "cn": ("qinglan-tea", "cn", "", {"product": "龙井"}, 2.5, 288),
        "cn-none": ("qinglan-tea", "none", "", {"product": "龙井"}, 2.5, 288),
        "cn-clip": ("qinglan-tea", "cn", 'show = "clip"', {"product": "龙井"}, 2.5, 144),
    }
    out = {}
    for name, (base, region, extra, variables, duration, res) in jobs.items():
        studio = BrandStudio(
            copy_profile(root, base, name, region, extra), generator=FlatGenerator(), cache=False
        )
        r = studio.render("product-hero", aspect="16:9", duration=duration, resolution=res, seed=2,
                          output=root / f"{name}.mp4", **variables)  # fmt: skip
        out[name] = (r, decode_frames(r.path).astype(np.int16))
    return out


def label_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per frame, the pixels where the label changed the clip: (T, H, W) bool."""
    return np.abs(a - b).max(axis=-1) > 40


def comment(r) -> dict:
    return json.loads(probe(r.path)["metadata"]["comment"])


def test_eu_visible_notice_on_every_frame_and_machine_readable_marks(clips):
    (r, a), (_, b) = clips["eu"], clips["eu-none"]
    mask = label_mask(a, b)
    H, W = a.shape[1:3]
    per_frame = mask.sum(axis=(1, 2))
    assert (per_frame > 100).all(), per_frame  # every frame carries the notice
    ys, xs = np.nonzero(mask.any(axis=0))
    assert ys.max() < H * 0.35 and xs.max() < W * 0.6  # in the top-left corner (the [label] position)
    tags = probe(r.path)["metadata"]
    c = json.loads(tags["comment"])
    assert c["ai_generated"] is True and c["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert c["region"] == "eu" and c["label_shown"] == "clip" and c["label"] == "AI-generated content"
    assert "AIGC" not in tags


def test_cn_opening_label_two_seconds_tall_enough_then_gone(clips):
    (_, a), (_, b) = clips["cn"], clips["cn-none"]
    assert len(a) == 40  # 2.5 s at 16 fps
    mask = label_mask(a, b)
    per_frame = mask.sum(axis=(1, 2))
    assert (per_frame[:32] > 200).all(), per_frame  # the first 2 s (32 frames) carry it
    assert (per_frame[32:] == 0).all(), per_frame  # and then it is gone
    assert np.abs(a[32:] - b[32:]).mean() < 0.5
    # the text's ink (white on the dark box) is at least 5 % of the shorter side tall
    H, W = a.shape[1:3]
    corner = (slice(0, H // 3), slice(0, W // 2))
    ink = (a[5][corner].min(axis=-1) > 200) & (b[5][corner].min(axis=-1) < 180)
    rows = np.nonzero(ink.any(axis=1))[0]
    assert rows.max() - rows.min() + 1 >= CN_MIN_TEXT_HEIGHT * min(H, W), (rows.min(), rows.max())


def test_cn_implicit_label_aigc_metadata(clips):
    r, _ = clips["cn"]
    tags = probe(r.path)["metadata"]
    aigc = json.loads(tags["AIGC"])
    assert set(aigc) == AIGC_KEYS and aigc["Label"] == "1"
    assert aigc["ContentProducer"] == "杭州青岚茶业有限公司"  # [brand] client (no [label] producer set)
    assert aigc["ProduceID"].startswith("qinglan-tea-") and len(aigc["ProduceID"]) == len("qinglan-tea-") + 24
    assert aigc["ProduceID"] == json.loads(tags["comment"])["content_id"]
    assert (aigc["ReservedCode1"], aigc["ContentPropagator"], aigc["PropagateID"]) == ("", "", "")
    c = json.loads(tags["comment"])
    assert c["region"] == "cn" and c["label_shown"] == "opening" and c["ai_generated"] is True
    assert r.label == "人工智能生成"


def test_cn_show_clip_keeps_the_label_on_every_frame(clips):
    r, a = clips["cn-clip"]
    H, W = a.shape[1:3]
    corner = a[:, : H // 3, : W // 2]
    # the label's white text: near-white pixels in the corner of every frame, also after 2 s
    white = (corner.min(axis=-1) > 200).sum(axis=(1, 2))
    assert (white > 10).all(), white
    assert comment(r)["label_shown"] == "clip"


def test_none_shows_nothing_but_still_says_ai(clips):
    r, a = clips["eu-none"]
    H, W = a.shape[1:3]
    corner = a[:, : H // 3, : W // 3]
    assert corner.std(axis=(1, 2)).max() < 3.0  # flat grade, no label drawn
    assert r.label is None
    tags = probe(r.path)["metadata"]
    c = json.loads(tags["comment"])
    assert c["ai_generated"] is True and c["digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert c["region"] == "none" and c["label_shown"] == "none" and "AIGC" not in tags


# -- units --------------------------------------------------------------------------------


def test_plans_per_region():
    eu = label_plan(load_profile(PROFILES / "aurora-coffee").spec)
    cn = label_plan(load_profile(PROFILES / "qinglan-tea").spec)
    assert (eu.show, eu.min_text_height, eu.text) == ("clip", 0.0, "AI-generated content")
    assert (cn.show, cn.opening_seconds, cn.min_text_height) == ("opening", 2.0, 0.05)
    assert (
        cn.labelled_frames(80, 16) == 32
        and cn.labelled_frames(20, 16) == 20
        and eu.labelled_frames(80, 16) == 80
    )


def test_opening_shorter_than_two_seconds_is_refused(make_profile):
    prof = make_profile(
        "qinglan-tea",
        edit=lambda t: t.replace(
            '[label]\nposition = "top-left"', '[label]\nposition = "top-left"\nopening_seconds = 1.0'
        ),
    )
    with pytest.raises(ProfileError) as info:
        BrandStudio(prof)
    assert info.value.field == "label.opening_seconds"


def test_chunked_label_equals_whole_clip_and_ids_are_stable():
    prof = load_profile(PROFILES / "qinglan-tea")
    effect = RegionLabel(label_plan(prof.spec), prof.path("captions.font"), (0.05, 0.05, 0.05, 0.05), 16)
    frames = np.full((40, 72, 128, 3), 90, np.uint8)
    whole = effect.apply(frames)
    chunked = np.concatenate([effect.apply_at(frames[s : s + 8], s) for s in range(0, 40, 8)])
    assert np.array_equal(whole, chunked)
    assert not np.array_equal(whole[31], frames[31]) and np.array_equal(whole[32], frames[32])
    assert produce_id("p", "f" * 64, "prompt", 1) == produce_id("p", "f" * 64, "prompt", 1)
    assert produce_id("p", "f" * 64, "prompt", 1) != produce_id("p", "f" * 64, "prompt", 2)
