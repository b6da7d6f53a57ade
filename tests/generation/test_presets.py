"""Speed presets and memory plans (brandstudio.generation.presets / .memory / .runtime) on the tiny model.

Every preset and memory plan runs end to end on the CPU: the memory plans must give
bit-identical frames, each expert's MagCache must count the steps that expert actually runs,
the ``fast`` preset must run its distilled LoRA in both experts with one transformer pass per
step, and fusing must change the weights of *both* experts.
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch
from helpers import PROFILES

from brandstudio import BrandStudio, RenderRequest
from brandstudio.errors import GenerationError, ProfileError, RequestError
from brandstudio.generation.base import GenerationSpec
from brandstudio.generation.caching import WAN_TAYLORSEER_IDENTIFIERS
from brandstudio.generation.experts import compile_experts, expert_step_counts
from brandstudio.generation.memory import (
    A14B_GEOMETRY,
    GB,
    TI2V_5B_GEOMETRY,
    MemoryEstimate,
    choose_memory_plan,
    estimate_memory,
    oom_advice,
)
from brandstudio.generation.parallel import parse_parallel
from brandstudio.generation.presets import check_cache_hook, resolve_preset
from brandstudio.generation.tiny import make_tiny_lora
from brandstudio.generation.wan import WanGenerator
from brandstudio.profile.loader import load_profile
from brandstudio.profile.schema import ModelSection

# Shift 3 with 2 steps: step 1 on the high-noise expert, step 2 on the low-noise one.
SPEC = GenerationSpec("a cup of coffee at dawn", "blurry", 7, 32, 32, 1, 2, 4.0, 3.0, 3.0)


@pytest.fixture(scope="module")
def gen(brandstudio_home):
    """A private tiny generator: these tests reconfigure it, so it is not the session's ``tiny_gen``."""
    return WanGenerator("tiny", device="cpu")


@pytest.fixture(scope="module")
def fast_lora(tmp_path_factory):
    return make_tiny_lora(tmp_path_factory.mktemp("fast") / "fast.safetensors", seed=7)


class Calls:
    """Counts forward calls per expert (with CFG, two per step: cond and uncond)."""

    def __init__(self, pipe):
        self.n = {"transformer": 0, "transformer_2": 0}
        self.handles = [
            getattr(pipe, name).register_forward_pre_hook(lambda m, a, name=name: self._hit(name))
            for name in self.n
        ]

    def _hit(self, name):
        self.n[name] += 1

    def remove(self):
        for h in self.handles:
            h.remove()


# -- pure rules -------------------------------------------------------------------------------


def test_quality_takes_official_numbers_unless_the_profile_sets_them():
    a14b = resolve_preset("quality", "wan2.2-t2v-a14b", ModelSection(steps=4, guidance_low=2.5))
    assert (a14b.steps, a14b.guidance_high, a14b.guidance_low, a14b.flow_shift) == (4, 4.0, 2.5, 12.0)
    assert a14b.sources["steps"] == "profile" and a14b.sources["flow_shift"] == "official wan2.2-t2v-a14b"
    ti2v = resolve_preset("quality", "wan2.2-ti2v-5b", ModelSection())
    assert (ti2v.steps, ti2v.guidance_high, ti2v.guidance_low, ti2v.flow_shift) == (50, 5.0, 5.0, 5.0)
    tiny = resolve_preset("quality", "tiny-wan2.2", ModelSection(steps=3))  # the shift it was trained for
    assert (tiny.steps, tiny.flow_shift, tiny.sources["flow_shift"]) == (3, 3.0, "official tiny-wan2.2")
    wan21 = resolve_preset("quality", "wan2.1-t2v", ModelSection())  # no official numbers: the schema's
    assert (wan21.flow_shift, wan21.sources["flow_shift"]) == (12.0, "default")
    assert tiny.cache.kind == "none" and tiny.attention == "native" and tiny.compile == "off"
    balanced = resolve_preset("balanced", "wan2.2-t2v-a14b", ModelSection())
    assert (balanced.steps, balanced.cache.kind, balanced.attention, balanced.compile) == (
        40,
        "mag",
        "best",
        "auto",
    )
    assert balanced.key_fields() != a14b.key_fields()


def test_fast_without_a_distilled_lora_is_a_clear_error(make_profile):
    with pytest.raises(RequestError) as e:
        resolve_preset("fast", "wan2.2-t2v-a14b", ModelSection())
    assert e.value.field == "model.fast.lora" and "[model.fast]" in e.value.fix
    with pytest.raises(RequestError, match="unknown speed preset"):
        resolve_preset("turbo", "tiny-wan2.2", ModelSection())
    bad = make_profile(edit=lambda t: t.replace('preset = "quality"', 'preset = "fast"'), name="no-fast")
    with pytest.raises(ProfileError, match=r"\[model.fast\] lora"):
        load_profile(bad)


def test_faster_cache_is_refused_with_the_reason(make_profile):
    bad = make_profile(edit=lambda t: t + '\n[model.balanced]\ncache = "faster"\n', name="faster")
    with pytest.raises(ProfileError) as e:
        load_profile(bad)
    assert "FasterCache does not work with Wan" in str(e.value) and e.value.field == "model.balanced.cache"
    with pytest.raises(RequestError, match="separately"):
        check_cache_hook("faster-cache")


def test_memory_plan_choice_is_a_pure_function_of_free_memory():
    est = MemoryEstimate({"resident": 70 * GB, "swap": 40 * GB, "group-offload": 12 * GB}, 0, 0, 0)
    assert choose_memory_plan(None, est) == "resident"  # no accelerator
    assert choose_memory_plan(80 * GB, est) == "resident"
    assert choose_memory_plan(70 * GB, est) == "swap"  # 70 GB needs a margin
    assert choose_memory_plan(24 * GB, est) == "group-offload"
    with pytest.raises(GenerationError, match="no memory plan fits") as e:
        choose_memory_plan(8 * GB, est)
    assert "quantization" in e.value.fix
    # an out-of-memory error names the next plan that fits what this process can use
    assert oom_advice("resident", 48 * GB, est)[2] == "swap"
    message, fix, plan = oom_advice("swap", 30 * GB, est)
    assert plan == "group-offload" and "--memory group-offload" in fix and "swap" in message
    assert oom_advice("group-offload", 80 * GB, est)[2] is None


def test_estimates_for_the_real_models():
    a = estimate_memory(A14B_GEOMETRY, 1280, 720, 81)
    assert a.tokens == 21 * 45 * 80  # the design doc's 75,600 tokens
    assert a.need["resident"] < 80 * GB < a.need["resident"] + A14B_GEOMETRY.text_encoder + 10 * GB
    assert a.need["group-offload"] < a.need["swap"] < a.need["resident"]
    assert estimate_memory(A14B_GEOMETRY, 1280, 720, 81, vae_tiling=True).vae_activations < a.vae_activations
    assert estimate_memory(TI2V_5B_GEOMETRY, 1280, 704, 121).need["group-offload"] < 24 * GB
    # the sizes built from the reference configs match a real (meta, one-layer) A14B expert in bf16
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        expert = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=16,
            out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=1,
            cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
        )  # fmt: skip
    block = sum(p.numel() for p in expert.blocks[0].parameters())
    rest = sum(p.numel() for p in expert.parameters()) - block
    assert A14B_GEOMETRY.block == pytest.approx(2 * block, rel=1e-3)
    assert A14B_GEOMETRY.expert_rest == pytest.approx(2 * rest, rel=1e-3)
    assert A14B_GEOMETRY.experts[0] == pytest.approx(2 * (40 * block + rest), rel=1e-3)


def test_parallel_needs_torchrun_and_gpus(brandstudio_home):
    assert parse_parallel("ulysses:2") == ("ulysses", 2) and parse_parallel(None) is None
    with pytest.raises(RequestError, match="ulysses:N"):
        parse_parallel("ulysses:1")
    with pytest.raises(GenerationError, match="needs CUDA") as e:
        WanGenerator("tiny", device="cpu", parallel="ring:2")  # refused before anything is loaded
    assert "torchrun" in e.value.fix and e.value.field == "parallel"


# -- memory plans -----------------------------------------------------------------------------


def test_memory_plans_give_identical_frames_and_swap_at_the_boundary(gen):
    resident = gen.generate(SPEC)
    assert gen.runtime.record()["memory"] == "resident"  # auto on a CPU
    gen.configure(memory="swap")
    swapped = gen.generate(SPEC)
    assert gen.runtime.swap.events == [
        ("in", "text_encoder"),
        ("out", "text_encoder"),
        ("in", "transformer"),
        ("out", "transformer"),  # the sampler crossed the boundary: the idle expert leaves
        ("in", "transformer_2"),
    ]
    gen.configure(memory="group-offload")
    offloaded = gen.generate(SPEC)
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    assert _is_group_offload_enabled(gen.pipeline.transformer) and _is_group_offload_enabled(
        gen.pipeline.transformer_2
    )
    gen.configure(memory="resident")
    assert not _is_group_offload_enabled(gen.pipeline.transformer)
    assert gen.pipeline.transformer.device.type == "cpu" and gen.runtime.record()["memory"] == "resident"
    for frames in (swapped, offloaded):
        np.testing.assert_array_equal(frames, resident)


def test_out_of_memory_names_the_plan_that_would_fit(gen, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(type(gen.pipeline), "__call__", oom)
    with pytest.raises(GenerationError) as e:
        gen.generate(SPEC)
    assert "out of memory generating 32x32x1" in e.value.message and "`resident`" in e.value.message
    assert e.value.field == "model.memory" and 'memory plan "swap"' in e.value.fix


def test_vae_tiling_decodes_in_tiles(gen, brandstudio_home):
    wide = dataclasses.replace(SPEC, width=288, height=32, steps=1)
    tiled = WanGenerator("tiny", device="cpu", vae_tiling=True)
    assert tiled.pipeline.vae.use_tiling and tiled.runtime.record()["vae_tiling"]
    assert tiled.cache_identity()["vae_tiling"] is True and gen.cache_identity()["vae_tiling"] is False
    a, b = tiled.generate(wide), gen.generate(wide)
    assert a.shape == b.shape == (1, 32, 288, 3)
    assert not np.array_equal(a, b)  # wider than a 256 px tile: decoded in two blended tiles


# -- presets ----------------------------------------------------------------------------------


def test_magcache_counts_each_experts_own_steps_and_skips(gen, brandstudio_home):
    spec = dataclasses.replace(SPEC, steps=6)
    counts = expert_step_counts(gen.pipeline, 6, 3.0)
    assert sum(counts.values()) == 6 and counts["transformer"] != counts["transformer_2"]
    # a high threshold and no retention: MagCache skips whenever it may
    model = ModelSection(
        steps=6, flow_shift=3.0, balanced={"cache": "mag", "threshold": 1.0, "retention": 0.0}
    )
    gen.configure(resolve_preset("balanced", gen.model_family, model))
    first = gen.generate(spec)  # calibrates each expert's ratios first (one extra run), then generates
    calls = Calls(gen.pipeline)
    tail_runs = []
    handles = [
        getattr(gen.pipeline, n).blocks[-1].ffn.register_forward_pre_hook(lambda m, a: tail_runs.append(1))
        for n in calls.n
    ]
    try:
        second = gen.generate(spec)
    finally:
        calls.remove()
        for h in handles:
            h.remove()
    assert second.tobytes() == first.tobytes()  # deterministic (the scene cache relies on it)
    for name, expert in (
        ("transformer", gen.pipeline.transformer),
        ("transformer_2", gen.pipeline.transformer_2),
    ):
        config = expert._cache_config
        assert type(config).__name__ == "MagCacheConfig"
        ran = calls.n[name] // 2  # cond + uncond per step
        assert config.num_inference_steps == ran == counts[name], name
        assert len(config.mag_ratios) == ran
    assert 0 < len(tail_runs) < 2 * 6  # some steps skipped every block after the first
    record = gen.runtime.record()
    assert record["cache_hook_active"] == "mag" and record["expert_steps"] == counts
    # the ratios were calibrated on each expert's own steps, once, and stored for the next process
    stored = [json.loads(f.read_text()) for f in (brandstudio_home / "magcache").glob("*.json")]
    mine = [d for d in stored if d["doc"]["counts"] == counts and d["doc"]["size"] == [32, 32, 1]]
    assert len(mine) == 1 and {k: len(v) for k, v in mine[0]["ratios"].items()} == counts


def test_first_block_and_taylorseer_hook_both_experts(gen):
    from diffusers.hooks.taylorseer_cache import _TRANSFORMER_BLOCK_IDENTIFIERS

    names = [n for n, _ in gen.pipeline.transformer.named_modules()]
    # the trap: diffusers' default TaylorSeer identifiers match no Wan module
    assert not [n for n in names if any(re.fullmatch(p, n) for p in _TRANSFORMER_BLOCK_IDENTIFIERS)]
    ours = [n for n in names if any(re.fullmatch(p, n) for p in WAN_TAYLORSEER_IDENTIFIERS)]
    assert len(ours) == 3 * len(gen.pipeline.transformer.blocks)
    for kind, config_name in (
        ("first-block", "FirstBlockCacheConfig"),
        ("taylorseer", "TaylorSeerCacheConfig"),
    ):
        model = ModelSection(steps=4, flow_shift=3.0, balanced={"cache": kind})
        gen.configure(resolve_preset("balanced", gen.model_family, model))
        frames = gen.generate(dataclasses.replace(SPEC, steps=4))
        assert frames.shape == (1, 32, 32, 3)
        for expert in (gen.pipeline.transformer, gen.pipeline.transformer_2):
            assert type(expert._cache_config).__name__ == config_name
            if kind == "taylorseer":
                hooked = [n for n, m in expert.named_modules() if getattr(m, "_diffusers_hook", None)
                          and m._diffusers_hook.get_hook("taylorseer_cache") is not None]  # fmt: skip
                assert sorted(hooked) == sorted(ours)
    gen.configure(resolve_preset("quality", gen.model_family, ModelSection(steps=2, flow_shift=3.0)))
    gen.generate(SPEC)  # the hooks come off before the next call
    assert gen.pipeline.transformer._cache_config is None and gen.pipeline.transformer_2._cache_config is None


def test_fast_runs_the_distilled_lora_in_both_experts_without_cfg(gen, fast_lora):
    model = ModelSection(steps=2, flow_shift=3.0, fast={"lora": "fast.safetensors", "weight_high": 0.9,
                                                         "weight_low": 0.5, "fuse": False})  # fmt: skip
    fast = resolve_preset("fast", gen.model_family, model, fast_lora_path=fast_lora)
    assert (fast.steps, fast.guidance_high, fast.guidance_low) == (4, 1.0, 1.0)
    pipe = gen.pipeline
    x, t = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([500])
    text = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(1))

    def forward(expert):
        with torch.no_grad():
            return expert(x, t, text, return_dict=False)[0]

    base = [forward(pipe.transformer), forward(pipe.transformer_2)]
    gen.configure(fast)
    for expert, weight in ((pipe.transformer, 0.9), (pipe.transformer_2, 0.5)):
        assert expert.blocks[0].attn1.to_q.scaling["fast-distill"] == pytest.approx(weight)
    unfused = [forward(pipe.transformer), forward(pipe.transformer_2)]
    calls = Calls(pipe)
    try:
        frames = gen.generate(
            dataclasses.replace(SPEC, steps=fast.steps, guidance_high=1.0, guidance_low=1.0)
        )
    finally:
        calls.remove()
    assert frames.shape == (1, 32, 32, 3)
    assert sum(calls.n.values()) == 4 and min(calls.n.values()) >= 1  # 4 steps, one pass each, both experts
    # fuse: both experts' weights change (diffusers' default fuses only `transformer`), outputs do not
    q1, q2 = pipe.transformer.blocks[0].attn1.to_q, pipe.transformer_2.blocks[0].attn1.to_q
    w1, w2 = q1.base_layer.weight.clone(), q2.base_layer.weight.clone()
    gen.configure(dataclasses.replace(fast, fast_lora=dataclasses.replace(fast.fast_lora, fuse=True)))
    assert gen.runtime.fused and q1.merged and q2.merged
    assert not torch.equal(q1.base_layer.weight, w1) and not torch.equal(q2.base_layer.weight, w2)
    fused = [forward(pipe.transformer), forward(pipe.transformer_2)]
    for a, b, c in zip(unfused, fused, base, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(a, c)
    # back to quality: unfused, the distilled LoRA off in both experts
    gen.configure(resolve_preset("quality", gen.model_family, ModelSection(steps=2, flow_shift=3.0)))
    assert not gen.runtime.fused and torch.allclose(q1.base_layer.weight, w1, atol=1e-6)
    for a, c in zip([forward(pipe.transformer), forward(pipe.transformer_2)], base, strict=True):
        torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)


def test_int8_quantization_of_both_experts(brandstudio_home):
    q = WanGenerator("tiny", device="cpu", quantization="int8")
    for expert in (q.pipeline.transformer, q.pipeline.transformer_2):
        assert "Int8" in type(expert.blocks[0].attn1.to_q.weight).__name__
    assert q.cache_identity()["quantization"] == "int8"
    assert q.generate(SPEC).shape == (1, 32, 32, 3)


def test_regional_compile_wires_both_experts(gen):
    before = gen.generate(SPEC)
    assert compile_experts(gen.pipeline, backend="eager") == 2
    for expert in (gen.pipeline.transformer, gen.pipeline.transformer_2):
        assert all(block._compiled_call_impl is not None for block in expert.blocks)
    np.testing.assert_array_equal(gen.generate(SPEC), before)


# -- through the studio ----------------------------------------------------------------------


def test_render_with_preset_and_memory_overrides(make_profile, fast_lora, tmp_path):
    profile = make_profile(
        edit=lambda t: (
            t.replace("width = 256", "width = 64").replace("height = 144", "height = 32")
            + '\n[model.fast]\nlora = "loras/fast.safetensors"\nweight_high = 0.9\nweight_low = 0.5\n'
        ),
        files={"loras/fast.safetensors": fast_lora.read_bytes()},
        name="fast-profile",
    )
    assert load_profile(profile).assets["model.fast.lora"].sha256
    studio = BrandStudio(profile, output_dir=tmp_path, cache=tmp_path / "scenes")
    req = RenderRequest(
        template="scene", variables={"scene": "pour-over"}, aspect="16:9", duration=0.3, resolution=64
    )
    fast = studio.render(req.with_preset("fast", memory="swap"))
    g = fast.generation
    assert (fast.cache, g["preset"], g["steps"], g["guidance_high"], g["guidance_low"]) == (
        "miss",
        "fast",
        4,
        1.0,
        1.0,
    )
    assert (g["memory_plan"], g["attention"], g["cache_hook"]) == ("swap", "native", {"kind": "none"})
    assert g["fast_lora"]["weight_high"] == 0.9 and g["runtime"]["lora_fused"]
    saved = json.loads(fast.path.with_suffix(".json").read_text())
    assert saved["generation"]["memory_plan"] == "swap"
    # the memory plan never changes the key, the preset does (keys recorded, renders stopped before generating)
    from brandstudio.generation.cache import SceneCache

    class Stop(Exception):
        pass

    class KeyRecorder(SceneCache):
        def get_or_create(self, key, fn, *, fields=None):
            self.key, self.fields = key, fields
            raise Stop

    studio.cache = KeyRecorder(tmp_path / "keys")
    for preset, memory in (
        ("fast", "group-offload"),
        ("fast", "resident"),
        ("quality", None),
        ("balanced", "swap"),
    ):
        with pytest.raises(Stop):
            studio.render(req.with_preset(preset, memory=memory))
        assert (studio.cache.key == fast.cache_key) == (preset == "fast"), preset
        assert studio.cache.fields["preset"]["name"] == preset
    assert studio.cache.fields["preset"]["cache"]["kind"] == "mag"


def test_cli_rejects_an_unknown_preset():
    from typer.testing import CliRunner

    from brandstudio.cli import app

    result = CliRunner().invoke(
        app,
        ["render", str(PROFILES / "aurora-coffee"), "scene", "--var", "scene=pour-over", "--preset", "turbo"],
    )
    assert result.exit_code == 2
    assert "preset" in result.output and "quality" in result.output and "Traceback" not in result.output
