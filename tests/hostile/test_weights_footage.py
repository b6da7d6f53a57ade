"""Degenerate weights and degenerate footage: refused, never delivered silently.

A LoRA full of NaN used to render black frames that QC passed 6/6. Now:

* every tensor of a LoRA or upscaler weight file is checked finite when the profile is
  validated (`brandstudio profile validate` exits 2 naming the file and the tensor), the
  verdict cached by file hash so a sound file is read once;
* a LoRA that turns bad after validation is refused when the generator loads it, and a model
  that produces NaN stops with a GenerationError before anything is written;
* QC's frames check fails black, one-colour and frozen clips (MP4s decoded here), passes a real
  demo render, and a render whose frames fail is not delivered: QCError in the library, exit 2
  in the CLI, a failed job in a batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PROFILES, read_json
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from brandstudio import BrandStudio, load_profile, provenance
from brandstudio import weights as weights_module
from brandstudio.batch.execute import execute_job
from brandstudio.batch.jobs import Job
from brandstudio.cli import app
from brandstudio.encode import write_mp4
from brandstudio.errors import AssetError, GenerationError, QCError
from brandstudio.post.sr import RealESRGAN, SRVGGNetCompact
from brandstudio.qc import check_file

LORA = "loras/aurora-film.safetensors"
TINY = dict(aspect="16:9", duration=1.0, resolution=64, seed=5)  # the smallest render the demo allows


@pytest.fixture(autouse=True)
def weights_cache(tmp_path, monkeypatch) -> Path:
    """A private cache of finite verdicts for each test."""
    path = tmp_path / "weights-cache"
    monkeypatch.setenv("BRANDSTUDIO_WEIGHTS_CACHE", str(path))
    return path


def poison(path: Path, value: float = float("nan"), count: int = 5) -> str:
    """Set ``count`` values of the first tensor of a safetensors file to ``value``; its name."""
    with safe_open(str(path), "pt") as fh:
        metadata = fh.metadata()
    tensors = load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name].view(-1)[:count] = value
    save_file(tensors, str(path), metadata=metadata)
    return name


def quiet_profile(make_profile, **kw) -> Path:
    """A copy of aurora-coffee without the NSFW scan (not under test; noise frames make it slow)."""
    return make_profile(edit=lambda t: t.replace('nsfw = "block"', 'nsfw = "off"'), **kw)


def no_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# -- weights -----------------------------------------------------------------------------


def test_nan_lora_fails_validation_naming_file_and_tensor(make_profile, weights_cache):
    root = make_profile()
    tensor = poison(root / LORA)
    env = {**os.environ, "BRANDSTUDIO_WEIGHTS_CACHE": str(weights_cache), "NO_COLOR": "1", "COLUMNS": "300"}
    proc = subprocess.run(
        [sys.executable, "-m", "brandstudio.cli", "profile", "validate", str(root)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text
    assert "Traceback" not in text
    assert "aurora-film.safetensors" in text and tensor in text and "5 NaN" in text
    assert "style.loras[0].file" in text and "fix:" in text
    with pytest.raises(AssetError) as exc:
        load_profile(root)
    assert exc.value.file == LORA and exc.value.value == tensor and "non-finite" in exc.value.message


def test_finite_verdict_is_cached_by_file_hash(make_profile, weights_cache, monkeypatch):
    reads = []
    real = weights_module.nonfinite_tensors
    monkeypatch.setattr(
        weights_module, "nonfinite_tensors", lambda *a, **k: reads.append(a[0]) or real(*a, **k)
    )
    root = make_profile()
    load_profile(root)
    assert len(reads) == 1  # the one LoRA, read once
    digest = weights_module.sha256_file(root / LORA)
    verdict = json.loads((weights_cache / f"{digest}.finite.json").read_text(encoding="utf-8"))
    assert verdict["finite"] is True and verdict["sha256"] == digest
    load_profile(root)
    load_profile(make_profile(name="same-lora-elsewhere"))  # the same bytes anywhere: not read again
    assert len(reads) == 1
    # a changed file is a new hash: read again, and a bad one is never cached as good
    poison(root / LORA)
    for _ in range(2):
        with pytest.raises(AssetError, match="non-finite"):
            load_profile(root)
    assert len(reads) == 3 and len(list(weights_cache.glob("*.finite.json"))) == 1


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16,
                                   torch.float8_e5m2, torch.float8_e4m3fn])
def test_safetensors_are_checked_on_their_bits_as_torch_counts_them(dtype, tmp_path):
    """The numpy scan of a .safetensors file finds exactly the NaN and ±inf torch finds, in every
    float dtype (fp8 E4M3 has no inf: torch turns inf into NaN there), and integers never count."""
    rng = np.random.default_rng(0)
    values = torch.from_numpy(rng.normal(0, 100, (37, 11)).astype(np.float32))
    spots = rng.choice(407, 17, replace=False)  # 9 NaN, 5 inf, 3 -inf, at distinct places
    values.view(-1)[spots[:9]] = float("nan")
    values.view(-1)[spots[9:14]] = float("inf")
    values.view(-1)[spots[14:]] = float("-inf")
    tensors = {"w": values.to(dtype), "clean": torch.ones(5, dtype=dtype), "ids": torch.arange(7),
               "scalar": torch.tensor(float("nan")).to(dtype)}  # fmt: skip
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    expected = {name: weights_module.count_nonfinite(t) for name, t in tensors.items()}
    scanned = {b.name: (b.nan, b.inf) for b in weights_module.nonfinite_tensors(path)}
    assert scanned == {name: c for name, c in expected.items() if any(c)}
    assert sum(scanned["w"]) >= 9 and "clean" not in scanned and "ids" not in scanned
    # a header that does not parse is left to safetensors' own reader, which reports it
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(Exception):  # noqa: B017 - safetensors' own error type
        weights_module.nonfinite_tensors(path)


def test_validating_a_profile_with_a_cold_verdict_cache_loads_no_torch(tmp_path):
    code = ("import sys, brandstudio; brandstudio.load_profile('brand_profiles/aurora-coffee'); "
            "print(sorted(m for m in ('torch', 'diffusers', 'safetensors.torch') if m in sys.modules))")  # fmt: skip
    env = {**os.environ, "BRANDSTUDIO_WEIGHTS_CACHE": str(tmp_path / "cold")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert out.stdout.strip() == "[]"
    assert len(list((tmp_path / "cold").glob("*.finite.json"))) == 1  # its LoRA was read, and passed


def test_inf_in_upscaler_weights_is_refused(make_profile, tmp_path):
    net = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["body.2.weight"].view(-1)[3] = float("inf")
    weights = tmp_path / "sr.safetensors"
    save_file(state, str(weights))
    root = make_profile(
        edit=lambda t: t + '\n[upscale]\nmethod = "realesrgan"\nweights = "sr.safetensors"\n',
        files={"sr.safetensors": weights.read_bytes()},
    )
    with pytest.raises(AssetError) as exc:
        load_profile(root)
    msg = str(exc.value)
    assert exc.value.file == "sr.safetensors" and "body.2.weight" in msg and "1 ±inf" in msg
    # and when loaded directly (no profile): refused too, before any frame is upscaled
    with pytest.raises(AssetError, match=r"non-finite values .*body\.2\.weight"):
        RealESRGAN(weights, device="cpu")
    # the same weights, finite, load
    state["body.2.weight"].view(-1)[3] = 0.0
    save_file(state, str(weights))
    assert RealESRGAN(weights, device="cpu").scale == 2


def test_lora_poisoned_after_validation_is_refused_when_the_generator_loads(make_profile, tmp_path):
    root = quiet_profile(make_profile)
    studio = BrandStudio(root, output_dir=tmp_path / "out", cache=False)  # validated while sound
    tensor = poison(root / LORA)
    with pytest.raises(AssetError, match="non-finite") as exc:
        studio.render("product-hero", product="Night Roast", **TINY)
    assert tensor in str(exc.value)
    assert no_files(tmp_path / "out") == []


# -- QC frames on decoded MP4s ------------------------------------------------------------


@pytest.fixture(scope="module")
def aurora():
    return load_profile(PROFILES / "aurora-coffee")


@pytest.mark.parametrize(
    "reason, frames",
    [
        ("black", np.zeros((12, 64, 112, 3), np.uint8)),
        ("blank", np.full((12, 64, 112, 3), (200, 120, 40), np.uint8)),
        (
            "frozen",
            np.repeat(np.random.default_rng(2).integers(0, 256, (1, 64, 112, 3), np.uint8), 12, axis=0),
        ),
    ],
)
def test_qc_frames_check_fails_black_blank_and_frozen_mp4s(reason, frames, aurora, tmp_path):
    clip = write_mp4(frames, 16, tmp_path / f"{reason}.mp4")
    check = check_file(clip, aurora).check("frames")
    assert check.status == "fail", check
    assert reason in [p.split(":")[0] for p in check.explanation.split("; ")], check.explanation
    if reason == "frozen":  # noise is neither black nor one colour: only the reason that applies
        assert check.explanation.startswith("frozen")
    res = CliRunner().invoke(app, ["qc", str(clip), "-p", str(PROFILES / "aurora-coffee")])
    assert res.exit_code == 1 and "frames" in res.output and "Traceback" not in res.output


# -- renders ------------------------------------------------------------------------------


def test_demo_render_passes_and_a_nan_model_stops_before_anything_is_written(make_profile, tmp_path):
    studio = BrandStudio(quiet_profile(make_profile), output_dir=tmp_path / "good", cache=False)
    good = studio.render("product-hero", product="Night Roast", **TINY)
    assert good.qc["checks"]["frames"]["status"] == "pass"
    assert check_file(good.path, studio.profile).check("frames").status == "pass"  # the delivered file too
    # the model goes NaN (as a LoRA that turned bad would make it): GenerationError, nothing written
    expert = studio.generator.pipeline.transformer
    lora_a = next(p for name, p in expert.named_parameters() if "lora_A" in name)
    with torch.no_grad():
        lora_a.fill_(float("nan"))
    studio.output_dir = tmp_path / "bad"
    with pytest.raises(GenerationError) as exc:
        studio.render("product-hero", product="Night Roast", **TINY)
    assert "non-finite" in exc.value.message and "`aurora-film`" in exc.value.message
    assert exc.value.profile == studio.profile.id and "profile validate" in exc.value.fix
    assert no_files(tmp_path / "bad") == []


class FrozenGenerator:
    """Stand-in model whose footage is one noise frame repeated (as a broken decode makes)."""

    model_id = "frozen"

    def generate(self, spec) -> np.ndarray:
        frame = np.random.default_rng(0).integers(0, 256, (1, spec.height, spec.width, 3), np.uint8)
        return np.repeat(frame, spec.num_frames, axis=0)


def test_frozen_render_is_not_delivered_library_cli_and_batch(make_profile, tmp_path, monkeypatch):
    root = quiet_profile(make_profile)
    studio = BrandStudio(root, output_dir=tmp_path, generator=FrozenGenerator(), cache=False)
    out = tmp_path / "frozen.mp4"
    published = []  # the clip is published by the provenance step (one rename): it never runs
    monkeypatch.setattr(provenance, "sign_render", lambda *a, **k: published.append(a) or {"signed": False})
    with pytest.raises(
        QCError, match=r"QC frames check failed, so the clip was not delivered: frozen"
    ) as exc:
        studio.render("product-hero", product="Night Roast", output=out, **TINY)
    monkeypatch.undo()
    assert exc.value.field == "qc.frames" and exc.value.profile == studio.profile.id
    assert published == [], "the clip reached its path before QC refused it"
    assert not out.exists() and not out.with_suffix(".srt").exists() and not out.with_suffix(".json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staged MP4 left
    report = read_json(out.with_suffix(".qc.json"))  # kept, to show why
    assert [c["status"] for c in report["checks"] if c["name"] == "frames"] == ["fail"]

    # the CLI: exit 2, the check named, no traceback
    monkeypatch.setattr(BrandStudio, "generator", property(lambda self: FrozenGenerator()))
    cli_out = tmp_path / "cli.mp4"
    res = CliRunner().invoke(
        app,
        ["render", str(root), "product-hero", "-v", "product=Night Roast", "-o", str(cli_out),
         "--aspect", "16:9", "--duration", "1", "--resolution", "64", "--seed", "5"],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "QCError" in res.output and "frames check failed" in res.output and "Traceback" not in res.output
    assert not cli_out.exists()

    # a campaign job: failed, not a success, and nothing of it left behind
    job_out = tmp_path / "job" / "j.mp4"
    job = Job("j1", "test", "product-hero", {"product": "Night Roast"}, "16:9", 5, 1.0, 64, job_out)
    outcome = execute_job(studio, job)
    assert outcome.result is None and outcome.error_type == "QCError" and outcome.expected
    assert "frames check failed" in outcome.message
    assert no_files(tmp_path / "job") == []
