"""The brand QC report: palette ΔE2000, flicker, footage, loudness, safety -> pass / warn / fail, JSON + HTML.

Synthetic clips whose answer is known (brand swatches, off-brand magenta/green, still frames,
strobing black/white, black / one-colour / frozen footage under a logo), MP4s written with ``write_mp4`` and read back with moviepy, the CLI,
and one small render through BrandStudio.
"""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
from helpers import PROFILES, read_json
from typer.testing import CliRunner

from brandstudio import BrandStudio, ProfileError, load_profile
from brandstudio.audio.music import fit_music, integrated_loudness
from brandstudio.cli import app
from brandstudio.encode import write_mp4
from brandstudio.errors import QCError
from brandstudio.media import ffmpeg_exe
from brandstudio.qc import (
    QCReport,
    check_file,
    dominant_colours,
    flicker,
    footage_stats,
    palette_delta_e,
    refuse_unusable,
    report,
)

runner = CliRunner()
SR = 48000
AURORA_PALETTE = ["#3B2A20", "#8C5A3C", "#C8A27A", "#F2E6D8", "#1F4E5F"]
OFF_BRAND = ["#FF00FF", "#00FF00"]


@pytest.fixture(scope="module")
def aurora():
    return load_profile(PROFILES / "aurora-coffee")


def stripes(
    colours, t: int = 16, h: int = 160, w: int = 90, moving: bool = False, speed: int = 2
) -> np.ndarray:
    """Horizontal bands of ``colours`` (hex), optionally scrolling down ``speed`` px a frame."""
    rgb = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colours], np.uint8)
    band = np.arange(h) * len(rgb) // h
    out = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        out[i] = rgb[np.roll(band, speed * i if moving else 0)][:, None, :]
    return out


def with_logo(frames: np.ndarray) -> np.ndarray:
    """``frames`` with a bright "logo" and a "caption" that changes halfway, as a render draws them."""
    out = frames.copy()
    t, h, w, _ = out.shape
    out[:, : h // 8, -w // 3 :] = (242, 230, 216)
    out[: t // 2, -h // 10 :, w // 4 : -w // 4] = 255
    out[t // 2 :, -h // 10 :, w // 3 : -w // 3] = 255
    return out


def music(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(len(t))
    track = np.stack([tone, tone], axis=1).astype(np.float32)
    return fit_music(track, SR, seconds, loudness=-14.0, true_peak=-1.0, fade_in=0.05, fade_out=0.1)


# -- measurements ------------------------------------------------------------------------


def test_dominant_colours_are_the_swatches_with_their_shares():
    frame = stripes(AURORA_PALETTE[:2], t=1, h=100, w=40)[0]
    colours, weights = dominant_colours(frame, 5)
    assert sorted(map(tuple, colours.tolist())) == [(59, 42, 32), (140, 90, 60)]
    assert weights.sum() == pytest.approx(1) and weights == pytest.approx([0.5, 0.5], abs=0.02)
    octree, _ = dominant_colours(frame, 5, method="fast-octree")
    assert len(octree) == 2
    with pytest.raises(ValueError, match="method"):
        dominant_colours(frame, 5, method="kmeans")


def test_palette_delta_e_is_zero_on_brand_and_large_off_brand():
    on = palette_delta_e(stripes(AURORA_PALETTE, t=3), AURORA_PALETTE, 5)
    off = palette_delta_e(stripes(OFF_BRAND, t=3), AURORA_PALETTE, 5)
    assert on.shape == (3,) and on.max() < 1.0
    assert off.min() > 30


def test_flicker_still_and_strobing():
    still = stripes(AURORA_PALETTE, t=8)
    assert flicker(still).tolist() == [0.0] * 7
    strobe = np.zeros((6, 32, 32, 3), np.uint8)
    strobe[1::2] = 255
    assert flicker(strobe) == pytest.approx([255.0] * 5)
    assert flicker(still[:1]).shape == (0,)


# -- verdicts ----------------------------------------------------------------------------


def test_brand_swatches_pass(aurora):
    r = report(stripes(AURORA_PALETTE, moving=True), aurora, fps=16)
    assert r.check("palette").status == "pass" and r.check("palette").value < 1.0
    assert r.check("flicker").status == "pass"
    assert r.check("frames").status == "pass"
    assert r.status == "pass" and r.score == "4/4"  # palette, flicker, frames, aspect; no audio, no verdicts
    assert r.check("loudness").status == "skip" and r.check("safety").status == "skip"
    assert r.profile_fingerprint == aurora.fingerprint and r.frames == 16
    assert r.thresholds["delta_e_warn"] == aurora.spec.colour.delta_e_tolerance == 14.0


def test_off_brand_colours_fail(aurora):
    r = report(stripes(OFF_BRAND, t=32, moving=True, speed=3), aurora, fps=16)
    c = r.check("palette")
    assert c.status == "fail" and c.value > aurora.spec.qc.delta_e_fail
    assert r.status == "fail" and r.score == "3/4"


def test_static_clip_has_no_flicker_and_strobing_fails(aurora):
    still = report(stripes(AURORA_PALETTE), aurora)
    assert still.check("flicker").value == 0.0 and still.check("flicker").status == "pass"
    assert still.check("frames").status == "fail" and "frozen" in still.check("frames").explanation
    strobe = np.zeros((12, 160, 90, 3), np.uint8)
    strobe[1::2] = 255
    r = report(strobe, aurora)
    assert r.check("flicker").status == "fail" and r.check("flicker").value == pytest.approx(255)
    assert len(r.flicker) == 11


def test_score_counts_safety_and_loudness(aurora):
    frames = stripes(AURORA_PALETTE, t=32, moving=True)
    warn = {"rule": "superlatives", "action": "warn", "matched": "best coffee in the world",
            "where": "prompt", "message": "legal review"}  # fmt: skip
    r = report(frames, aurora, fps=16, audio=music(2.0), sample_rate=SR, safety=[warn])
    assert r.check("loudness").status == "pass" and r.loudness == pytest.approx(-14, abs=0.3)
    assert r.check("true_peak").status == "pass"
    assert r.check("safety").status == "warn" and "superlatives" in r.check("safety").explanation
    assert (r.status, r.passed, r.tested, r.score) == ("warn", 6, 7, "6/7")
    quiet = report(frames, aurora, fps=16, audio=music(2.0) * 0.25, sample_rate=SR, safety=[])
    assert quiet.check("loudness").status == "fail"  # -26 LUFS is 12 LU under the target
    assert quiet.check("safety").status == "pass" and quiet.score == "6/7"
    silent = report(frames, aurora, audio=np.zeros((SR, 2)), sample_rate=SR)
    assert silent.check("loudness").status == "fail" and "silent" in silent.check("loudness").explanation
    assert silent.loudness is None and "Infinity" not in silent.to_json()
    silent.to_html()


def test_thresholds_come_from_the_qc_section(make_profile):
    strict = load_profile(
        make_profile(
            edit=lambda t: t + "\n[qc]\ndelta_e_warn = 0.01\ndelta_e_fail = 50\nflicker_warn = 0.5\n"
        )
    )
    r = report(stripes(AURORA_PALETTE, moving=True), strict)
    assert r.check("palette").status == "warn" and r.check("flicker").status == "warn"
    assert r.thresholds["delta_e_warn"] == 0.01 and r.status == "warn"
    with pytest.raises(ProfileError, match="flicker_warn") as exc:
        load_profile(make_profile(edit=lambda t: t + "\n[qc]\nflicker_warn = 40\n", name="bad"))
    assert exc.value.field.startswith("qc")


def test_bad_input_is_a_clear_error(aurora):
    with pytest.raises(QCError, match="uint8"):
        report(np.zeros((2, 8, 8, 3), np.float32), aurora)
    with pytest.raises(QCError, match="sample_rate"):
        report(stripes(AURORA_PALETTE, t=2), aurora, audio=music(1.0))


# -- footage: black, blank, frozen -------------------------------------------------------


def test_black_blank_and_frozen_footage_fail_the_frames_check_through_a_logo_and_captions(aurora):
    rng = np.random.default_rng(1)
    footage = rng.integers(30, 220, (24, 160, 90, 3), dtype=np.uint8)  # noise-like, like the tiny model's
    cases = {
        "black": np.zeros_like(footage),
        "blank": np.broadcast_to(np.array([31, 78, 95], np.uint8), footage.shape),  # one brand colour
        "frozen": np.repeat(footage[:1], len(footage), axis=0),
    }
    for reason, frames in cases.items():
        r = report(with_logo(frames), aurora, fps=16)
        c = r.check("frames")
        assert c.status == "fail" and reason in [p.split(":")[0] for p in c.explanation.split("; ")], c
        assert r.status == "fail"
    # black footage is also one colour and frozen: every reason is named
    black = report(with_logo(cases["black"]), aurora).check("frames")
    assert [p.split(":")[0] for p in black.explanation.split("; ")] == ["black", "blank", "frozen"]
    assert black.value == 3
    # footage that moves passes, with the same logo and captions
    moving = report(with_logo(footage), aurora, fps=16)
    assert moving.check("frames").status == "pass" and moving.footage["motion"] > 10
    # a frame-rate change that repeats frames is not "frozen"
    assert footage_stats(np.repeat(footage, 2, axis=0))["motion"] > 10


def test_frames_check_is_in_the_json_and_html_and_a_failure_is_not_delivered(aurora, tmp_path):
    r = report(with_logo(np.zeros((8, 160, 90, 3), np.uint8)), aurora, fps=16, clip=tmp_path / "x.mp4")
    data = json.loads(r.to_json())
    frames = [c for c in data["checks"] if c["name"] == "frames"][0]
    assert frames["status"] == "fail" and "black" in frames["explanation"]
    assert (
        set(data["footage"]) == {"luma", "spread", "motion"} and data["thresholds"]["frames_black_luma"] == 16
    )
    assert QCReport.from_json(r.to_json()) == r
    page = r.to_html()
    assert ">frames<" in page and "black: median luma" in page
    # the studio's refusal: the clip and captions are removed, the report stays, the error names the check
    clip, srt = tmp_path / "x.mp4", tmp_path / "x.srt"
    clip.write_bytes(b"mp4"), srt.write_text("1\n")
    with pytest.raises(QCError, match=r"QC frames check failed, so the clip was not delivered: black") as exc:
        refuse_unusable(r, (clip, srt))
    assert not clip.exists() and not srt.exists()
    assert exc.value.field == "qc.frames" and "profile validate" in exc.value.fix
    ok = report(with_logo(np.random.default_rng(0).integers(0, 255, (8, 160, 90, 3), dtype=np.uint8)), aurora)
    clip.write_bytes(b"mp4")
    refuse_unusable(ok, (clip,))
    assert clip.exists()


# -- the report --------------------------------------------------------------------------


def test_html_is_self_contained_with_thumbnails_plots_and_fingerprint(aurora):
    r = report(stripes(AURORA_PALETTE, t=40, moving=True), aurora, fps=16, model="tiny", seed=7,
               timings={"generation": 1.5}, audio=music(2.5), sample_rate=SR)  # fmt: skip
    page = r.to_html()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert len(re.findall(r"data:image/jpeg;base64,[A-Za-z0-9+/]{100,}", page)) == 6
    assert len(re.findall(r"data:image/png;base64,[A-Za-z0-9+/]{100,}", page)) == 3  # ΔE, flicker, swatches
    assert aurora.fingerprint in page and "tiny" in page and "generation 1.50 s" in page
    assert not re.search(r"(src|href)=['\"]https?:", page)  # nothing fetched from elsewhere


def test_json_round_trips(aurora):
    r = report(stripes(AURORA_PALETTE, t=20, moving=True), aurora, fps=16, seed=3,
               audio=music(1.5), sample_rate=SR, safety=[])  # fmt: skip
    text = r.to_json()
    data = json.loads(text)
    assert data["status"] == "pass" and data["profile_fingerprint"] == aurora.fingerprint
    assert "thumbnails" not in data and len(data["delta_e"]) == 16 and len(data["flicker"]) == 19
    back = QCReport.from_json(text)
    assert back == r and back.to_json() == text
    assert back.check("palette") == r.check("palette")


# -- files and the CLI -------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("qc")
    on, off = stripes(AURORA_PALETTE, t=32, moving=True), stripes(OFF_BRAND, t=32)
    bed = music(2.0)
    meta = {"comment": json.dumps({"model": "tiny", "seed": 5})}
    write_mp4(on, 16, d / "on.mp4", audio=bed, sample_rate=SR, metadata=meta)
    write_mp4(off, 16, d / "off.mp4")
    (d / "notes.mp4").write_text("not a video\n")
    return d, on, bed


def test_qc_file_reads_with_moviepy_like_the_raw_frames(clips, aurora):
    d, frames, bed = clips
    raw = report(frames, aurora, fps=16, audio=bed, sample_rate=SR)
    got = check_file(d / "on.mp4", aurora)
    assert got.frames == 32 and (got.width, got.height) == (90, 160) and got.fps == pytest.approx(16)
    assert got.check("palette").value == pytest.approx(raw.check("palette").value, abs=2.0)
    assert got.check("flicker").value == pytest.approx(raw.check("flicker").value, abs=1.0)
    assert got.loudness == pytest.approx(integrated_loudness(bed, SR), abs=0.5)
    assert got.status == "pass" and (got.model, got.seed) == ("tiny", 5)
    assert got.clip == str(d / "on.mp4") and got.check("safety").status == "skip"
    silent = check_file(d / "off.mp4", aurora)
    assert silent.check("loudness").status == "skip" and silent.status == "fail"


def test_qc_file_errors(clips, aurora):
    d, _, _ = clips
    with pytest.raises(QCError, match="could not read notes.mp4 as a video"):
        check_file(d / "notes.mp4", aurora)
    with pytest.raises(QCError, match="the clip not found: .*missing.mp4"):
        check_file(d / "missing.mp4", aurora)


def test_qc_file_refuses_empty_audio_only_and_truncated_files(clips, aurora, tmp_path):
    d, _, bed = clips
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(QCError, match=r"empty.mp4 is empty \(0 bytes\)"):
        check_file(tmp_path / "empty.mp4", aurora)
    write_mp4(stripes(AURORA_PALETTE, t=4), 16, tmp_path / "x.mp4", audio=bed, sample_rate=SR)
    ffmpeg = [ffmpeg_exe(), "-v", "error", "-y", "-i", str(tmp_path / "x.mp4")]
    subprocess.run([*ffmpeg, "-vn", "-c:a", "copy", str(tmp_path / "voice.m4a")], check=True)
    with pytest.raises(QCError, match="has no video stream .it holds only audio"):
        check_file(tmp_path / "voice.m4a", aurora)
    # a download cut short: the moov atom is at the front (+faststart), the frames' bytes are missing
    whole = (d / "on.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(QCError, match=r"cut.mp4 is damaged or truncated: \d+ of its 32 frames do not decode"):
        check_file(tmp_path / "cut.mp4", aurora)


def test_qc_file_applies_the_display_rotation_and_measures_mono_as_mono(aurora, tmp_path):
    # phone footage: stored 160x90 with a 90-degree display matrix, shown 90x160; a mono soundtrack
    t = np.arange(2 * SR) / SR
    tone = (0.9 * np.sin(2 * np.pi * 997 * t)).astype(np.float32)
    frames = stripes(AURORA_PALETTE, t=16).transpose(0, 2, 1, 3).copy()  # landscape 160x90
    write_mp4(frames, 16, tmp_path / "flat.mp4")
    (tmp_path / "tone.f32").write_bytes(tone.tobytes())
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-display_rotation", "90", "-i", str(tmp_path / "flat.mp4"),
         "-f", "f32le", "-ar", str(SR), "-ac", "1", "-i", str(tmp_path / "tone.f32"),
         "-c:v", "copy", "-c:a", "pcm_s16le", str(tmp_path / "phone.mov")],
        check=True,
    )  # fmt: skip
    got = check_file(tmp_path / "phone.mov", aurora)
    assert (got.width, got.height) == (90, 160)  # not the stored picture squeezed into 160x90
    assert got.check("aspect").status == "pass"  # 9:16 is one of the profile's ratios
    # a 0.9 sine peaks at -0.92 dBFS: measured as mono (ffmpeg's stereo upmix would read -3.9)
    assert got.true_peak == pytest.approx(20 * np.log10(0.9), abs=0.1)
    assert got.loudness == pytest.approx(integrated_loudness(tone, SR), abs=0.2)
    assert got.check("true_peak").status == "pass"  # -0.92 is under the -1 dBTP ceiling's 0.1 dB grace


def test_cli_exit_codes(clips, tmp_path):
    d, _, _ = clips
    profile = str(PROFILES / "aurora-coffee")
    ok = runner.invoke(
        app, ["qc", str(d / "on.mp4"), "--profile", profile, "--html", str(tmp_path / "r.html")]
    )
    assert ok.exit_code == 0, ok.output
    assert "palette" in ok.stdout and "PASS" in ok.stdout
    assert "data:image/jpeg;base64," in (tmp_path / "r.html").read_text(encoding="utf-8")
    bad = runner.invoke(app, ["qc", str(d / "off.mp4"), "-p", profile, "--json"])
    assert bad.exit_code == 1, bad.output
    assert json.loads(bad.stdout)["checks"][0]["status"] == "fail"
    broken = runner.invoke(app, ["qc", str(d / "notes.mp4"), "-p", profile])
    assert broken.exit_code == 2 and "QCError" in broken.output and "Traceback" not in broken.output
    folder = runner.invoke(app, ["qc", str(d / "on.mp4"), "-p", profile, "--html", str(tmp_path)])
    assert folder.exit_code == 2 and "is a folder" in folder.output and "Traceback" not in folder.output
    no_profile = runner.invoke(app, ["qc", str(d / "on.mp4"), "-p", str(tmp_path / "nope")])
    assert no_profile.exit_code == 2 and "ProfileNotFound" in no_profile.output


# -- a render ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    studio = BrandStudio(PROFILES / "aurora-coffee", output_dir=tmp_path_factory.mktemp("renders"))
    result = studio.render("product-hero", product="Night Roast", aspect="9:16", duration=1.0,
                           resolution=128, seed=7)  # fmt: skip
    return studio, result


def test_render_writes_the_qc_report(rendered):
    studio, r = rendered
    data = read_json(r.path.with_suffix(".qc.json"))
    assert r.qc_report == r.path.with_suffix(".qc.html") and r.qc_report.is_file()
    assert r.qc["status"] in ("pass", "warn", "fail") and r.qc["status"] == data["status"]
    assert r.qc["score"] == data["score"] and set(r.qc["checks"]) >= {
        "palette",
        "flicker",
        "loudness",
        "safety",
    }
    assert data["profile_fingerprint"] == studio.profile.fingerprint and data["seed"] == 7
    assert data["model"] == "tiny" and data["clip"] == str(r.path)
    assert r.qc["checks"]["loudness"]["status"] == "pass" and r.qc["checks"]["safety"]["status"] == "pass"
    assert r.qc["checks"]["frames"]["status"] == "pass"  # the tiny model's footage, under logo and captions
    assert "qc" in r.timings and r.timings["qc"] < 5
    assert set(data["timings"]) >= {"generation", "post", "encode", "qc_analysis"}
    assert read_json(r.path.with_suffix(".json"))["qc"]["score"] == r.qc["score"]
    page = r.qc_report.read_text(encoding="utf-8")
    assert studio.profile.fingerprint in page and page.count("data:image/jpeg;base64,") == 6
    # the report on the delivered file agrees with the one made from the frames in memory
    again = check_file(r.path, studio.profile)
    assert again.check("palette").value == pytest.approx(data["checks"][0]["value"], abs=3.0)
