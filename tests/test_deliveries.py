"""Deliveries: the presets match the published specs they name, entries resolve against them, and
bad entries in brand.toml are refused with the delivery and the field named."""

from __future__ import annotations

import hashlib
import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from brandstudio.deliveries import DELIVERY_CODECS, DELIVERY_PRESETS, resolve_delivery
from brandstudio.encode.mp4 import Mp4Writer
from brandstudio.errors import EncodeError, ProfileError
from brandstudio.rates import frame_rate


def test_every_preset_resolves_to_a_complete_delivery():
    for name in DELIVERY_PRESETS:
        d = resolve_delivery({"name": name, "preset": name})
        assert d.codec in DELIVERY_CODECS and d.resolution % 2 == 0


def test_broadcast_is_ebu_r128_and_social_is_vertical():
    tv = resolve_delivery({"name": "tv", "preset": "broadcast-1080p25"})
    assert (tv.aspect, tv.resolution, frame_rate(tv.fps), tv.loudness, tv.true_peak) == (
        "16:9", 1080, Fraction(25), -23.0, -1.0
    )
    assert tv.captions == "sidecar"  # a clean picture, subtitles as files
    reels = resolve_delivery({"name": "reels", "preset": "social-vertical"})
    assert (reels.aspect, reels.loudness, reels.captions) == ("9:16", -14.0, "burn")
    master = resolve_delivery({"name": "master", "preset": "mezzanine"})
    codec = DELIVERY_CODECS[master.codec]
    assert (codec.encoder, codec.container, codec.pixel_format) == ("prores_ks", "mov", "yuv422p10le")
    assert master.fps is None  # the render's own rate


def test_an_entry_overrides_its_preset_and_ntsc_rates_stay_exact():
    d = resolve_delivery({"name": "us-tv", "preset": "broadcast-1080p25", "fps": 29.97, "loudness": -24})
    assert frame_rate(d.fps) == Fraction(30000, 1001) and d.loudness == -24.0 and d.resolution == 1080


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "aspect": "9:16"}, "resolution"),
        ({"name": "x", "preset": "tiktok-pro"}, "unknown delivery preset 'tiktok-pro'; use one of: social-vertical"),
        ({"name": "x", "preset": "youtube", "codec": "hevc"}, "unknown delivery codec 'hevc'"),
        ({"name": "x", "preset": "youtube", "resolution": 1081}, "must be even"),
        ({"name": "x", "preset": "youtube", "loudness": 3}, "loudness"),
        ({"name": "Bad Name", "preset": "youtube"}, "lower-case slug"),
        ({"name": "x", "preset": "youtube", "fps": "abc"}, "not a frame rate"),
        ({"name": "x", "preset": "youtube", "bitrate": 5}, "bitrate"),
    ],
)
def test_bad_entries_name_the_field(entry, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_delivery(entry)


def test_brand_toml_deliveries_are_checked_when_the_profile_loads(make_profile):
    good = make_profile("aurora-coffee", edit=lambda t: t + '\n[[deliveries]]\nname = "tv"\npreset = "broadcast-1080p25"\n'
                        '\n[[deliveries]]\nname = "reels"\npreset = "social-vertical"\nloudness = -16\n')  # fmt: skip
    from brandstudio.profile import load_profile

    spec = load_profile(good).spec
    assert [resolve_delivery(d).loudness for d in spec.deliveries] == [-23.0, -16.0]
    twice = make_profile(edit=lambda t: t + '\n[[deliveries]]\nname = "tv"\npreset = "youtube"\n' * 2, name="twice")
    with pytest.raises(ProfileError, match="a second delivery named 'tv'"):
        load_profile(twice)
    incomplete = make_profile(edit=lambda t: t + '\n[[deliveries]]\nname = "tv"\naspect = "16:9"\n', name="incomplete")
    with pytest.raises(ProfileError, match=r"delivery 'tv' \(deliveries\[0\]\): `resolution`: Field required"):
        load_profile(incomplete)


# -- the encoder writes what a delivery's codec asks for -------------------------------------------


def _pan(n: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (h, w + 4 * n, 3), dtype=np.uint8)
    return np.stack([texture[:, 4 * i : 4 * i + w] for i in range(n)])


def test_prores_master_is_422_hq_10_bit_in_quicktime_with_pcm_audio(tmp_path):
    out = tmp_path / "master.mov"
    frames = _pan(8, 64, 96)
    tone = (0.1 * np.sin(np.linspace(0, 400, 16000))).astype(np.float32)
    with Mp4Writer(out, 96, 64, 16, n_frames=8, audio=np.stack([tone, tone], 1), sample_rate=32000,
                   codec="prores-hq") as w:  # fmt: skip
        w.write(frames)
    import av

    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert c.format.name.startswith("mov")
        assert (v.codec_context.name, v.codec_context.pix_fmt, v.frames) == ("prores", "yuv422p10le", 8)
        assert v.codec_context.profile == "HQ" and a.codec_context.name == "pcm_s24le"
    assert not list(tmp_path.glob("*.part*"))


def test_h264_respects_a_bitrate_cap(tmp_path):
    # new noise every frame: nothing to predict, far above the cap without one
    frames = np.random.default_rng(1).integers(0, 256, (32, 144, 256, 3), dtype=np.uint8)
    sizes = {}
    for cap in (None, 300):
        out = tmp_path / f"cap-{cap}.mp4"
        with Mp4Writer(out, 256, 144, 16, n_frames=32, crf=18, max_bitrate=cap) as w:
            w.write(frames)
        sizes[cap] = out.stat().st_size * 8 / 1000 / 2.0  # kbit/s over the 2 s clip
    # VBV: over the clip at most the cap times its length plus the (two-second) buffer
    assert sizes[None] > 3000 and sizes[300] <= 300 + 2 * 300 / 2.0, sizes


def test_an_unknown_codec_or_a_bad_cap_is_an_encode_error(tmp_path):
    with pytest.raises(EncodeError, match="unknown codec 'hevc'; use one of: h264, prores-hq"):
        Mp4Writer(tmp_path / "x.mp4", 64, 64, 16, codec="hevc")
    with pytest.raises(EncodeError, match="max_bitrate"):
        Mp4Writer(tmp_path / "x.mp4", 64, 64, 16, max_bitrate=5)


# -- one render, every delivery ----------------------------------------------------------------


def test_one_generation_is_delivered_four_ways_each_probed_and_at_its_loudness(make_profile, tmp_path):
    """Reels, broadcast, YouTube and the ProRes master from one render: four files of the right
    size, rate, codec and loudness, each with its QC report, from one call to the generator. (Small sizes: the presets'
    other fields are what is tested.)"""
    from fixed_generators import PanGenerator
    from helpers import ebur128, probe

    from brandstudio import BrandStudio

    entries = (
        '\n[[deliveries]]\nname = "reels"\npreset = "social-vertical"\nresolution = 144\n'
        '\n[[deliveries]]\nname = "tv"\npreset = "broadcast-1080p25"\nresolution = 144\n'
        '\n[[deliveries]]\nname = "yt"\npreset = "youtube"\nresolution = 144\nfps = 29.97\n'
        '\n[[deliveries]]\nname = "master"\npreset = "mezzanine"\nresolution = 144\n'
    )
    profile = make_profile(edit=lambda t: t + entries)
    generator = PanGenerator()
    studio = BrandStudio(profile, output_dir=tmp_path / "out", generator=generator, cache=False)
    result = studio.render("product-hero", product="Night Roast", aspect="16:9", duration=2.0, seed=3,
                           deliveries=["reels", "tv", "yt", "master"])  # fmt: skip
    assert generator.calls == 1
    assert [d["name"] for d in result.deliveries] == ["reels", "tv", "yt", "master"]
    expected = {"reels": ((144, 256), 30.0, -14.0, "h264"), "tv": ((256, 144), 25.0, -23.0, "h264"),
                "yt": ((256, 144), 30000 / 1001, -14.0, "h264"), "master": ((256, 144), studio.profile.spec.output.fps, -23.0, "prores")}  # the render's own rate
    for d in result.deliveries:
        path = Path(d["path"])
        info = probe(path)
        (w, h), fps, lufs, codec = expected[d["name"]]
        assert (info["width"], info["height"]) == (w, h) and info["fps"] == pytest.approx(fps, abs=1e-3), info
        assert info["video_codec"] == codec and info["audio_codec"] == ("aac" if codec == "h264" else "pcm_s24le")
        assert abs(ebur128(path)["integrated"] - lufs) <= 1.0
        assert path.with_suffix(".qc.json").is_file() and d["qc"]["status"] in ("pass", "warn")
    # captions: burnt into the social cut, sidecar files beside the broadcast one
    assert Path(result.deliveries[1]["path"]).with_suffix(".srt").is_file()


def test_the_cli_delivers_presets_and_names_an_unknown_one(tmp_path):
    import subprocess
    import sys

    from helpers import PROFILES, REPO

    cmd = [sys.executable, "-m", "brandstudio.cli", "render", str(PROFILES / "aurora-coffee"), "product-hero",
           "--var", "product=Night Roast", "--aspect", "16:9", "--duration", "1", "--resolution", "96",
           "--output-dir", str(tmp_path), "--delivery", "social-square", "--delivery", "broadcast-1080p25"]  # fmt: skip
    bad = subprocess.run([*cmd[:-4], "--delivery", "tiktok-pro"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert bad.returncode == 2 and "unknown delivery 'tiktok-pro'" in bad.stderr and "Traceback" not in bad.stderr
    assert not any(tmp_path.rglob("*.mp4"))


# -- campaigns and batches fan out the same way ----------------------------------------------------


SMALL_DELIVERIES = (
    '\n[[deliveries]]\nname = "square"\npreset = "social-square"\nresolution = 96\n'
    '\n[[deliveries]]\nname = "master"\npreset = "mezzanine"\nresolution = 96\n'
)


def _delivery_campaign(make_profile, tmp_path, name: str, settings: str):
    """A campaign of the product-hero template delivering "square" and "master" (small sizes),
    with ``settings`` (TOML lines after the [campaign] table's own), and a studio on a pan
    generator that counts its calls."""
    from fixed_generators import PanGenerator

    from brandstudio import BrandStudio
    from brandstudio.campaign import load_campaign

    profile = make_profile(edit=lambda t: t + SMALL_DELIVERIES)
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[campaign]\nname = "{name}"\nprofile = "{profile.as_posix()}"\ntemplate = "product-hero"\n'
        f'deliveries = ["square", "master"]\n{settings}',
        encoding="utf-8",
    )  # fmt: skip
    generator = PanGenerator()
    return load_campaign(path), BrandStudio(profile, output_dir=tmp_path / "unused", generator=generator, cache=False), generator


def test_a_campaign_delivers_each_job_every_way_from_one_generation_and_resumes(make_profile, tmp_path):
    """Two jobs × two deliveries: four probed files from two generator calls; the manifest and
    the audit log list each file with its hash; a re-run renders nothing; a delivery file gone
    makes its job (and only it) render again."""
    from helpers import probe

    from brandstudio.campaign import plan, read_manifest, run

    c, studio, generator = _delivery_campaign(make_profile, tmp_path, "spot", '[defaults]\nduration = 1.0\naspect = "16:9"\n'
                                              'seed = 3\n[matrix]\nproduct = ["Night Roast", "Day Roast"]\n')  # fmt: skip
    assert [len(j.files) for j in c.jobs] == [2, 2]
    assert [f.name.split(".", 1)[1] for f in c.jobs[0].files] == ["square.mp4", "master.mov"]
    summary = run(c, studio=studio, quiet=True)
    assert summary.exit_code == 0 and len(summary.rendered) == 2 and generator.calls == 2
    for job in c.jobs:
        square, master = job.files
        assert probe(square)["video_codec"] == "h264" and (probe(square)["width"], probe(square)["height"]) == (96, 96)
        assert probe(master)["video_codec"] == "prores" and probe(master)["height"] == 96
        assert not job.output.exists()  # with deliveries there is no undelivered "main" clip
    records = read_manifest(c.manifest_path)
    audit = {a["job"]: a for a in map(json.loads, (c.audit_dir / f"{studio.profile.id}.jsonl").read_text().splitlines())}
    for job in c.jobs:
        files = records[job.id]["files"]
        assert [f["output"] for f in files] == [str(f) for f in job.files]
        assert [f["sha256"] for f in files] == [hashlib.sha256(f.read_bytes()).hexdigest() for f in job.files]
        assert audit[job.id]["files"] == files
    assert run(c, studio=studio, quiet=True).skipped and generator.calls == 2  # all done: nothing generated

    c.jobs[1].files[1].unlink()  # one delivery of the second job lost
    assert [p.status for p in plan(c)] == ["done", "pending"]
    again = run(c, studio=studio, quiet=True)
    assert [j.id for j in again.rendered] == [c.jobs[1].id] and generator.calls == 3
    assert all(f.is_file() for j in c.jobs for f in j.files) and not list(tmp_path.rglob("*.part*"))


def test_a_campaign_naming_an_unknown_delivery_stops_before_any_job(tmp_path):
    from helpers import PROFILES

    from brandstudio.campaign import load_campaign
    from brandstudio.errors import CampaignError

    path = tmp_path / "c.toml"
    path.write_text(f'[campaign]\nname = "c"\nprofile = "{(PROFILES / "aurora-coffee").as_posix()}"\n'
                    'template = "product-hero"\ndeliveries = ["social-vertical", "reels-hd"]\n', encoding="utf-8")  # fmt: skip
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    assert "unknown delivery 'reels-hd'" in str(info.value) and info.value.field == "campaign.deliveries"
    assert "social-vertical" in str(info.value)  # the known names are listed


def test_render_many_with_deliveries_resumes_from_the_manifest(make_profile, tmp_path):
    from fixed_generators import PanGenerator

    from brandstudio import BrandStudio, RenderRequest

    profile = make_profile(edit=lambda t: t + SMALL_DELIVERIES)
    generator = PanGenerator()
    studio = BrandStudio(profile, output_dir=tmp_path / "out", generator=generator, cache=False)
    request = RenderRequest(template="product-hero", variables={"product": "Night Roast"}, aspect="16:9",
                            duration=1.0, seed=3, deliveries=("square", "master"))  # fmt: skip
    first = studio.render_many([request], manifest=tmp_path / "batch.jsonl")
    again = studio.render_many([request], manifest=tmp_path / "batch.jsonl")
    assert generator.calls == 1  # the second call found both deliveries done
    assert [d["name"] for d in again[0].deliveries] == ["square", "master"] == [d["name"] for d in first[0].deliveries]
    assert [Path(d["path"]).suffix for d in again[0].deliveries] == [".mp4", ".mov"]


def test_a_campaign_on_shared_storage_publishes_every_delivery(make_profile, tmp_path):
    """memory:// stands in for a bucket: each delivery and its sidecars arrive, staging is
    emptied, the manifest lists each URL with its size; one delivery gone there makes the job pending."""
    import fsspec

    from brandstudio.campaign import plan, read_manifest, run

    c, studio, _ = _delivery_campaign(make_profile, tmp_path, "bucket", 'output_dir = "memory://deliveries/spot"\n'
                                      '[defaults]\nduration = 1.0\naspect = "16:9"\nseed = 3\n'
                                      '[defaults.variables]\nproduct = "Night Roast"\n')  # fmt: skip
    (job,) = c.jobs
    assert run(c, studio=studio, quiet=True).exit_code == 0
    fs = fsspec.filesystem("memory")
    try:
        names = {p.rsplit("/", 1)[1] for p in fs.ls("/deliveries/spot", detail=False)}
        stem = job.output.stem
        assert {f"{stem}.square.mp4", f"{stem}.master.mov", f"{stem}.square.qc.json", f"{stem}.master.json"} <= names
        assert not any(n.startswith(".") for n in names)  # no temp upload left
        files = read_manifest(c.manifest_path)[job.id]["files"]
        assert [f["output"] for f in files] == list(job.locations)
        for f in files:
            assert fs.size(f["output"].removeprefix("memory://")) == f["size"]
        assert not any(f.exists() for f in job.files)  # staging emptied
        assert [p.status for p in plan(c)] == ["done"]
        fs.rm(job.locations[1].removeprefix("memory://"))
        assert [p.status for p in plan(c)] == ["pending"]
    finally:
        fs.rm("/deliveries", recursive=True)
