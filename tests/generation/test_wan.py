"""WanGenerator on the tiny model: real pipeline runs, asserting on the frames."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from brandstudio.errors import GenerationError, RequestError
from brandstudio.generation.base import GenerationSpec, Generator, LoraAdapter
from brandstudio.generation.tiny import make_tiny_lora
from brandstudio.generation.wan import WanGenerator, model_family_of

REPO = Path(__file__).resolve().parents[2]
AURORA = REPO / "brand_profiles" / "aurora-coffee" / "loras" / "aurora-film.safetensors"
QINGLAN = REPO / "brand_profiles" / "qinglan-tea" / "loras" / "qinglan-ink.safetensors"


def _lora(path=AURORA, high=1.0, low=1.0, name="aurora-film") -> LoraAdapter:
    return LoraAdapter(name=name, path=path, weight_high=high, weight_low=low, base_model="tiny-wan2.2")


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_generator_attributes(tiny_gen):
    assert isinstance(tiny_gen, Generator)
    assert tiny_gen.model_id == "tiny"
    assert tiny_gen.model_family == "tiny-wan2.2"
    assert tiny_gen.device == "cpu" and tiny_gen.dtype == torch.float32
    assert "tiny-wan2.2" in repr(tiny_gen)


def test_generate_returns_frames_of_the_requested_size(tiny_gen, spec):
    frames = tiny_gen.generate(spec)
    assert frames.dtype == np.uint8
    assert frames.shape == (5, 48, 64, 3)
    assert frames.flags["C_CONTIGUOUS"]
    assert frames.std() > 1  # not a flat image

    wide = tiny_gen.generate(dataclasses.replace(spec, width=96, height=32, num_frames=9))
    assert wide.shape == (9, 32, 96, 3)


def test_same_spec_is_bit_identical_and_seed_matters(tiny_gen, spec):
    a = tiny_gen.generate(spec)
    b = tiny_gen.generate(spec)
    assert np.array_equal(a, b)
    c = tiny_gen.generate(dataclasses.replace(spec, seed=spec.seed + 1))
    assert _diff(a, c) > 1.0


def test_progress_reports_each_step_of_each_expert_then_the_decode(tiny_gen, spec):
    from brandstudio.generation.experts import expert_step_counts
    from brandstudio.progress import Progress

    spec = dataclasses.replace(spec, steps=5)
    counts = expert_step_counts(tiny_gen.pipeline, spec.steps, spec.flow_shift)
    assert counts["transformer"] and counts["transformer_2"]  # both experts run
    events: list[Progress] = []
    frames = tiny_gen.generate(spec, on_progress=events.append)
    assert np.array_equal(frames, tiny_gen.generate(spec))  # reporting changes no pixel
    total = spec.steps + 1
    steps = [*range(1, total), total - 1, total]  # the last denoising step's number again as the decode starts
    assert [(e.stage, e.step, e.total) for e in events] == [("generation", i, total) for i in steps]
    details = [e.detail for e in events]
    assert details == (
        ["high-noise expert"] * counts["transformer"] + ["low-noise expert"] * counts["transformer_2"]
        + ["decoding", "decode"]
    )


def test_prompt_and_guidance_matter(tiny_gen, spec):
    base = tiny_gen.generate(spec)
    assert not np.array_equal(base, tiny_gen.generate(dataclasses.replace(spec, prompt="青岚茶园, 水墨")))
    assert not np.array_equal(base, tiny_gen.generate(dataclasses.replace(spec, guidance_low=1.5)))
    assert not np.array_equal(base, tiny_gen.generate(dataclasses.replace(spec, guidance_high=1.5)))


def test_flow_shift_is_set_per_call(tiny_gen, spec):
    a = tiny_gen.generate(spec)
    b = tiny_gen.generate(dataclasses.replace(spec, flow_shift=12.0))
    assert tiny_gen.pipeline.scheduler.config.flow_shift == 12.0
    assert not np.array_equal(a, b)
    assert np.array_equal(a, tiny_gen.generate(spec))  # back to 3.0, same frames again
    assert tiny_gen.pipeline.scheduler.config.flow_shift == 3.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"height": 70}, "`height` must be divisible by 16, got 70"),
        ({"width": 100}, "`width` must be divisible by 16, got 100"),
        ({"num_frames": 32}, "`num_frames` must be of the form 4k + 1"),
        ({"num_frames": 0}, "`num_frames` must be of the form 4k + 1"),
        ({"steps": 0}, "`steps` must be a positive integer"),
        ({"seed": -1}, "`seed` must be an integer"),
        ({"seed": 1.5}, "`seed` must be an integer"),
        ({"prompt": "  "}, "`prompt` must be a non-empty string"),
        ({"guidance_high": float("nan")}, "`guidance_high` must be a number >= 0"),
        ({"flow_shift": 0.0}, "`flow_shift` must be a number > 0"),
    ],
)
def test_bad_spec_is_a_request_error(tiny_gen, spec, change, message):
    with pytest.raises(RequestError) as exc:
        tiny_gen.generate(dataclasses.replace(spec, **change))
    assert message in str(exc.value)
    assert exc.value.field == next(iter(change))
    assert exc.value.fix


def test_height_error_suggests_neighbours(tiny_gen, spec):
    with pytest.raises(RequestError) as exc:
        tiny_gen.generate(dataclasses.replace(spec, height=70))
    assert exc.value.fix == "use 64 or 80"
    with pytest.raises(RequestError) as exc:
        tiny_gen.generate(dataclasses.replace(spec, num_frames=32))
    assert exc.value.fix == "use 29 or 33"


def test_out_of_memory_becomes_generation_error(tiny_gen, spec, monkeypatch):
    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(type(tiny_gen.pipeline), "__call__", oom)
    with pytest.raises(GenerationError, match="out of memory generating 64x48x5") as exc:
        tiny_gen.generate(spec)
    assert "lower resolution" in exc.value.fix


def test_other_failures_become_generation_error(tiny_gen, spec, monkeypatch):
    def boom(self, *args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(type(tiny_gen.pipeline), "__call__", boom)
    with pytest.raises(GenerationError, match="kaboom"):
        tiny_gen.generate(spec)


def test_unloadable_model_is_a_generation_error(tmp_path):
    with pytest.raises(GenerationError, match="could not load") as exc:
        WanGenerator(str(tmp_path / "no-such-model"), device="cpu")
    assert exc.value.field == "model" and exc.value.fix


def test_bad_device_dtype_and_boundary(tmp_path):
    with pytest.raises(RequestError, match="`device`"):
        WanGenerator("tiny", device="gpu0")
    with pytest.raises(RequestError, match="`dtype`"):
        WanGenerator("tiny", device="cpu", dtype="int8")
    with pytest.raises(RequestError, match="`boundary_ratio`"):
        WanGenerator("tiny", device="cpu", boundary_ratio=1.5)


def test_boundary_ratio_override_changes_expert_split(tiny_gen, spec):
    base = tiny_gen.generate(spec)
    # 0.5: both steps (t = 1000, 750) are now on the high-noise expert
    gen = WanGenerator("tiny", device="cpu", boundary_ratio=0.5)
    assert gen.pipeline.config.boundary_ratio == 0.5
    assert not np.array_equal(base, gen.generate(spec))


# ---------------------------------------------------------------- LoRAs


def test_lora_changes_output_and_zero_weights_equal_no_lora(tiny_gen, spec):
    base = tiny_gen.generate(spec)

    both = WanGenerator("tiny", device="cpu", loras=[_lora(high=1.0, low=1.0)])
    with_lora = both.generate(spec)
    assert _diff(base, with_lora) > 1.0
    assert np.array_equal(with_lora, both.generate(spec))  # still deterministic

    off = WanGenerator("tiny", device="cpu", loras=[_lora(high=0.0, low=0.0)])
    assert np.array_equal(base, off.generate(spec))
    assert not hasattr(off.pipeline.transformer, "peft_config")


def test_lora_weights_are_per_expert(tiny_gen, spec):
    base = tiny_gen.generate(spec)
    high = WanGenerator("tiny", device="cpu", loras=[_lora(high=1.0, low=0.0)])
    low = WanGenerator("tiny", device="cpu", loras=[_lora(high=0.0, low=1.0)])

    # loaded only where its weight is non-zero
    assert "aurora-film" in high.pipeline.transformer.peft_config
    assert not getattr(high.pipeline.transformer_2, "peft_config", {})
    assert "aurora-film" in low.pipeline.transformer_2.peft_config
    assert not getattr(low.pipeline.transformer, "peft_config", {})

    out_high, out_low = high.generate(spec), low.generate(spec)
    assert _diff(base, out_high) > 0.5 and _diff(base, out_low) > 0.5
    assert _diff(out_high, out_low) > 0.5


def test_lora_weight_scales_the_effect(tiny_gen, spec):
    base = tiny_gen.generate(spec)
    weak = WanGenerator("tiny", device="cpu", loras=[_lora(high=0.2, low=0.2)]).generate(spec)
    strong = WanGenerator("tiny", device="cpu", loras=[_lora(high=1.5, low=1.5)]).generate(spec)
    assert 0 < _diff(base, weak) < _diff(base, strong)


def test_two_loras_and_names_with_dots(tiny_gen, spec):
    gen = WanGenerator(
        "tiny",
        device="cpu",
        loras=[_lora(AURORA, 1.0, 0.5, name="aurora.film v2"), _lora(QINGLAN, 0.5, 1.0, name="qinglan-ink")],
    )
    assert set(gen.pipeline.transformer.peft_config) == {"aurora_film_v2", "qinglan-ink"}
    only_aurora = WanGenerator("tiny", device="cpu", loras=[_lora(AURORA, 1.0, 0.5)]).generate(spec)
    assert not np.array_equal(gen.generate(spec), only_aurora)


# ---------------------------------------------------------------- model families, imports


def _fake_pipe(in_channels: int, two: bool):
    t = SimpleNamespace(config=SimpleNamespace(in_channels=in_channels))
    return SimpleNamespace(transformer=t, transformer_2=t if two else None)


@pytest.mark.parametrize(
    ("in_channels", "two", "family"),
    [
        (16, True, "wan2.2-t2v-a14b"),
        (36, True, "wan2.2-i2v-a14b"),
        (48, False, "wan2.2-ti2v-5b"),
        (16, False, "wan2.1-t2v"),
        (36, False, "wan2.1-i2v"),
    ],
)
def test_model_family_from_config(in_channels, two, family):
    assert model_family_of(_fake_pipe(in_channels, two)) == family


def test_model_family_marker_wins(tmp_path):
    (tmp_path / "brandstudio.json").write_text('{"base_model": "tiny-wan2.2"}')
    assert model_family_of(_fake_pipe(16, True), tmp_path) == "tiny-wan2.2"


def test_light_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import brandstudio.generation.base, brandstudio.generation.lora\n"
        "import brandstudio.generation.tiny, brandstudio.generation.wan\n"
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_spec_is_frozen(spec):
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 3  # type: ignore[misc]
    assert isinstance(spec, GenerationSpec)


def test_lora_for_tiny_made_on_the_fly(tiny_gen, spec, tmp_path):
    path = make_tiny_lora(tmp_path / "fresh.safetensors", seed=55)
    gen = WanGenerator("tiny", device="cpu", loras=[_lora(path, name="fresh")])
    assert _diff(tiny_gen.generate(spec), gen.generate(spec)) > 1.0


def test_bfloat16_keeps_the_vae_in_float32(spec):
    """The CUDA default path (bf16 experts, fp32 VAE), exercised on the CPU."""
    gen = WanGenerator("tiny", device="cpu", dtype="bf16", loras=[_lora(high=1.0, low=0.5)])
    assert gen.pipeline.transformer.dtype == torch.bfloat16
    assert gen.pipeline.transformer_2.dtype == torch.bfloat16
    assert gen.pipeline.vae.dtype == torch.float32
    frames = gen.generate(spec)
    assert frames.shape == (5, 48, 64, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, gen.generate(spec))
