"""End to end: profile -> template -> safety -> tiny Wan2.2 MoE -> post -> MP4, checked by decoding it.

One clip per demo profile is rendered once per test session (small: 1.5 s, 192 px wide),
then decoded and measured: codecs and layout as ffprobe reports them (via PyAV/libavformat),
loudness with ffmpeg's ebur128 filter, and pixels against the grade, logo, label and captions.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import PROFILES, decode_frames, ebur128, moov_before_mdat, probe, read_json

from brandstudio import BrandStudio, RenderRequest
from brandstudio.generation.base import GenerationSpec
from brandstudio.post.grade import Grade, read_lut
from brandstudio.post.reframe import Reframe
from brandstudio.post.upscale import Upscale

RES = 192  # delivered shorter side: 192 x 342 for 9:16 (rounded to even)
DURATION = 1.5


@pytest.fixture(scope="module")
def aurora(tmp_path_factory):
    studio = BrandStudio(PROFILES / "aurora-coffee", output_dir=tmp_path_factory.mktemp("renders"))
    result = studio.render(
        "product-hero", product="Night Roast", aspect="9:16", duration=DURATION, resolution=RES, seed=7
    )
    return studio, result


@pytest.fixture(scope="module")
def qinglan(tmp_path_factory):
    studio = BrandStudio(PROFILES / "qinglan-tea", output_dir=tmp_path_factory.mktemp("renders"))
    result = studio.render(
        "product-hero", product="明前龙井", aspect="1:1", duration=DURATION, resolution=RES, seed=3
    )
    return studio, result


def block_means(frames: np.ndarray, block: int = 8) -> np.ndarray:
    t, h, w, c = frames.shape
    h2, w2 = h // block * block, w // block * block
    f = frames[:, :h2, :w2].astype(np.float32).reshape(t, h2 // block, block, w2 // block, block, c)
    return f.mean(axis=(2, 4))


def test_mp4_is_h264_aac_at_profile_fps_and_aspect(aurora):
    _, r = aurora
    info = probe(r.path)
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"
    assert info["pix_fmt"] == "yuv420p"
    assert info["fps"] == pytest.approx(16)
    assert (info["width"], info["height"]) == (r.width, r.height)
    assert info["width"] / info["height"] == pytest.approx(9 / 16, abs=0.01)
    assert info["width"] == RES
    assert info["duration"] == pytest.approx(DURATION, abs=0.15)
    assert moov_before_mdat(r.path), "not faststart"
    assert "ai_generated" in info["metadata"].get("comment", "")


def test_loudness_within_1_lu_and_true_peak_held(aurora):
    studio, r = aurora
    m = ebur128(r.path)
    target = studio.profile.spec.audio.loudness
    assert abs(m["integrated"] - target) <= 1.0, m
    assert m["true_peak"] <= studio.profile.spec.audio.true_peak + 0.1, m


def test_frames_show_grade_logo_label_and_captions(aurora):
    studio, r = aurora
    decoded = decode_frames(r.path)
    assert decoded.shape[1:3] == (r.height, r.width)
    # the same seed regenerates the same raw footage
    spec_fields = {f.name for f in dataclasses.fields(GenerationSpec)}
    raw = studio.generator.generate(GenerationSpec(**{k: v for k, v in r.generation.items() if k in spec_fields}))
    lut = read_lut(studio.profile.path("colour.lut"))
    plain = Upscale(r.width, r.height).apply(Reframe(r.aspect).apply(raw))
    graded = Upscale(r.width, r.height).apply(
        Reframe(r.aspect).apply(Grade(lut, strength=studio.profile.spec.colour.strength).apply(raw))
    )
    n = min(len(decoded), len(graded))
    idx = ((np.arange(n) * 16) // r.fps).astype(int)
    d, g, p = block_means(decoded[:n]), block_means(graded[idx]), block_means(plain[idx])
    hb, wb = d.shape[1:3]
    centre = (slice(None), slice(int(hb * 0.3), int(hb * 0.6)), slice(int(wb * 0.2), int(wb * 0.8)))
    err_graded = np.abs(d[centre] - g[centre]).mean()
    err_plain = np.abs(d[centre] - p[centre]).mean()
    assert err_graded < 4.0, err_graded  # the frames are the graded footage (up to H.264 loss)
    assert err_plain > 2 * err_graded and err_plain > 4.0, (err_plain, err_graded)  # and the grade is visible
    # logo (top-right) and AI label (top-left) change their corners in every frame
    top = slice(0, int(hb * 0.2))
    for cols in (slice(int(wb * 0.6), wb), slice(0, int(wb * 0.45))):
        assert np.abs(d[:, top, cols] - g[:, top, cols]).mean() > 6.0
    # captions: pixels in the bottom band depart from the footage only while a cue is showing
    band = (slice(int(r.height * 0.6), int(r.height * 0.85)), slice(None))
    gi = graded[idx].astype(np.int16)
    first_cue_frame = int(np.ceil(0.3 * DURATION / 5.0 * r.fps))

    def text_fraction(i: int) -> float:
        diff = np.abs(decoded[i].astype(np.int16)[band] - gi[i][band]).max(axis=-1)
        return float((diff > 60).mean())

    quiet, shown = text_fraction(0), text_fraction(first_cue_frame + 2)
    assert quiet < 0.005 and shown > 0.02, (quiet, shown)


def test_sidecars_and_result_record(aurora):
    studio, r = aurora
    srt = r.subtitles.read_text(encoding="utf-8")
    assert "Night Roast" in srt and "-->" in srt and srt.lstrip().startswith("1")
    vtt = r.path.with_suffix(".vtt").read_text(encoding="utf-8")  # the same cues for web players
    assert vtt.startswith("WEBVTT") and "Night Roast" in vtt
    assert srt.count("-->") == vtt.count("-->") and srt.split("-->")[1].split(",")[0] in vtt
    record = read_json(r.path.with_suffix(".json"))
    assert record["profile_fingerprint"] == studio.profile.fingerprint
    assert record["seed"] == 7 and record["model_id"] == "tiny"
    assert "aurora film look" in r.prompt and "warm morning light" in r.prompt
    assert set(r.timings) >= {"prompt", "safety", "generation", "post", "music", "encode"}
    assert r.label and "AI" in r.label
    html = r._repr_html_()
    assert html.startswith("<figure") and "data:video/mp4;base64," in html


def test_same_request_same_clip(aurora, tmp_path):
    studio, r = aurora
    again = studio.render(
        RenderRequest(
            template="product-hero",
            variables={"product": "Night Roast"},
            aspect="9:16",
            duration=DURATION,
            resolution=RES,
            seed=7,
            output=tmp_path / "again.mp4",
        )
    )
    a, b = decode_frames(r.path), decode_frames(again.path)
    assert a.shape == b.shape and np.array_equal(a, b)


def test_chinese_profile_renders_chinese_captions(qinglan):
    studio, r = qinglan
    from PIL import ImageFont

    info = probe(r.path)
    assert (info["width"], info["height"]) == (RES, RES) and info["audio_codec"] == "aac"
    assert "明前龙井" in r.prompt and "青岚水墨风" in r.prompt
    assert r.label == "人工智能生成" or "AI生成" in r.label
    srt = r.subtitles.read_text(encoding="utf-8")
    assert "明前龙井" in srt and "一口清香" in srt
    # every character drawn has a real glyph, not the .notdef box
    font = ImageFont.truetype(str(studio.profile.path("captions.font")), 48)
    tofu = np.asarray(font.getmask("\ue000"))
    for ch in set(srt + r.label) - set("0123456789:,->\n \r"):
        mask = np.asarray(font.getmask(ch))
        assert mask.shape != tofu.shape or not np.array_equal(mask, tofu), f"{ch!r} renders as a box"
    m = ebur128(r.path)
    assert abs(m["integrated"] - studio.profile.spec.audio.loudness) <= 1.0, m


def test_profiles_look_and_sound_different(aurora, qinglan):
    a, q = decode_frames(aurora[1].path), decode_frames(qinglan[1].path)
    assert np.abs(a.reshape(-1, 3).mean(0) - q.reshape(-1, 3).mean(0)).max() > 5
    la, lq = ebur128(aurora[1].path), ebur128(qinglan[1].path)
    assert la["integrated"] != pytest.approx(lq["integrated"], abs=0.5)
