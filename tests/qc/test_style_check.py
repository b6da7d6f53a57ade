"""The CLIP checks of QC: **style** (frames against the profile's reference stills) and **prompt**
adherence (CLIPScore against the final prompt), with a tiny CLIP built offline and loaded through
the real path (``CLIPModel.from_pretrained``, safetensors only, nothing downloaded).

With random weights the scores mean nothing about footage, but they are exact where the answer
is known: a frame that *is* a reference still has cosine similarity 1 to it, and CLIPScore is
what CLIP's own forward pass says (``logits_per_image / logit_scale``, times 100, clipped at 0).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixed_generators import FlatGenerator
from helpers import PROFILES, read_json
from PIL import Image
from typer.testing import CliRunner

from brandstudio import BrandStudio, ProfileError, load_profile, qc
from brandstudio.cli import app
from brandstudio.encode import write_mp4
from brandstudio.errors import AssetError, QCError
from brandstudio.qc import NO_CLIP_MODEL, QCCollector, QCReport, check_file, refuse_unusable, report
from brandstudio.qc import style as clip_style
from brandstudio.qc.measure import CHECK_STEPS

runner = CliRunner()


def cycled(images, t: int = 12) -> np.ndarray:
    return np.stack([images[i % len(images)] for i in range(t)])


def noise(t: int = 12, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (t, 64, 96, 3), dtype=np.uint8)


def stripes(t: int = 12) -> np.ndarray:
    out = np.zeros((t, 64, 96, 3), np.uint8)
    out[:, ::8] = (255, 0, 255)
    out[:, 4::8] = (0, 255, 0)
    return out


# -- no model: skipped, never a made-up score ------------------------------------------------


def test_without_a_clip_model_both_checks_say_so_and_score_nothing(monkeypatch, refs):
    monkeypatch.delenv("BRANDSTUDIO_CLIP_MODEL", raising=False)
    r = report(cycled(refs), PROFILES / "aurora-coffee", fps=16, prompt="a warm gradient")
    for name in ("style", "prompt"):
        c = r.check(name)
        assert c.status == "skip" and c.value is None and c.explanation == NO_CLIP_MODEL
    assert "no CLIP model" in NO_CLIP_MODEL and "[qc] clip_model" in NO_CLIP_MODEL
    assert "BRANDSTUDIO_CLIP_MODEL" in NO_CLIP_MODEL
    assert r.clip_model is None and r.style_similarity == () and r.prompt_score == ()
    assert r.tested == 4  # palette, flicker, frames, aspect: the skipped CLIP checks are not counted
    assert [c.name for c in r.checks][-2:] == ["style", "prompt"] and CHECK_STEPS[-2:] == ("style", "prompt")


# -- style ---------------------------------------------------------------------------------


def test_frames_that_are_the_reference_stills_score_higher_than_unrelated_frames(clip_profile, refs):
    profile = load_profile(clip_profile())
    same = report(cycled(refs), profile, fps=16)
    assert same.clip_model == "clip" and same.clip_indices == (0, 2, 3, 5, 6, 8, 9, 11)
    assert same.style_similarity == pytest.approx([1.0] * 8, abs=1e-4)  # each frame is one of the stills
    assert same.check("style").status == "pass" and same.check("style").value == pytest.approx(1.0, abs=1e-4)
    assert (
        same.check("style").unit == "cos"
        and "closest of 3 reference stills" in same.check("style").explanation
    )
    # a clip that cuts between a still and grain: the frames that are the still score 1, the others less
    mixed = report(cycled([refs[0], noise(1)[0]]), profile, fps=16)
    on_still = [v for i, v in zip(mixed.clip_indices, mixed.style_similarity, strict=True) if i % 2 == 0]
    on_grain = [v for i, v in zip(mixed.clip_indices, mixed.style_similarity, strict=True) if i % 2 == 1]
    assert on_still == pytest.approx([1.0] * len(on_still), abs=1e-4) and max(on_grain) < 0.999
    others = [report(frames, profile, fps=16) for frames in (noise(), stripes())]
    for other in others:
        assert other.check("style").value < mixed.check("style").value < same.check("style").value
    assert same.thresholds["style_warn"] == 0.7 and same.thresholds["prompt_fail"] == 18


def test_style_thresholds_grade_it_and_a_failing_style_fails_the_verdict_but_is_delivered(
    clip_profile, refs, tmp_path
):
    profile = load_profile(clip_profile('clip_model = "clip"\nstyle_warn = 0.999\nstyle_fail = 0.95'))
    same, grainy, striped = (report(f, profile, fps=16) for f in (cycled(refs), noise(), stripes()))
    assert [r.check("style").status for r in (same, grainy, striped)] == ["pass", "warn", "fail"]
    assert "under the warn threshold 0.999" in grainy.check("style").explanation
    assert "under the fail threshold 0.95" in striped.check("style").explanation
    # a style failure fails the verdict, like the palette; only the frames check refuses a clip
    strict = load_profile(
        clip_profile('clip_model = "clip"\nstyle_warn = 0.999\nstyle_fail = 0.99', name="strict")
    )
    off_brand = report(noise(), strict, fps=16)
    assert off_brand.check("style").status == "fail" and off_brand.status == "fail"
    assert off_brand.check("frames").status == "pass"
    clip = tmp_path / "x.mp4"
    clip.write_bytes(b"mp4")
    refuse_unusable(off_brand, (clip,))
    assert clip.exists()


def test_no_references_or_an_empty_folder_skip_style_and_a_missing_folder_is_an_error(clip_profile, refs):
    without = report(
        cycled(refs), load_profile(clip_profile(references=False, name="no-refs")), fps=16, prompt="a cup"
    )
    assert without.check("style").status == "skip"
    assert (
        without.check("style").explanation
        == "the profile has no [style] references to compare the frames with"
    )
    assert without.check("prompt").status != "skip"  # the prompt check does not need references
    root = clip_profile(references="empty", name="empty-refs")
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("not a still")
    empty = report(cycled(refs), load_profile(root), fps=16)
    assert (
        empty.check("style").status == "skip"
        and "'empty' holds no stills (.png" in empty.check("style").explanation
    )
    missing = load_profile(clip_profile(references="stills", name="missing-refs"))
    with pytest.raises(AssetError, match=r"the \[style\] references folder 'stills' does not exist") as exc:
        report(cycled(refs), missing, fps=16)
    assert exc.value.field == "style.references" and "create" in exc.value.fix


# -- prompt adherence ----------------------------------------------------------------------


def test_prompt_adherence_is_clipscore_by_clips_own_forward_pass(clip_profile, refs):
    import torch

    profile = load_profile(clip_profile())
    prompt = "aurora film look, a warm gradient of morning light"
    r = report(cycled(refs), profile, fps=16, prompt=prompt)
    scorer = clip_style.load_clip_model(clip_style.clip_model_source(profile))
    frames = [cycled(refs)[i] for i in r.clip_indices]
    enc = scorer.tokenizer([prompt], return_tensors="pt")
    pixels = torch.from_numpy(np.stack([scorer.prepare(f) for f in frames]))
    with torch.inference_mode():
        out = scorer.model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=pixels
        )
    cosine = (out.logits_per_image / scorer.model.logit_scale.exp()).numpy()[:, 0]
    expected = 100 * np.clip(cosine, 0, None)
    assert expected.max() > 1  # the tiny model's score is not clipped to nothing
    assert r.prompt_score == pytest.approx(expected.tolist(), abs=1e-2)
    c = r.check("prompt")
    assert c.value == pytest.approx(expected.mean(), abs=1e-2) and c.unit == "CLIPScore"
    assert (c.warn, c.fail) == (22, 18) and c.status == (
        "pass" if c.value >= 22 else "warn" if c.value >= 18 else "fail"
    )
    assert "mean CLIPScore (100 × cosine) of 8 sampled frames to the prompt" in c.explanation
    assert "cut" not in c.explanation
    # a multi-shot clip: each frame against the shot prompt it is closest to
    other = "x"
    shots = report(cycled(refs), profile, fps=16, prompt=[prompt, other])
    alone = report(cycled(refs), profile, fps=16, prompt=other)
    best = np.maximum(np.array(r.prompt_score), np.array(alone.prompt_score))
    assert shots.prompt_score == pytest.approx(best.tolist(), abs=1e-3)
    assert "to the closest of its 2 shot prompts" in shots.check("prompt").explanation


def test_a_prompt_longer_than_clips_77_tokens_is_cut_and_the_check_says_so(clip_profile, refs):
    profile = load_profile(clip_profile())
    long = "a warm gradient of morning light over a cup of coffee, " * 6
    r = report(cycled(refs), profile, fps=16, prompt=long)
    assert r.check("prompt").explanation.endswith("; the prompt was cut to the model's 77 tokens")
    # what is measured is the first 77 tokens: the same as the prompt cut there by hand
    scorer = clip_style.load_clip_model(clip_style.clip_model_source(profile))
    ids = scorer.tokenizer(long, truncation=True, max_length=77)["input_ids"]
    head = scorer.tokenizer.decode(ids, skip_special_tokens=True)
    same = report(cycled(refs), profile, fps=16, prompt=head)
    assert same.prompt_score == pytest.approx(r.prompt_score, abs=1e-3)
    no_prompt = report(cycled(refs), profile, fps=16)
    assert no_prompt.check("prompt").status == "skip" and "no prompt" in no_prompt.check("prompt").explanation


# -- where the model comes from ------------------------------------------------------------


def test_the_environment_names_the_machine_default_and_the_profile_wins(
    clip_profile, tiny_clip, refs, monkeypatch
):
    root = clip_profile(qc="sample_frames = 16")  # no clip_model in brand.toml
    profile = load_profile(root)
    assert clip_style.clip_model_source(profile) is None
    monkeypatch.setenv("BRANDSTUDIO_CLIP_MODEL", str(tiny_clip))
    r = report(cycled(refs), profile, fps=16, prompt="a cup")
    assert r.clip_model == str(tiny_clip) and r.check("style").value == pytest.approx(1.0, abs=1e-4)
    assert r.check("prompt").status in ("pass", "warn", "fail")
    # brand.toml's model wins over the machine default (its thresholds are calibrated for it)
    monkeypatch.setenv("BRANDSTUDIO_CLIP_MODEL", "/nowhere/clip")
    own = load_profile(clip_profile(name="own-model"))
    assert report(cycled(refs), own, fps=16).clip_model == "clip"
    with pytest.raises(QCError, match=r"'/nowhere/clip' \(\$BRANDSTUDIO_CLIP_MODEL\) does not exist") as exc:
        report(cycled(refs), profile, fps=16)
    assert exc.value.field == "BRANDSTUDIO_CLIP_MODEL" and exc.value.value == "/nowhere/clip"


def _broken(tiny_clip: Path, folder: Path, how: str) -> Path:
    shutil.copytree(tiny_clip, folder)
    weights = folder / "model.safetensors"
    if how == "pickle":
        weights.rename(folder / "pytorch_model.bin")
    elif how == "no-config":
        (folder / "config.json").unlink()
    elif how == "not-clip":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(
            json.dumps({**config, "model_type": "t5", "architectures": ["T5Model"]})
        )
    elif how == "vision-only":
        from safetensors.torch import load_file, save_file

        tensors = load_file(weights)
        save_file(
            {k: v for k, v in tensors.items() if not k.startswith("text_")},
            weights,
            metadata={"format": "pt"},
        )
    elif how == "no-tokenizer":
        (folder / "tokenizer.json").unlink()
        (folder / "tokenizer_config.json").unlink()
    return folder


@pytest.mark.parametrize(
    ("how", "message"),
    [
        (
            "pickle",
            r"has only pickle weights \(pytorch_model.bin\); brandstudio loads CLIP weights from safetensors only",
        ),
        ("no-config", r"holds no config.json: it is not a transformers model folder"),
        ("not-clip", r"is a `t5` model, not a CLIP model"),
        ("vision-only", r"has incomplete weights: \d+ tensors are missing .*random layers"),
        ("no-tokenizer", r"has no usable tokenizer"),
    ],
)
def test_a_broken_clip_model_folder_is_a_clean_error(clip_profile, tiny_clip, refs, how, message):
    root = clip_profile()
    shutil.rmtree(root / "clip")
    _broken(tiny_clip, root / "clip", how)
    profile = load_profile(root)
    with pytest.raises(QCError, match=r"^the CLIP model 'clip' \(\[qc\] clip_model\) " + message) as exc:
        report(cycled(refs), profile, fps=16, prompt="a cup")
    assert exc.value.field == "qc.clip_model" and exc.value.value == "clip" and exc.value.fix
    assert exc.value.profile == profile.id


def test_a_hub_id_is_never_downloaded_and_wrong_values_are_refused(clip_profile, refs, tmp_path):
    hub = load_profile(clip_profile('clip_model = "brandstudio-tests/no-such-clip"', name="hub"))
    with pytest.raises(
        QCError, match=r"is neither a model folder nor in the Hugging Face cache .*does not download"
    ) as exc:
        report(cycled(refs), hub, fps=16)
    assert "hf download brandstudio-tests/no-such-clip" in exc.value.fix
    # brand.toml names only folders inside the profile (or hub ids); a file is not a model
    with pytest.raises(ProfileError, match="`clip_model` must be a folder inside the profile"):
        load_profile(clip_profile('clip_model = "/opt/models/clip"', name="absolute"))
    with pytest.raises(ProfileError, match="`clip_model` must be a folder inside the profile"):
        load_profile(clip_profile('clip_model = "../clip"', name="escape"))
    with pytest.raises(ProfileError, match=r"`style_fail` \(0.8\) must not exceed `style_warn` \(0.7\)"):
        load_profile(clip_profile("style_fail = 0.8", name="crossed"))
    with pytest.raises(ProfileError, match="prompt_warn"):
        load_profile(clip_profile("prompt_warn = 120", name="over"))
    root = clip_profile('clip_model = "brand.toml"', name="file")
    with pytest.raises(QCError, match=r"'brand.toml' \(\[qc\] clip_model\) is not a folder"):
        report(cycled(refs), load_profile(root), fps=16)
    # a symlink out of the profile is refused
    root = clip_profile('clip_model = "linked"', name="linked")
    (root / "linked").symlink_to(root / "clip")
    report(cycled(refs), load_profile(root), fps=16)  # inside: fine
    (root / "linked").unlink()
    (root / "linked").symlink_to(tmp_path)
    with pytest.raises(QCError, match="leads outside the profile directory"):
        report(cycled(refs), load_profile(root), fps=16)


def test_the_render_checks_the_clip_model_before_any_work(clip_profile, tmp_path):
    root = clip_profile()
    (root / "clip" / "config.json").unlink()
    gen = FlatGenerator()
    studio = BrandStudio(root, output_dir=tmp_path / "out", generator=gen, cache=False)
    with pytest.raises(QCError, match="holds no config.json") as exc:
        studio.render("product-hero", product="Night Roast", duration=1.0, resolution=128)
    assert exc.value.field == "qc.clip_model" and exc.value.profile == "aurora-coffee"
    assert gen.calls == 0 and not (tmp_path / "out").exists()  # nothing generated, nothing written
    qc.check(None, load_profile(PROFILES / "aurora-coffee"))  # no CLIP model: nothing to check


def test_the_model_is_loaded_once_and_each_still_embedded_once(clip_profile, refs, monkeypatch):
    profile = load_profile(clip_profile())
    source = clip_style.clip_model_source(profile)
    assert clip_style.load_clip_model(source) is clip_style.load_clip_model(source)
    read = []
    real = clip_style.read_image

    def counting(path, **kw):
        read.append(Path(path).name)
        return real(path, **kw)

    monkeypatch.setattr(clip_style, "read_image", counting)
    first = report(cycled(refs), profile, fps=16)
    again = report(noise(), profile, fps=16)
    assert sorted(read) == ["still-0.png", "still-1.png", "still-2.png"]  # decoded for the first report only
    assert first.check("style").value > again.check("style").value
    # a still that changes is a new file hash: read again
    Image.fromarray(refs[0][::-1].copy()).save(profile.root / "references" / "still-0.png")
    report(cycled(refs), profile, fps=16)
    assert sorted(read) == ["still-0.png", "still-0.png", "still-1.png", "still-2.png"]


def test_the_collector_keeps_evenly_spaced_frames_at_clip_size():
    frames = np.zeros((40, 480, 854, 3), np.uint8)
    frames[:] = np.arange(40, dtype=np.uint8)[:, None, None, None]
    known = QCCollector(expected=40)
    unknown = QCCollector()
    for f in frames:
        known.add(f)
        unknown.add(f)
    assert [i for i, _ in known.clip_frames] == [0, 6, 11, 17, 22, 28, 33, 39]
    assert all(f.shape == (336, 598, 3) and f[0, 0, 0] == i for i, f in known.clip_frames)
    spread = [i for i, _ in unknown.clip_frames]
    assert len(spread) == 8 and spread[0] == 0 and spread[-1] >= 32 and spread == sorted(spread)
    small = QCCollector(expected=3)
    for f in frames[:3, :64, :96]:
        small.add(f)
    assert [i for i, _ in small.clip_frames] == [0, 1, 2] and small.clip_frames[0][1].shape == (64, 96, 3)


# -- the report ----------------------------------------------------------------------------


def test_json_and_html_show_the_clip_checks(clip_profile, refs):
    r = report(cycled(refs), load_profile(clip_profile()), fps=16, prompt="a cup", model="tiny")
    data = json.loads(r.to_json())
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["style"]["status"] == "pass" and checks["style"]["value"] == pytest.approx(1.0, abs=1e-4)
    assert checks["prompt"]["unit"] == "CLIPScore" and checks["prompt"]["value"] > 0
    assert data["clip_model"] == "clip" and len(data["style_similarity"]) == len(data["prompt_score"]) == 8
    assert {"style_warn", "style_fail", "prompt_warn", "prompt_fail"} <= set(data["thresholds"])
    assert QCReport.from_json(r.to_json()) == r
    page = r.to_html()
    assert ">style<" in page and ">prompt<" in page and "CLIP model" in page
    plots = re.findall(r"data:image/png;base64,[A-Za-z0-9+/]{100,}", page)
    assert len(plots) == 5  # ΔE, flicker, swatches, style, prompt
    assert "closest of 3 reference stills" in str(r)


# -- a render, and `brandstudio qc` on the file --------------------------------------------


@pytest.mark.slow
def test_a_render_and_qc_on_its_file_measure_style_and_prompt(clip_profile, tmp_path):
    root = clip_profile()
    studio = BrandStudio(root, output_dir=tmp_path / "out")
    result = studio.render(
        "product-hero", product="Night Roast", aspect="9:16", duration=1.0, resolution=128, seed=7
    )
    data = read_json(result.path.with_suffix(".qc.json"))
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["style"]["status"] in ("pass", "warn", "fail") and -1 <= checks["style"]["value"] <= 1
    assert checks["prompt"]["status"] in ("pass", "warn", "fail") and 0 <= checks["prompt"]["value"] <= 100
    assert result.qc["checks"]["prompt"]["value"] == checks["prompt"]["value"]
    assert data["clip_model"] == "clip" and len(data["prompt_score"]) == len(data["clip_indices"]) == 8
    assert "Night Roast" in result.prompt

    # the file: the prompt comes from the .json record beside it, then from the MP4's description tag
    again = check_file(result.path, studio.profile)
    assert again.check("prompt").value == pytest.approx(checks["prompt"]["value"], abs=2.0)
    assert again.check("style").value == pytest.approx(checks["style"]["value"], abs=0.02)
    against = check_file(result.path, studio.profile, prompt=result.prompt)
    assert against.prompt_score == pytest.approx(again.prompt_score, abs=1e-6)
    result.path.with_suffix(".json").unlink()
    tagged = check_file(result.path, studio.profile)
    assert tagged.prompt_score == pytest.approx(again.prompt_score, abs=1e-6)
    cli = runner.invoke(app, ["qc", str(result.path), "-p", str(root), "--json"])
    assert cli.exit_code in (0, 1) and "Traceback" not in cli.output, cli.output
    shown = {c["name"]: c for c in json.loads(cli.stdout)["checks"]}
    assert shown["style"]["status"] != "skip" and shown["prompt"]["status"] != "skip"
    table = runner.invoke(app, ["qc", str(result.path), "-p", str(root)])
    assert "style" in table.stdout and "prompt" in table.stdout

    # a clip made elsewhere carries no prompt: the prompt check says so, the style check still runs
    foreign = tmp_path / "foreign.mp4"
    write_mp4(noise(16, seed=3), 16, foreign)
    elsewhere = check_file(foreign, studio.profile)
    assert elsewhere.check("prompt").status == "skip" and "no prompt" in elsewhere.check("prompt").explanation
    assert elsewhere.check("style").status != "skip"
    # a broken model on the command line: exit 2 with the error, no traceback
    (root / "clip" / "model.safetensors").rename(root / "clip" / "pytorch_model.bin")
    clip_style._load.cache_clear()
    broken = runner.invoke(app, ["qc", str(result.path), "-p", str(root)])
    assert broken.exit_code == 2 and "QCError" in broken.output and "pickle" in broken.output
    assert "Traceback" not in broken.output
